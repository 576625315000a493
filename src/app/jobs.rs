//! Runs the chat core's jobs: store operations on the `store` lane, LLM streams on the
//! `llm` lane. Chunks travel back as completions the moment they arrive; the cancel
//! token of each stream is kept here so that `stop` reaches the lane.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::lanes::{Done, Lanes};
use crate::chat::jobs::{Job, JobDone, JobId, LlmCall, Work};
use crate::llm::{self, Catalog, LlmError, Request, Sink};
use crate::net::lanes::{CancelToken, JobContext, LaneError};
use crate::store::Store;

pub struct Runner {
    store: Arc<dyn Store>,
    catalog: Arc<Catalog>,
    stream_timeout: Duration,
    streams: HashMap<JobId, CancelToken>,
}

impl Runner {
    pub fn new(store: Arc<dyn Store>, catalog: Arc<Catalog>, stream_timeout: Duration) -> Runner {
        Runner {
            store,
            catalog,
            stream_timeout,
            streams: HashMap::new(),
        }
    }

    pub fn submit(&mut self, lanes: &Lanes, job: Job) -> Result<(), LaneError> {
        let id = job.id;
        let lost = Done::Chat(JobDone::Refused { id });
        match job.work {
            Work::Store(op) => {
                let store = Arc::clone(&self.store);
                lanes.store.try_submit(
                    move |ctx| {
                        let result = op.run(store.as_ref());
                        let _ = ctx.complete(Done::Chat(JobDone::Store { id, result }));
                    },
                    lost,
                )?;
            }
            Work::Llm(call) => {
                let catalog = Arc::clone(&self.catalog);
                let timeout = self.stream_timeout;
                let cancel = lanes.llm.try_submit(
                    move |ctx| {
                        let result = stream(&catalog, &call, timeout, id, ctx);
                        let _ = ctx.complete(Done::Chat(JobDone::Finished { id, result }));
                    },
                    lost,
                )?;
                self.streams.insert(id, cancel);
            }
        }
        Ok(())
    }

    pub fn cancel(&mut self, id: JobId) {
        if let Some(token) = self.streams.remove(&id) {
            token.cancel();
        }
    }

    /// Forgets the cancel token of a stream that ended.
    pub fn ended(&mut self, done: &JobDone) {
        if let JobDone::Finished { id, .. } | JobDone::Refused { id } = done {
            self.streams.remove(id);
        }
    }
}

/// Runs on the `llm` lane.
fn stream(
    catalog: &Catalog,
    call: &LlmCall,
    timeout: Duration,
    id: JobId,
    ctx: &JobContext<Done>,
) -> Result<llm::Finish, LlmError> {
    let Some((provider_config, provider)) = catalog.get(&call.provider_id) else {
        return Err(LlmError::Unavailable {
            retryable: false,
            detail: format!("no provider with id {}", call.provider_id),
        });
    };
    let request = Request {
        model: &provider_config.model,
        turns: &call.turns,
        user_id: &call.user_id,
        conversation_id: call.conversation_id.as_deref(),
    };
    let mut sink = LaneSink { id, ctx };
    llm::run(provider.as_ref(), &request, timeout, &mut sink)
}

/// Passes each chunk to the loop as it arrives. The completion channel is bounded, so
/// a loop that falls behind slows the upstream read instead of buffering without limit.
struct LaneSink<'a> {
    id: JobId,
    ctx: &'a JobContext<Done>,
}

impl Sink for LaneSink<'_> {
    fn chunk(&mut self, text: &str) -> bool {
        let chunk = Done::Chat(JobDone::Chunk {
            id: self.id,
            text: text.to_owned(),
        });
        self.ctx.complete(chunk).is_ok() && !self.ctx.is_cancelled()
    }

    fn cancelled(&self) -> bool {
        self.ctx.is_cancelled()
    }
}
