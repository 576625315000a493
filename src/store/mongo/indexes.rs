//! The indexes of the session collection (`spec/storage.md`), created at start-up.

use mongodb::bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::IndexModel;

/// The indexes of `spec/storage.md`, by name.
pub fn indexes() -> Vec<IndexModel> {
    let index = |name: &str, keys: Document, unique_sparse: bool| {
        let options = IndexOptions::builder()
            .name(name.to_owned())
            .unique(unique_sparse.then_some(true))
            .sparse(unique_sparse.then_some(true))
            .build();
        IndexModel::builder().keys(keys).options(options).build()
    };
    vec![
        index("idx_user_id", doc! {"uid": 1}, false),
        index("idx_start_time", doc! {"ts": -1}, false),
        index("idx_admin_assisted", doc! {"adminAssisted": 1}, false),
        index("idx_user_start_time", doc! {"uid": 1, "ts": -1}, false),
        index("idx_share_token", doc! {"shareToken": 1}, true),
        index("idx_last_activity", doc! {"lastActivity": -1}, false),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_indexes_are_the_specs() {
        let listed: Vec<(String, Document, bool)> = indexes()
            .into_iter()
            .map(|index| {
                let options = index.options.unwrap();
                let unique = options.unique == Some(true) && options.sparse == Some(true);
                (options.name.unwrap(), index.keys, unique)
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("idx_user_id".into(), doc! {"uid": 1}, false),
                ("idx_start_time".into(), doc! {"ts": -1}, false),
                (
                    "idx_admin_assisted".into(),
                    doc! {"adminAssisted": 1},
                    false
                ),
                (
                    "idx_user_start_time".into(),
                    doc! {"uid": 1, "ts": -1},
                    false
                ),
                ("idx_share_token".into(), doc! {"shareToken": 1}, true),
                ("idx_last_activity".into(), doc! {"lastActivity": -1}, false),
            ]
        );
    }
}
