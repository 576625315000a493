//! The MongoDB backend: one document per session in `MONGO_DATABASE`.`MONGO_COLLECTION`,
//! in the old service's shape (`spec/storage.md`, [`codec`]), through the `mongodb`
//! crate's sync API. Like every [`Store`], it is only called on the store lane: the
//! driver's blocking calls, and the sleeps between retries, never reach the loop.
//!
//! **Reads** ask the server for what they need and no more: a session's header comes
//! from an aggregation that replaces `msgs` by its size, a page of a transcript from
//! `$slice`, listings from `$sort`/`$limit` over the indexes. No read scans the
//! collection on the client.
//!
//! **Appends** are one read and one write. The read gives the owner, the message count
//! (for the cap) and the average the new reply joins. The write is a single upsert
//! whose filter restates what the read found: the same owner and the cap not reached.
//! Everything it changes that another writer could also change (`totalTokens`,
//! `maxRespTime`, the reply count) uses `$inc`/`$max`, so two writers cannot lose each
//! other's updates. When the filter does not match, the upsert collides with the
//! existing `_id` (duplicate key), and the append reads again to find out why. A retry
//! first asks whether the session already holds the message id: when an attempt was
//! stored but its answer lost, the message is found, not stored twice.
//!
//! **Durability**: writes are acknowledged once a majority has journaled them, unless
//! `MONGO_URI` asks for less ([`concern`]).
//!
//! **Timeouts** (spec): reads 10 s (`maxTimeMS`), writes 5 s; the driver waits at
//! most [`SERVER_SELECTION`] for a usable server before an attempt fails, and its
//! monitor interrupts operations on a connection that stops answering. Retries
//! ([`retry`]) fit inside those budgets.

mod admin;
mod codec;
mod concern;
mod expr;
mod indexes;
mod plan;
mod retry;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use mongodb::bson::{doc, Bson, Document};
use mongodb::options::ClientOptions;
use mongodb::sync::{Client, Collection, Cursor, Database};

use self::codec::{assist_update, date, Header, LAST_MESSAGE_ID, MESSAGE_BYTES, MESSAGE_COUNT};
use self::expr::{last_message_id, message_count, window_of_messages};
use self::indexes::indexes;
use self::plan::{refusal, Plan};
use self::retry::{is_duplicate_key, Failure, Retry};
use super::{
    AdminPage, AdminQuery, Aggregate, Append, AssistingAdmin, Millis, Result, Session, Store,
    StoreError, Transcript, Window,
};
use crate::config::MongoConfig;

/// One try of an operation, as [`Retry::run`] takes it.
type Attempt<T> = std::result::Result<T, Failure>;

const WRITE_BUDGET: Duration = Duration::from_secs(5);
const READ_BUDGET: Duration = Duration::from_secs(10);
/// How long one attempt waits for a server it can use. Short, so that a MongoDB that
/// is down turns into `DATABASE_ERROR` for the user within the write budget, after the
/// retries, instead of after the driver's default of 30 s.
const SERVER_SELECTION: Duration = Duration::from_secs(2);
/// How many appends of one batch run at once. A batch names distinct sessions, so its
/// appends are independent; run one after another, a batch would cost the sum of their
/// round trips instead of about one append's.
const BATCH_PARALLELISM: usize = 16;

pub struct Mongo {
    database: Database,
    sessions: Collection<Document>,
    retry: Retry,
    /// Index creation failed (MongoDB was down at start-up, say): the next successful
    /// ping tries again.
    indexes_ready: AtomicBool,
}

impl Mongo {
    /// Prepares the client and creates the indexes. Only a URI the driver cannot use
    /// fails here; a MongoDB that does not answer yet is reported by [`Store::ping`]
    /// (and `/readyz`) until it does.
    pub fn connect(config: &MongoConfig) -> Result<Mongo> {
        let mut options = ClientOptions::parse(config.uri.expose_str())
            .run()
            .map_err(|err| StoreError::Unavailable(format!("MONGO_URI: {err}")))?;
        options.app_name = Some("chatbox".into());
        options.write_concern = Some(concern::durable(options.write_concern.take(), WRITE_BUDGET));
        options.connect_timeout = Some(config.connect_timeout);
        options.server_selection_timeout = Some(config.connect_timeout.min(SERVER_SELECTION));
        let client = Client::with_options(options)
            .map_err(|err| StoreError::Unavailable(format!("MONGO_URI: {err}")))?;
        let database = client.database(&config.database);
        let mongo = Mongo {
            sessions: database.collection(&config.collection),
            database,
            retry: Retry {
                attempts: config.retry_attempts,
                first_delay: config.retry_delay,
            },
            indexes_ready: AtomicBool::new(false),
        };
        mongo.ensure_indexes();
        Ok(mongo)
    }

    /// Creates the spec's indexes; MongoDB leaves existing identical ones alone.
    /// A failure is logged, not fatal: chatbox works without them, only slower.
    fn ensure_indexes(&self) {
        match self.sessions.create_indexes(indexes()).run() {
            Ok(_) => {
                self.indexes_ready.store(true, Ordering::Relaxed);
                log::info!("mongodb: indexes of {} in place", self.sessions.name());
            }
            Err(err) => log::warn!("mongodb: creating indexes failed (retried later): {err}"),
        }
    }

    fn write<T>(&self, what: &str, attempt: impl FnMut() -> Attempt<T>) -> Result<T> {
        self.retry.run(what, WRITE_BUDGET, attempt)
    }

    /// Applies `update` to session `id`: false when there is no such session.
    fn update(&self, what: &str, id: &str, update: Document) -> Result<bool> {
        self.write(what, || {
            let filter = doc! {"_id": id};
            let result = self.sessions.update_one(filter, update.clone()).run()?;
            Ok(result.matched_count == 1)
        })
    }

    fn read<T>(&self, what: &str, attempt: impl FnMut() -> Attempt<T>) -> Result<T> {
        self.retry.run(what, READ_BUDGET, attempt)
    }

    /// Sessions matching `filter`, without their messages (see [`Header`]).
    fn headers(&self, filter: Document, order: Option<(Document, usize)>) -> Attempt<Vec<Header>> {
        let mut pipeline = vec![doc! {"$match": filter}];
        if let Some((sort, limit)) = order {
            pipeline.push(doc! {"$sort": sort});
            pipeline.push(doc! {"$limit": i64::try_from(limit).unwrap_or(i64::MAX)});
        }
        pipeline.push(doc! {"$addFields": {
            MESSAGE_COUNT: message_count(),
            LAST_MESSAGE_ID: last_message_id(),
        }});
        pipeline.push(doc! {"$project": {"msgs": 0}});
        let mut headers = Vec::new();
        for doc in self.aggregate(pipeline)? {
            headers.push(Header::of(&doc?)?);
        }
        Ok(headers)
    }

    /// Runs a read pipeline within the read budget, on the server too (`maxTimeMS`).
    fn aggregate(&self, pipeline: Vec<Document>) -> Attempt<Cursor<Document>> {
        let cursor = self
            .sessions
            .aggregate(pipeline)
            .max_time(READ_BUDGET)
            .run()?;
        Ok(cursor)
    }

    fn header(&self, id: &str) -> Attempt<Option<Header>> {
        Ok(self.headers(doc! {"_id": id}, None)?.into_iter().next())
    }

    /// The first session matching `filter`, with the messages `window` selects: sliced
    /// on the server, so only those cross the wire.
    fn transcript_where(&self, filter: Document, window: Window) -> Attempt<Option<Transcript>> {
        let mut fields = doc! {MESSAGE_COUNT: message_count()};
        if window != Window::ALL {
            fields.insert("msgs", window_of_messages(window));
        }
        let pipeline = vec![
            doc! {"$match": filter},
            doc! {"$limit": 1},
            doc! {"$addFields": fields},
        ];
        let Some(doc) = self.aggregate(pipeline)?.next().transpose()? else {
            return Ok(None);
        };
        let session = Header::of(&doc)?.session;
        let messages = codec::messages_of(&doc, &session.id)?;
        Ok(Some(Transcript { session, messages }))
    }

    fn try_append(&self, append: &Append) -> Attempt<u64> {
        let size = codec::message_size(append.message)?;
        // A collision means another writer changed the session between our read and
        // our write; the second read sees that change, so twice is enough.
        for _ in 0..2 {
            let header = self.counted_header(append.session_id)?;
            if let Some(stored) = already_stored(header.as_ref(), append) {
                return Ok(stored);
            }
            refusal(header.as_ref(), append, size)?;
            let plan = Plan::new(append, header.as_ref(), size);
            match self
                .sessions
                .update_one(plan.filter, plan.update)
                .upsert(true)
                .run()
            {
                Ok(_) => return Ok(plan.message_count),
                Err(err) if is_duplicate_key(&err) => {
                    refusal(self.header(append.session_id)?.as_ref(), append, size)?;
                }
                Err(err) => return Err(err.into()),
            }
        }
        Err(StoreError::Unavailable(format!(
            "session {} kept changing under the append",
            append.session_id
        ))
        .into())
    }

    /// The session's header with its message bytes known. A document of the old
    /// service has no [`MESSAGE_BYTES`] yet: it is counted on the server and the count
    /// stored, once, before the first append adds to it. The count is of the whole
    /// document, a little more than its messages: on the safe side of the budget.
    fn counted_header(&self, id: &str) -> Attempt<Option<Header>> {
        match self.header(id)? {
            Some(header) if header.message_bytes.is_none() => {
                let pipeline = vec![
                    doc! {"$match": {"_id": id}},
                    doc! {"$project": {MESSAGE_BYTES: {"$bsonSize": "$$ROOT"}}},
                ];
                let Some(counted) = self.aggregate(pipeline)?.next().transpose()? else {
                    return Ok(None);
                };
                let bytes = counted
                    .get(MESSAGE_BYTES)
                    .cloned()
                    .unwrap_or(Bson::Int64(0));
                // Another writer may have stored its count first: then that one stands.
                self.sessions
                    .update_one(
                        doc! {"_id": id, MESSAGE_BYTES: {"$exists": false}},
                        doc! {"$set": {MESSAGE_BYTES: bytes}},
                    )
                    .run()?;
                self.header(id)
            }
            found => Ok(found),
        }
    }

    /// The session's message count, when it already holds this message: the attempt
    /// before a retry may have been stored with only its answer lost.
    fn holding(&self, append: &Append) -> Attempt<Option<u64>> {
        let Some(id) = &append.message.id else {
            return Ok(None);
        };
        let filter = doc! {"_id": append.session_id, "msgs.id": id};
        if self.sessions.count_documents(filter).run()? == 0 {
            return Ok(None);
        }
        Ok(self
            .header(append.session_id)?
            .map(|h| h.session.message_count))
    }

    fn end_where(&self, id: &str, started_at: Millis, at: Millis) -> Attempt<bool> {
        let ended = self
            .sessions
            .update_one(
                doc! {"_id": id, "endTs": {"$exists": false}},
                doc! {"$set": {
                    "endTs": date(at),
                    "dur": (at.saturating_sub(started_at) / 1000).max(0),
                    "_mt": date(at),
                }},
            )
            .run()?;
        Ok(ended.matched_count == 1)
    }
}

/// Counters are int64 in the documents, as the old service wrote them.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The session's message count when `append`'s message is already its last one: an
/// earlier append of it was stored and only its answer lost (the server went away after
/// the write), and the chat core tried it again. A session's writes are ordered and a
/// reply waiting to be tried again holds back the ones behind it, so such a message is
/// always the last; a retry within one call checks the whole session ([`Mongo::holding`]).
fn already_stored(header: Option<&Header>, append: &Append) -> Option<u64> {
    let header = header?;
    let id = append.message.id.as_deref()?;
    (header.last_message_id.as_deref() == Some(id)).then_some(header.session.message_count)
}

impl Store for Mongo {
    fn append_batch(&self, appends: &[Append]) -> Vec<Result<u64>> {
        let workers = appends.len().min(BATCH_PARALLELISM);
        if workers <= 1 {
            return appends.iter().map(|append| self.append(append)).collect();
        }
        let next = AtomicUsize::new(0);
        let mut results: Vec<Option<Result<u64>>> = appends.iter().map(|_| None).collect();
        let finished: Vec<(usize, Result<u64>)> = thread::scope(|scope| {
            let workers: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(append) = appends.get(i) else {
                                return mine;
                            };
                            mine.push((i, self.append(append)));
                        }
                    })
                })
                .collect();
            // A worker that panicked loses its answers; they are reported below.
            workers
                .into_iter()
                .flat_map(|worker| worker.join().unwrap_or_default())
                .collect()
        });
        for (i, result) in finished {
            results[i] = Some(result);
        }
        results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| {
                    Err(StoreError::Unavailable(
                        "an append of the batch failed".into(),
                    ))
                })
            })
            .collect()
    }

    fn append(&self, append: &Append) -> Result<u64> {
        let mut retrying = false;
        self.write("append", || {
            if std::mem::replace(&mut retrying, true) {
                if let Some(session) = self.holding(append)? {
                    return Ok(session);
                }
            }
            self.try_append(append)
        })
    }

    fn session(&self, id: &str) -> Result<Option<Session>> {
        self.read("session", || Ok(self.header(id)?.map(|h| h.session)))
    }

    fn transcript_page(&self, id: &str, window: Window) -> Result<Option<Transcript>> {
        self.read("transcript", || {
            self.transcript_where(doc! {"_id": id}, window)
        })
    }

    fn latest_active(&self, user_id: &str) -> Result<Option<Session>> {
        self.read("latest_active", || {
            let filter = doc! {"uid": user_id, "endTs": {"$exists": false}};
            let order = doc! {"lastActivity": -1, "_id": -1};
            let found = self.headers(filter, Some((order, 1)))?;
            Ok(found.into_iter().next().map(|h| h.session))
        })
    }

    fn user_sessions(&self, user_id: &str, limit: usize) -> Result<Vec<Session>> {
        self.read("user_sessions", || {
            let order = doc! {"ts": -1, "_id": -1};
            let found = self.headers(doc! {"uid": user_id}, Some((order, limit)))?;
            Ok(found.into_iter().map(|h| h.session).collect())
        })
    }

    fn set_model(&self, id: &str, model_id: &str, at: Millis) -> Result<bool> {
        let update = doc! {"$set": {"modelId": model_id, "_mt": date(at)}};
        self.update("set_model", id, update)
    }

    fn set_assist(&self, id: &str, admin: Option<&AssistingAdmin>, at: Millis) -> Result<bool> {
        self.update("set_assist", id, assist_update(admin, at))
    }

    fn set_help_requested(&self, id: &str, at: Millis) -> Result<bool> {
        let update = doc! {"$set": {"helpRequested": true, "_mt": date(at)}};
        self.update("set_help_requested", id, update)
    }

    fn end(&self, id: &str, at: Millis) -> Result<bool> {
        self.write("end", || match self.header(id)? {
            Some(header) if header.session.is_active() => {
                self.end_where(id, header.session.started_at, at)
            }
            _ => Ok(false),
        })
    }

    fn share(&self, id: &str, candidate: &str, at: Millis) -> Result<Option<String>> {
        self.write("share", || {
            let Some(header) = self.header(id)? else {
                return Ok(None);
            };
            if let Some(token) = header.session.share_token {
                return Ok(Some(token));
            }
            let update = doc! {"$set": {"shareToken": candidate, "_mt": date(at)}};
            let filter = doc! {"_id": id, "shareToken": {"$exists": false}};
            match self.sessions.update_one(filter, update).run() {
                Ok(result) if result.matched_count == 1 => Ok(Some(candidate.to_owned())),
                // Shared meanwhile: that token stands.
                Ok(_) => Ok(self.header(id)?.and_then(|h| h.session.share_token)),
                Err(err) if is_duplicate_key(&err) => Err(StoreError::Unavailable(
                    "share token already belongs to another session".into(),
                )
                .into()),
                Err(err) => Err(err.into()),
            }
        })
    }

    fn unshare(&self, id: &str, at: Millis) -> Result<bool> {
        // `$unset`, not null: the sparse unique index must not see the session.
        let update = doc! {"$unset": {"shareToken": ""}, "$set": {"_mt": date(at)}};
        self.update("unshare", id, update)
    }

    fn shared(&self, token: &str, window: Window) -> Result<Option<Transcript>> {
        self.read("shared", || {
            self.transcript_where(doc! {"shareToken": token}, window)
        })
    }

    fn end_idle(&self, idle_before: Millis, at: Millis) -> Result<Vec<String>> {
        let idle = self.read("end_idle", || {
            // nx-27017, the tests' server, compares dates to the whole second: ask for
            // up to a second more and keep the exact cut here. On MongoDB the extra
            // second costs a handful of index entries.
            let bound = date(idle_before.saturating_add(999) / 1000 * 1000);
            // Two queries, not an `$or`: the oldest documents have no `lastActivity`
            // and go by their start.
            let active = || doc! {"endTs": {"$exists": false}};
            let mut stale = active();
            stale.insert("lastActivity", doc! {"$lt": bound.clone()});
            let mut undated = active();
            undated.insert("lastActivity", doc! {"$exists": false});
            undated.insert("ts", doc! {"$lt": bound});
            let mut found = Vec::new();
            for filter in [stale, undated] {
                let fields = doc! {"_id": 1, "ts": 1, "lastActivity": 1, "uid": 1};
                let cursor = self
                    .sessions
                    .find(filter)
                    .projection(fields)
                    .max_time(READ_BUDGET)
                    .run()?;
                for doc in cursor {
                    let session = Header::of(&doc?)?.session;
                    if session.last_activity < idle_before {
                        found.push(session);
                    }
                }
            }
            Ok(found)
        })?;
        let mut ended = Vec::new();
        for session in idle {
            let (id, started_at) = (session.id, session.started_at);
            if self.write("end_idle", || self.end_where(&id, started_at, at))? {
                ended.push(id);
            }
        }
        Ok(ended)
    }

    fn count_active(&self) -> Result<u64> {
        self.read("count_active", || {
            let filter = doc! {"endTs": {"$exists": false}};
            Ok(self
                .sessions
                .count_documents(filter)
                .max_time(READ_BUDGET)
                .run()?)
        })
    }

    fn admin_sessions(&self, query: &AdminQuery) -> Result<AdminPage> {
        let what = "list_all_sessions_with_options";
        self.retry
            .run(what, admin::ADMIN_BUDGET, || self.admin_page(query))
    }

    fn session_metrics(&self, from: Millis, to: Millis) -> Result<Aggregate> {
        let what = "get_session_metrics";
        self.retry.run(what, admin::ADMIN_BUDGET, || {
            self.aggregate_started(from, to)
        })
    }

    /// One `ping` command, no retry: readiness wants the state of now. The first ping
    /// that succeeds after index creation failed creates them.
    fn ping(&self) -> Result<()> {
        self.database
            .run_command(doc! {"ping": 1})
            .run()
            .map_err(|err| StoreError::Unavailable(format!("mongodb ping: {err}")))?;
        if !self.indexes_ready.load(Ordering::Relaxed) {
            self.ensure_indexes();
        }
        Ok(())
    }
}
