//! Pipeline expressions over a session document's `msgs`, computed on the server so
//! that only what a read needs crosses the wire. Each works on nx-27017 (the tests'
//! server) as on MongoDB 4.4.

use mongodb::bson::{doc, Bson, Document};

use crate::store::Window;

/// The messages `window` selects, as a pipeline expression: the first `before`, then
/// the last `limit` of those. Two two-argument `$slice`s rather than one with a
/// position, which nx-27017 (the tests' server) reads with its arguments swapped.
pub(super) fn window_of_messages(window: Window) -> Bson {
    if window.before == Some(0) || window.limit == 0 {
        // `$slice` takes a non-zero count.
        return Bson::Document(doc! {"$literal": []});
    }
    // `$slice` takes 32-bit counts; no session holds that many messages, so a larger
    // one means the same as the largest.
    let count = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
    let upto = match window.before {
        Some(before) => doc! {"$slice": [all_messages(), count(before)]},
        None => all_messages(),
    };
    let limit = count(u64::try_from(window.limit).unwrap_or(u64::MAX));
    Bson::Document(doc! {"$slice": [upto, -limit]})
}

/// The size of `msgs`, as a pipeline expression (0 when a document has none).
pub(super) fn message_count() -> Document {
    doc! {"$size": all_messages()}
}

/// The `id` of the last message, as a pipeline expression (null when there is none, or
/// when it has no id). `$map` over a one-element `$slice` rather than `$getField`, which
/// needs MongoDB 5.0.
pub(super) fn last_message_id() -> Document {
    let last = doc! {"$slice": [all_messages(), -1]};
    doc! {"$arrayElemAt": [{"$map": {"input": last, "as": "m", "in": "$$m.id"}}, 0]}
}

pub(super) fn all_messages() -> Document {
    doc! {"$ifNull": ["$msgs", []]}
}
