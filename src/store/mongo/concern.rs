//! How durable a write must be before MongoDB acknowledges it. The driver's default
//! (the server's, usually `w: 1`) acknowledges a write the primary has applied but not
//! journaled nor replicated: a failover right after can roll back a message the user
//! was told is saved. So unless `MONGO_URI` says otherwise, a write waits for a majority
//! of the replica set (`w: majority`) and for the journal (`j: true`).

use std::time::Duration;

use mongodb::options::{Acknowledgment, WriteConcern};

/// The write concern for `from_uri`, the one `MONGO_URI` set (if any): each of `w` and
/// `journal` the URI leaves out gets the durable default, and `wtimeoutMS` gets
/// `wait`, so that a majority that cannot be reached fails the write instead of
/// holding a store lane thread forever. `w=0` (fire and forget) is kept as asked,
/// without a journal, which it cannot be combined with.
pub fn durable(from_uri: Option<WriteConcern>, wait: Duration) -> WriteConcern {
    let mut concern = from_uri.unwrap_or_default();
    let w = concern.w.get_or_insert(Acknowledgment::Majority);
    if *w != Acknowledgment::Nodes(0) {
        concern.journal.get_or_insert(true);
    }
    concern.w_timeout.get_or_insert(wait);
    concern
}

#[cfg(test)]
mod tests {
    use mongodb::options::ClientOptions;

    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    /// The concern `uri` asks for, resolved.
    fn resolved(uri: &str) -> WriteConcern {
        let options = ClientOptions::parse(uri).run().expect("a valid URI");
        durable(options.write_concern, WAIT)
    }

    fn parts(concern: &WriteConcern) -> (Option<Acknowledgment>, Option<bool>, Option<Duration>) {
        (concern.w.clone(), concern.journal, concern.w_timeout)
    }

    #[test]
    fn by_default_a_write_waits_for_a_majority_and_the_journal() {
        assert_eq!(
            parts(&resolved("mongodb://db.example:27017/chat")),
            (Some(Acknowledgment::Majority), Some(true), Some(WAIT))
        );
    }

    #[test]
    fn what_the_uri_sets_stands() {
        assert_eq!(
            parts(&resolved("mongodb://db.example/?w=1")),
            (Some(Acknowledgment::Nodes(1)), Some(true), Some(WAIT)),
            "w from the URI, the journal still asked for"
        );
        assert_eq!(
            parts(&resolved(
                "mongodb://db.example/?journal=false&wtimeoutMS=900"
            )),
            (
                Some(Acknowledgment::Majority),
                Some(false),
                Some(Duration::from_millis(900))
            )
        );
        assert_eq!(
            parts(&resolved("mongodb://db.example/?w=0")),
            (Some(Acknowledgment::Nodes(0)), None, Some(WAIT)),
            "w=0 cannot be journaled"
        );
        assert_eq!(
            parts(&resolved("mongodb://db.example/?w=2&journal=true")).0,
            Some(Acknowledgment::Nodes(2))
        );
    }
}
