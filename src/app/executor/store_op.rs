//! What a chat store operation does, on the `store` lane: the one place that turns the
//! domain's descriptions of store work into calls on the [`Store`].

use crate::bus::{Claim, Claims};
use crate::chat::jobs::{StoreOp, StoreReply};
use crate::store::{AssistingAdmin, Store, StoreError};

/// `claims`: with `REDIS_URL`, a takeover is claimed cluster-wide before it is stored.
pub fn run(
    op: &StoreOp,
    store: &dyn Store,
    claims: Option<&Claims>,
) -> Result<StoreReply, StoreError> {
    match op {
        StoreOp::Resolve {
            user_id,
            requested: Some(id),
            history,
        } => {
            // Someone else's or an unknown id both mean a fresh session; the caller
            // cannot tell which.
            let found = store.transcript(id, Some(*history))?;
            Ok(StoreReply::Found(
                found
                    .filter(|t| t.session.user_id == *user_id && t.session.is_active())
                    .map(Box::new),
            ))
        }
        StoreOp::Resolve {
            user_id,
            requested: None,
            history,
        } => match store.latest_active(user_id)? {
            Some(session) => Ok(StoreReply::Found(
                store.transcript(&session.id, Some(*history))?.map(Box::new),
            )),
            None => Ok(StoreReply::Found(None)),
        },
        StoreOp::Load {
            session_id,
            history,
        } => Ok(StoreReply::Found(
            store.transcript(session_id, Some(*history))?.map(Box::new),
        )),
        StoreOp::SetModel {
            session_id,
            model_id,
            at,
        } => store
            .set_model(session_id, model_id, *at)
            .map(StoreReply::Updated),
        StoreOp::SetAssist {
            session_id,
            admin,
            at,
        } => {
            match (claims, admin) {
                (Some(claims), Some(admin)) => {
                    if let Claim::Held { id, name } =
                        claims.claim(session_id, &admin.id, &admin.name)
                    {
                        return Ok(StoreReply::Held(AssistingAdmin { id, name }));
                    }
                }
                (Some(claims), None) => claims.release(session_id),
                (None, _) => {}
            }
            store
                .set_assist(session_id, admin.as_ref(), *at)
                .map(StoreReply::Updated)
        }
        StoreOp::SetHelpRequested { session_id, at } => store
            .set_help_requested(session_id, *at)
            .map(StoreReply::Updated),
        StoreOp::EndIdle { idle_before, at } => {
            store.end_idle(*idle_before, *at).map(StoreReply::Ended)
        }
        StoreOp::Append(op) => store.append(&op.as_append()).map(StoreReply::Appended),
    }
}

/// Runs writes one after the other, each whatever became of the one before (as the loop
/// runs a session's writes): the first failure, else the last answer (nothing to run
/// updated nothing). Failures are logged here: nobody is left to act on them.
pub fn run_in_order(
    ops: &[StoreOp],
    store: &dyn Store,
    claims: Option<&Claims>,
) -> Result<StoreReply, StoreError> {
    let mut outcome = Ok(StoreReply::Updated(false));
    for op in ops {
        let result = run(op, store, claims);
        if let Err(error) = &result {
            log::warn!("shutdown: a store write handed over failed: {error}");
        }
        if outcome.is_ok() {
            outcome = result;
        }
    }
    outcome
}
