//! Message metadata is bounded as a whole (16 keys, 64-byte keys, 4 KiB in total), not
//! only per value: a frame over any bound is refused with `INVALID_FORMAT` and nothing
//! of it is stored.
mod common;

use common::chat::{stored_messages, Client};
use common::Server;
use serde_json::{json, Map, Value};

fn metadata(pairs: impl IntoIterator<Item = (String, String)>) -> Map<String, Value> {
    pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

#[test]
fn oversized_metadata_is_refused_and_not_stored() {
    let server = Server::start(&[]);
    let mut ann = Client::connect(&server, "ann", "");
    let session = ann.session_id.clone();
    let seventeen_keys = metadata((0..17).map(|i| (format!("k{i}"), "v".to_owned())));
    let long_key = metadata([("k".repeat(65), "v".to_owned())]);
    let five_kib = metadata((0..5).map(|i| (format!("k{i}"), "v".repeat(1000))));
    for meta in [seventeen_keys, long_key, five_kib] {
        ann.send(json!({"type": "user_message", "session_id": session,
                        "content": "too much", "metadata": meta}));
        let error = ann.expect("error", &[]);
        assert_eq!(error["error"]["code"], "INVALID_FORMAT", "{error}");
        assert_eq!(error["error"]["message"], "Message validation failed");
    }

    // At the bounds it is fine. Writes of a session are stored in order, so once this
    // message and its reply are stored, anything refused before would be there too.
    let sixteen_keys = metadata((0..16).map(|i| (format!("k{i}"), "v".to_owned())));
    ann.send(json!({"type": "user_message", "session_id": session,
                    "content": "just right", "metadata": sixteen_keys}));
    ann.reply();
    let stored = stored_messages(&server, "ann", &ann.session_id, 2);
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[0]["content"], "just right");
    assert_eq!(stored[0]["metadata"]["k15"], "v");
}
