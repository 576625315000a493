//! The admin desk's queries on MongoDB: a listing is one aggregation (`$match` on the
//! indexed fields, `$sort`, `$skip`, `$limit`, messages left on the server) plus a
//! `count_documents` of the same filter for `total`; the metrics are one `$group`.
//! Both run within [`ADMIN_BUDGET`] on the server too (`maxTimeMS`), the spec's
//! timeout for admin listing and aggregation.

use std::time::Duration;

use mongodb::bson::{doc, Bson, Document};

use super::codec::{date, integer, Header, MESSAGE_COUNT};
use super::expr::message_count;
use super::{Attempt, Mongo};
use crate::store::admin::Sums;
use crate::store::{AdminPage, AdminQuery, Aggregate, Millis, Order, SortBy};

/// spec/storage.md §Retries: 30 s for admin listing and aggregation.
pub const ADMIN_BUDGET: Duration = Duration::from_secs(30);

impl Mongo {
    pub(super) fn admin_page(&self, query: &AdminQuery) -> Attempt<AdminPage> {
        let filter = filter_of(query);
        let direction = match query.order {
            Order::Asc => 1,
            Order::Desc => -1,
        };
        let mut pipeline = vec![doc! {"$match": filter.clone()}];
        if query.sort == SortBy::MessageCount {
            // Not a stored field: counted on the server before the sort.
            pipeline.push(doc! {"$addFields": {MESSAGE_COUNT: message_count()}});
        }
        pipeline.push(doc! {"$sort": {sort_field(query.sort): direction, "_id": direction}});
        pipeline.push(doc! {"$skip": i64::try_from(query.offset).unwrap_or(i64::MAX)});
        pipeline.push(doc! {"$limit": i64::try_from(query.limit).unwrap_or(i64::MAX)});
        pipeline.push(doc! {"$addFields": {MESSAGE_COUNT: message_count()}});
        pipeline.push(doc! {"$project": {"msgs": 0}});
        let mut sessions = Vec::new();
        if query.limit > 0 {
            let cursor = self
                .sessions
                .aggregate(pipeline)
                .max_time(ADMIN_BUDGET)
                .run()?;
            for found in cursor {
                sessions.push(Header::of(&found?)?.session);
            }
        }
        let total = self
            .sessions
            .count_documents(filter)
            .max_time(ADMIN_BUDGET)
            .run()?;
        Ok(AdminPage { sessions, total })
    }

    pub(super) fn aggregate_started(&self, from: Millis, to: Millis) -> Attempt<Aggregate> {
        let flag = |field: &str| doc! {"$cond": [{"$eq": [format!("${field}"), true]}, 1, 0]};
        // The replies behind `avgRespTime`; a document of the old service has no
        // count, and its average stands for one reply (as the codec reads it).
        let replies = doc! {"$ifNull": ["$respCount",
        {"$cond": [{"$gt": [{"$ifNull": ["$avgRespTime", 0]}, 0]}, 1, 0]}]};
        let pipeline = vec![
            doc! {"$match": {"ts": {"$gte": date(from), "$lte": date(to)}}},
            doc! {"$group": {
                "_id": Bson::Null,
                "sessions": {"$sum": 1},
                "active": {"$sum": {"$cond": [{"$ifNull": ["$endTs", false]}, 0, 1]}},
                "assisted": {"$sum": flag("adminAssisted")},
                "help": {"$sum": flag("helpRequested")},
                "tokens": {"$sum": {"$ifNull": ["$totalTokens", 0]}},
                "maxResp": {"$max": {"$ifNull": ["$maxRespTime", 0]}},
                "respTotal": {"$sum": {"$multiply": [{"$ifNull": ["$avgRespTime", 0]}, replies.clone()]}},
                "replies": {"$sum": replies},
                "messages": {"$sum": message_count()},
            }},
        ];
        let mut cursor = self
            .sessions
            .aggregate(pipeline)
            .max_time(ADMIN_BUDGET)
            .run()?;
        let Some(group) = cursor.next().transpose()? else {
            return Ok(Aggregate::default());
        };
        let n = |key: &str| integer(&group, key).unwrap_or(0);
        let count = |key: &str| u64::try_from(n(key)).unwrap_or(0);
        let sums = Sums {
            aggregate: Aggregate {
                sessions: count("sessions"),
                active: count("active"),
                total_tokens: n("tokens"),
                avg_resp_ms: 0,
                max_resp_ms: n("maxResp"),
                admin_assisted: count("assisted"),
                help_requested: count("help"),
                messages: count("messages"),
            },
            resp_total: n("respTotal"),
            replies: n("replies"),
        };
        Ok(sums.finish())
    }
}

/// The query's filters over the documents' fields. `adminAssisted: false` matches the
/// old service's documents without the field too.
fn filter_of(query: &AdminQuery) -> Document {
    let mut filter = Document::new();
    if let Some(user_id) = &query.user_id {
        filter.insert("uid", user_id.as_str());
    }
    if let Some(active) = query.active {
        filter.insert("endTs", doc! {"$exists": !active});
    }
    match query.admin_assisted {
        Some(true) => filter.insert("adminAssisted", true),
        Some(false) => filter.insert("adminAssisted", doc! {"$ne": true}),
        None => None,
    };
    let mut started = Document::new();
    if let Some(from) = query.started_from {
        started.insert("$gte", date(from));
    }
    if let Some(to) = query.started_to {
        started.insert("$lte", date(to));
    }
    if !started.is_empty() {
        filter.insert("ts", started);
    }
    filter
}

fn sort_field(sort: SortBy) -> &'static str {
    match sort {
        SortBy::StartTime => "ts",
        SortBy::EndTime => "endTs",
        SortBy::MessageCount => MESSAGE_COUNT,
        SortBy::TotalTokens => "totalTokens",
        SortBy::UserId => "uid",
        SortBy::LastActivity => "lastActivity",
    }
}
