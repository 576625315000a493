//! The MongoDB backend against a real MongoDB wire-protocol server (nx-27017, see
//! `common::mongo`): the conformance suite unchanged, then what only MongoDB has to
//! show: documents written by the old service read correctly, the documents we write
//! have its names and types, the indexes exist, and an outage is reported and survived.
mod common;
mod store_suite;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use chatbox::config::{Config, StoreConfig};
use chatbox::metrics::StoreTimings;
use chatbox::store::{self, Append, Message, Sender, Store, StoreError, SESSION_BYTES};
use common::mongo::MongoServer;
use serde_json::{json, Value};

/// The old deployments' key: 32 raw bytes given as the variable's value.
const RAW_KEY: &str = "old-service-raw-key-32-bytes-abc";

/// A store on its own server, which outlives it (fields drop in order).
struct Scratch {
    store: Arc<dyn Store>,
    server: MongoServer,
}

impl Deref for Scratch {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

fn settings(server: &MongoServer, extra: &[(&str, &str)]) -> StoreConfig {
    let uri = server.uri();
    let vars: HashMap<String, String> = [
        ("JWT_SECRET", common::JWT_SECRET),
        ("MONGO_URI", uri.as_str()),
        ("MONGO_CONNECT_TIMEOUT", "1s"),
        ("MONGO_RETRY_DELAY", "50ms"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Config::from_vars(&vars).expect("valid settings").store
}

fn timings() -> Arc<StoreTimings> {
    Arc::default()
}

fn open(server: &MongoServer, extra: &[(&str, &str)]) -> Arc<dyn Store> {
    store::open(&settings(server, extra), &timings()).expect("open the MongoDB store")
}

fn mongo() -> Scratch {
    let server = MongoServer::start();
    Scratch {
        store: open(&server, &[]),
        server,
    }
}

mod mongo {
    crate::store_suite::conformance_tests!(super::mongo);
}

fn append(
    store: &dyn Store,
    session: &str,
    user: &str,
    message: &Message,
) -> chatbox::store::Session {
    store
        .append(&Append {
            session_id: session,
            user_id: user,
            name: "New name",
            model_id: "model-b",
            message,
            max_messages: 100,
        })
        .expect("append");
    store.session(session).expect("read").expect("stored")
}

/// Inserts a session exactly as the old service stored it: no message ids, models or
/// timings, int64 counters, content sealed with the raw key (AES-256-GCM,
/// `base64(nonce ‖ ciphertext ‖ tag)`), and one message from before encryption.
const OLD_DOCUMENT: &str = r#"
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
key = sys.stdin.read().encode()
def seal(text):
    nonce = os.urandom(12)
    return base64.b64encode(nonce + AESGCM(key).encrypt(nonce, text.encode(), None)).decode()
at = lambda s: datetime.datetime(2025, 3, 1, 12, 0, s, tzinfo=datetime.timezone.utc)
DB.sessions.insert_one({
    "_id": "old-1", "uid": "olduser", "nm": "Billing question", "modelId": "",
    "msgs": [
        {"content": "written before encryption", "ts": at(0), "sender": "user"},
        {"content": seal("How do I pay?"), "ts": at(1), "sender": "user",
         "meta": {"source": "web"}},
        {"content": seal("With a card."), "ts": at(3), "sender": "ai"},
        {"content": seal("An admin here"), "ts": at(5), "sender": "admin",
         "fileId": "f-9", "fileUrl": "https://files.example/f-9"},
    ],
    "ts": at(0), "lastActivity": at(5), "adminAssisted": True,
    "assistingAdminId": "adm-1", "assistingAdminName": "Ada", "helpRequested": True,
    "totalTokens": bson.Int64(120), "maxRespTime": bson.Int64(2000),
    "avgRespTime": bson.Int64(2000), "_ts": at(0), "_mt": at(5),
})
"#;

#[test]
fn documents_of_the_old_service_read_correctly() {
    let server = MongoServer::start();
    server.python(OLD_DOCUMENT, RAW_KEY);
    let store = open(&server, &[("ENCRYPTION_KEY", RAW_KEY)]);

    let transcript = store
        .transcript("old-1", None)
        .unwrap()
        .expect("the old session");
    let contents: Vec<&str> = transcript
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(
        contents,
        [
            "written before encryption",
            "How do I pay?",
            "With a card.",
            "An admin here"
        ]
    );
    let senders: Vec<Sender> = transcript.messages.iter().map(|m| m.sender).collect();
    assert_eq!(
        senders,
        [Sender::User, Sender::User, Sender::Ai, Sender::Admin]
    );
    let old = &transcript.messages[3];
    assert_eq!(old.id, None);
    assert_eq!(old.file_id.as_deref(), Some("f-9"));
    assert_eq!(old.file_url.as_deref(), Some("https://files.example/f-9"));
    assert_eq!(transcript.messages[1].meta["source"], "web");

    let session = &transcript.session;
    assert_eq!(
        (session.user_id.as_str(), session.name.as_str()),
        ("olduser", "Billing question")
    );
    assert_eq!(session.message_count, 4);
    assert!(session.admin_assisted && session.help_requested && session.is_active());
    assert_eq!(
        session.assisting_admin.as_ref().map(|a| a.name.as_str()),
        Some("Ada")
    );
    assert_eq!(
        (
            session.total_tokens,
            session.max_resp_ms,
            session.avg_resp_ms
        ),
        (120, 2000, 2000)
    );
    assert_eq!(
        store.latest_active("olduser").unwrap().map(|s| s.id),
        Some("old-1".into())
    );
    assert_eq!(
        store
            .transcript("old-1", Some(1))
            .unwrap()
            .unwrap()
            .messages[0]
            .content,
        "An admin here"
    );

    // Our first reply in an old session joins its average as one earlier reply.
    let mut reply = Message::new(
        "m-new",
        Sender::Ai,
        "Anything else?",
        session.last_activity + 1_000,
    );
    reply.tokens = Some(30);
    reply.resp_ms = Some(1_000);
    let after = append(&*store, "old-1", "olduser", &reply);
    assert_eq!(
        (after.total_tokens, after.max_resp_ms, after.avg_resp_ms),
        (150, 2000, 1500)
    );
    assert_eq!(
        after.name, "Billing question",
        "an existing session keeps its name"
    );
    assert_eq!(store.session("old-1").unwrap().unwrap(), after);
}

/// What a document we wrote looks like to pymongo: each field's BSON type, and the
/// message content opened with the raw key, as the old service would.
const READ_OURS: &str = r#"
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
key = sys.stdin.read().encode()
# nx-27017 keeps no integer width (int32 and int64 both come back as int): the int64
# counters are checked on the update chatbox sends, in src/store/mongo.
def kind(v):
    return {bool: "bool", str: "string", datetime.datetime: "date", bson.Int64: "integer",
            int: "integer", list: "array", dict: "object"}[type(v)]
doc = DB.sessions.find_one({"_id": "ours"})
def opened(text):
    raw = base64.b64decode(text)
    return AESGCM(key).decrypt(raw[:12], raw[12:], None).decode()
print(json.dumps({
    "fields": {k: kind(v) for k, v in doc.items()},
    "messages": [{k: kind(v) for k, v in m.items()} for m in doc["msgs"]],
    "contents": [opened(m["content"]) for m in doc["msgs"]],
}))
"#;

#[test]
fn documents_we_write_have_the_old_names_and_types() {
    let server = MongoServer::start();
    let store = open(&server, &[("ENCRYPTION_KEY", RAW_KEY)]);
    append(
        &*store,
        "ours",
        "u1",
        &Message::new("m1", Sender::User, "Hi there", 1_000),
    );
    let mut reply = Message::new("m2", Sender::Ai, "Hello!", 2_000);
    reply.model = Some("gpt-x".into());
    reply.tokens = Some(9);
    reply.resp_ms = Some(700);
    append(&*store, "ours", "u1", &reply);
    store
        .share("ours", "0123456789abcdef0123456789abcdef", 3_000)
        .unwrap();
    store.end("ours", 9_000).unwrap();

    let seen: Value = serde_json::from_str(&server.python(READ_OURS, RAW_KEY)).unwrap();
    assert_eq!(
        seen["fields"],
        json!({
            "_id": "string", "uid": "string", "msgs": "array", "lastActivity": "date",
            "_mt": "date", "nm": "string", "modelId": "string", "ts": "date", "_ts": "date",
            "adminAssisted": "bool", "helpRequested": "bool", "totalTokens": "integer",
            "maxRespTime": "integer", "avgRespTime": "integer", "respCount": "integer",
            "msgBytes": "integer", "shareToken": "string", "endTs": "date", "dur": "integer",
        })
    );
    assert_eq!(
        seen["messages"],
        json!([
            {"id": "string", "content": "string", "ts": "date", "sender": "string"},
            {"id": "string", "content": "string", "ts": "date", "sender": "string",
             "model": "string", "tokens": "integer", "respMs": "integer"},
        ])
    );
    assert_eq!(seen["contents"], json!(["Hi there", "Hello!"]));
}

/// The keys of each index, as the server lists them. nx-27017 renames indexes and
/// drops their key directions in `listIndexes`, so names and directions are checked
/// where they are built (`src/store/mongo`), and here only the fields and uniqueness.
const LIST_INDEXES: &str = r#"
print(json.dumps(sorted(
    [[list(i["key"].keys()), bool(i.get("unique"))] for i in DB.sessions.list_indexes()]
)))
"#;

#[test]
fn indexes_are_created_at_start_up_once() {
    let server = MongoServer::start();
    let first = open(&server, &[]);
    let listed = server.python(LIST_INDEXES, "");
    drop(first);
    open(&server, &[]);
    assert_eq!(
        server.python(LIST_INDEXES, ""),
        listed,
        "a second start changes nothing"
    );
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(
        listed,
        json!([
            [["_id"], false],
            [["adminAssisted"], false],
            [["lastActivity"], false],
            [["shareToken"], true],
            [["ts"], false],
            [["uid"], false],
            [["uid", "ts"], false],
        ])
    );
}

#[test]
fn a_share_token_belongs_to_one_session() {
    let store = mongo();
    append(
        &*store,
        "s1",
        "u1",
        &Message::new("m1", Sender::User, "a", 1_000),
    );
    append(
        &*store,
        "s2",
        "u1",
        &Message::new("m2", Sender::User, "b", 1_000),
    );
    let token = "feedfacefeedfacefeedfacefeedface";
    assert_eq!(
        store.share("s1", token, 2_000).unwrap().as_deref(),
        Some(token)
    );
    assert!(matches!(
        store.share("s2", token, 2_000),
        Err(StoreError::Unavailable(_))
    ));
    assert_eq!(store.session("s2").unwrap().unwrap().share_token, None);
}

/// Stands between the driver and the server and can lose the server's answer to the
/// next `update` command: the write is applied, and the driver sees its connection
/// drop instead of the answer, as on a network failure at the worst moment.
struct LossyProxy {
    port: u16,
    lose_next_update: Arc<AtomicBool>,
    /// The bytes of every `update` command that went through.
    updates: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl LossyProxy {
    fn start(upstream: u16) -> LossyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy port");
        let port = listener.local_addr().expect("proxy address").port();
        let lose_next_update = Arc::new(AtomicBool::new(false));
        let armed = Arc::clone(&lose_next_update);
        let updates = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&updates);
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let cut = Arc::new(AtomicBool::new(false));
                let (armed, cut_request) = (Arc::clone(&armed), Arc::clone(&cut));
                let seen = Arc::clone(&seen);
                let (mut from, mut to) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                thread::spawn(move || {
                    // An OP_MSG body starts with its command: a string element `update`.
                    pump(&mut from, &mut to, |bytes| {
                        if contains(bytes, b"\x02update\x00") {
                            seen.lock().unwrap().push(bytes.to_vec());
                            if armed.swap(false, Ordering::SeqCst) {
                                cut_request.store(true, Ordering::SeqCst);
                            }
                        }
                        true
                    })
                });
                let (mut from, mut to) = (server, client);
                thread::spawn(move || pump(&mut from, &mut to, |_| !cut.load(Ordering::SeqCst)));
            }
        });
        LossyProxy {
            port,
            lose_next_update,
            updates,
        }
    }
}

/// Copies `from` to `to` while `forward` agrees, then closes both.
fn pump(from: &mut TcpStream, to: &mut TcpStream, mut forward: impl FnMut(&[u8]) -> bool) {
    let mut buf = vec![0; 64 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        if !forward(&buf[..n]) || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_write_whose_answer_was_lost_is_retried_without_a_duplicate() {
    let server = MongoServer::start();
    let proxy = LossyProxy::start(server.port);
    let uri = format!("mongodb://127.0.0.1:{}/?directConnection=true", proxy.port);
    let store = store::open(&settings(&server, &[("MONGO_URI", &uri)]), &timings()).expect("open");
    append(
        &*store,
        "s1",
        "u1",
        &Message::new("m1", Sender::User, "first", 1_000),
    );

    proxy.lose_next_update.store(true, Ordering::SeqCst);
    let second = Message::new("m2", Sender::User, "second", 2_000);
    let session = append(&*store, "s1", "u1", &second);
    assert!(
        !proxy.lose_next_update.load(Ordering::SeqCst),
        "the answer to the append was lost"
    );
    assert_eq!(session.message_count, 2);
    let stored = store.transcript("s1", None).unwrap().unwrap().messages;
    let ids: Vec<_> = stored.iter().filter_map(|m| m.id.as_deref()).collect();
    assert_eq!(ids, ["m1", "m2"], "stored once, although sent twice");
}

/// The chat core tries a reply again when the store failed it for a passing reason,
/// such as MongoDB going away right after the write, before its answer. That is a new
/// append of the same message: it must find the message already stored, not store it
/// twice (the MongoDB outage test in `tests/mongo_chat.rs` ran into this).
#[test]
fn a_message_appended_again_after_a_lost_answer_is_stored_once() {
    let scratch = mongo();
    let store = &*scratch.store;
    let reply = Message::new("r1", Sender::Ai, "an answer", 2_000);
    append(
        store,
        "s1",
        "u1",
        &Message::new("m1", Sender::User, "ask", 1_000),
    );
    let first = append(store, "s1", "u1", &reply);
    let again = append(store, "s1", "u1", &reply);
    assert_eq!(again.message_count, 2);
    assert_eq!(again, first, "the session as the first append left it");
    let stored = store.transcript("s1", None).unwrap().unwrap().messages;
    let ids: Vec<_> = stored.iter().filter_map(|m| m.id.as_deref()).collect();
    assert_eq!(ids, ["m1", "r1"], "stored once, although appended twice");
    // A new message after it is appended as usual.
    append(
        store,
        "s1",
        "u1",
        &Message::new("m2", Sender::User, "next", 3_000),
    );
    assert_eq!(store.session("s1").unwrap().unwrap().message_count, 3);
}

#[test]
fn an_outage_is_reported_then_survived() {
    let mut scratch = mongo();
    let message = |n: i64| Message::new(format!("m{n}"), Sender::User, format!("text {n}"), n);
    append(&*scratch, "s1", "u1", &message(1));
    scratch.server.stop();

    let started = Instant::now();
    let failed = scratch.append(&Append {
        session_id: "s1",
        user_id: "u1",
        name: "",
        model_id: "",
        message: &message(2),
        max_messages: 100,
    });
    assert!(
        matches!(failed, Err(StoreError::Unavailable(_))),
        "{failed:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "gave up within the write budget and the retries, not the driver's 30 s default"
    );
    assert!(scratch.ping().is_err());

    scratch.server.resume();
    let deadline = Instant::now() + Duration::from_secs(15);
    while scratch.ping().is_err() {
        assert!(Instant::now() < deadline, "MongoDB answers again");
        std::thread::sleep(Duration::from_millis(100));
    }
    append(&*scratch, "s1", "u1", &message(3));
    let stored = scratch.transcript("s1", None).unwrap().unwrap().messages;
    let ids: Vec<_> = stored.iter().filter_map(|m| m.id.as_deref()).collect();
    assert_eq!(ids, ["m1", "m3"]);
}

#[test]
fn a_uri_the_driver_cannot_use_stops_start_up_naming_it() {
    let server = MongoServer::start();
    // Passes the configuration's scheme check; the driver refuses the port.
    let config = settings(&server, &[("MONGO_URI", "mongodb://127.0.0.1:99999")]);
    match store::open(&config, &timings()) {
        Err(StoreError::Unavailable(detail)) => {
            assert!(detail.starts_with("MONGO_URI"), "{detail}")
        }
        other => panic!("expected a MONGO_URI error, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn writes_wait_for_a_majority_and_the_journal_unless_the_uri_says_otherwise() {
    let server = MongoServer::start();
    let proxy = LossyProxy::start(server.port);
    let appended = |query: &str, session: &str| {
        let uri = format!(
            "mongodb://127.0.0.1:{}/?directConnection=true{query}",
            proxy.port
        );
        let store =
            store::open(&settings(&server, &[("MONGO_URI", &uri)]), &timings()).expect("open");
        append(
            &*store,
            session,
            "u1",
            &Message::new("m1", Sender::User, "hi", 1_000),
        );
        let updates = std::mem::take(&mut *proxy.updates.lock().unwrap());
        assert!(!updates.is_empty(), "the append went through the proxy");
        updates
    };
    // BSON: a string element `w` = "majority", a boolean element `j` = true.
    let majority = b"\x02w\x00\x09\x00\x00\x00majority\x00";
    let journal = b"\x08j\x00\x01";
    for update in appended("", "s1") {
        assert!(contains(&update, majority), "w: majority by default");
        assert!(contains(&update, journal), "j: true by default");
    }
    for update in appended("&w=1&journal=false", "s2") {
        assert!(!contains(&update, majority), "the URI's w stands");
        assert!(!contains(&update, journal), "the URI's journal stands");
    }
}

/// A session the old service wrote, near the byte budget and without `msgBytes`.
const OLD_LARGE_DOCUMENT: &str = r#"
size = int(sys.stdin.read())
at = datetime.datetime(2025, 3, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
DB.sessions.insert_one({
    "_id": "old-big", "uid": "olduser", "nm": "Long", "modelId": "",
    "msgs": [{"content": "y" * size, "ts": at, "sender": "user"} for _ in range(11)],
    "ts": at, "lastActivity": at, "_ts": at, "_mt": at,
})
print(DB.sessions.find_one({"_id": "old-big"}).get("msgBytes"))
"#;

#[test]
fn an_old_document_is_counted_against_the_budget_before_it_grows() {
    let server = MongoServer::start();
    // Eleven messages of 1.05 MiB: 11.55 MiB, under the budget, with no count stored.
    let size = SESSION_BYTES as usize / 12 * 105 / 100;
    assert_eq!(
        server.python(OLD_LARGE_DOCUMENT, &size.to_string()).trim(),
        "None"
    );
    let store = open(&server, &[]);
    let append_of = |content: String| {
        store.append(&Append {
            session_id: "old-big",
            user_id: "olduser",
            name: "",
            model_id: "",
            message: &Message::new("m-new", Sender::User, content, 5_000),
            max_messages: 100,
        })
    };
    assert_eq!(
        append_of("z".repeat(SESSION_BYTES as usize / 12)),
        Err(StoreError::SessionFull),
        "1 MiB more would pass the budget"
    );
    assert_eq!(append_of("a short one still fits".into()), Ok(12));
    let stored: u64 = server
        .python(
            r#"print(DB.sessions.find_one({"_id": "old-big"})["msgBytes"])"#,
            "",
        )
        .trim()
        .parse()
        .expect("msgBytes is stored");
    assert!(
        stored >= 11 * size as u64,
        "{stored} counts the old messages"
    );
    assert!(stored <= SESSION_BYTES);
}
