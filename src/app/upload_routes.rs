//! The upload routes. `POST P/upload` is admitted from its head alone (token, rate,
//! uploads in progress, multipart boundary) before any of its body is read; the body
//! then streams from the loop through a bounded [`Pipe`] to one job on the io lane,
//! which parses, checks and stores it (`upload::receive`). When the pipe is full the
//! loop stops reading the socket until the job asks it to go on ([`Done::UploadResume`]).
//! `P/files/:file_id` serves (signed link or the owner's token) and deletes (owner)
//! stored files, on the io lane as well.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::requests::{lane_busy, too_many_requests};
use super::{App, Done, Waiting};
use crate::chat::ratelimit::RateLimiter;
use crate::config::UploadsConfig;
use crate::hash::IdMap;
use crate::http::error;
use crate::ids;
use crate::metrics::Limiter;
use crate::net::handler::{Ctx, Flow, Reply};
use crate::net::http::{Method, Request, Response};
use crate::net::slab::ConnId;
use crate::upload::multipart;
use crate::upload::pipe::Pipe;
use crate::upload::receive::{receive, Incoming, UploadError};
use crate::upload::signed::{LinkError, Signer};
use crate::upload::{self, BlobError, Blobs, FileMeta, Served};

/// Room in a body for the multipart framing and small fields around the file.
const FORM_OVERHEAD: usize = 64 * 1024;
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Everything the upload routes keep between calls.
pub(super) struct Uploads {
    blobs: Arc<dyn Blobs>,
    signer: Signer,
    prefix: String,
    max_size: u64,
    url_ttl: Duration,
    max_concurrent: usize,
    limiter: RateLimiter,
    /// Bodies streaming to their job, by connection.
    streams: IdMap<ConnId, InFlight>,
    /// Uploads in progress per user, until their job ends.
    per_user: HashMap<String, usize>,
}

struct InFlight {
    pipe: Arc<Pipe>,
    user: String,
}

impl Uploads {
    pub(super) fn new(config: &UploadsConfig, blobs: Arc<dyn Blobs>, signer: Signer) -> Uploads {
        Uploads {
            blobs,
            signer,
            prefix: config.prefix.clone(),
            max_size: config.max_size,
            url_ttl: config.url_ttl,
            max_concurrent: config.max_concurrent,
            limiter: RateLimiter::new(config.rate_limit, RATE_WINDOW),
            streams: IdMap::default(),
            per_user: HashMap::new(),
        }
    }

    /// The largest request body `P/upload` takes.
    pub(super) fn body_limit(&self) -> usize {
        usize::try_from(self.max_size)
            .unwrap_or(usize::MAX)
            .saturating_add(FORM_OVERHEAD)
    }

    pub(super) fn cleanup(&mut self, now: std::time::Instant) {
        self.limiter.cleanup(now);
    }
}

impl App {
    /// `POST P/upload`, called with the head before any of the body is read.
    pub(super) fn upload_route(
        &mut self,
        request: &Request,
        waiting: Waiting,
        ctx: &Ctx,
    ) -> Result<Reply, Response> {
        let head = &request.head;
        let user = self.user(head)?.user_id;
        let boundary = head
            .header("content-type")
            .ok_or(multipart::MultipartError::NotMultipart)
            .and_then(multipart::boundary)
            .map_err(|error| refusal(&UploadError::Body(error)))?;
        let uploads = &mut self.uploads;
        // The cap first: an attempt refused for it does not spend the rate allowance.
        if uploads.per_user.get(&user).copied().unwrap_or(0) >= uploads.max_concurrent {
            self.metrics.blocked(Limiter::Message);
            return Err(too_many_requests(Duration::from_secs(1)));
        }
        if let Err(wait) = uploads.limiter.check(&user, ctx.now) {
            self.metrics.blocked(Limiter::Message);
            return Err(too_many_requests(wait));
        }
        let file_id = ids::random_id();
        let incoming = Incoming {
            key: upload::key(&uploads.prefix, &user, ctx.unix, &file_id),
            file_id,
            owner: user.clone(),
            boundary,
            max_size: uploads.max_size,
            created: ctx.unix,
        };
        let pipe = Arc::new(Pipe::default());
        let job_pipe = Arc::clone(&pipe);
        let blobs = Arc::clone(&uploads.blobs);
        let exp = ctx.unix + uploads.url_ttl.as_secs();
        let conn = waiting.conn;
        let lost = Done::Upload(waiting.clone(), refusal(&UploadError::Aborted));
        self.lanes
            .io
            .try_submit(
                move |job| {
                    let mut resume = || {
                        let _ = job.complete(Done::UploadResume(conn));
                    };
                    let stored = receive(&job_pipe, &incoming, blobs.as_ref(), &mut resume);
                    let linked = stored.and_then(|meta| {
                        let url = blobs.url(&meta, exp).map_err(UploadError::Storage)?;
                        Ok((meta, url))
                    });
                    let response = match linked {
                        Ok((meta, url)) => stored_response(&meta, url),
                        Err(error) => {
                            log_refusal(&incoming, &error);
                            refusal(&error)
                        }
                    };
                    let _ = job.complete(Done::Upload(waiting, response));
                },
                lost,
            )
            .map_err(|_| lane_busy())?;
        *uploads.per_user.entry(user.clone()).or_default() += 1;
        uploads.streams.insert(conn, InFlight { pipe, user });
        Ok(Reply::Later)
    }

    /// The next piece of an upload's body, for its job.
    pub(super) fn upload_chunk(&mut self, conn: ConnId, chunk: Vec<u8>, last: bool) -> Flow {
        match self.uploads.streams.get(&conn) {
            Some(stream) if stream.pipe.push(chunk, last) => Flow::Pause,
            // A body whose job already answered (a refusal) is read and dropped.
            Some(_) | None => Flow::Continue,
        }
    }

    /// The client left mid-body: its job stops and removes what it wrote. The slot is
    /// freed when the job's answer comes back.
    pub(super) fn upload_aborted(&mut self, conn: ConnId) {
        if let Some(stream) = self.uploads.streams.get(&conn) {
            stream.pipe.abort();
        }
    }

    /// An upload's job ended: its slot is free, and its answer goes out.
    pub(super) fn upload_done(&mut self, waiting: Waiting, response: Response, ctx: &mut Ctx) {
        let uploads = &mut self.uploads;
        if let Some(stream) = uploads.streams.remove(&waiting.conn) {
            if let Some(count) = uploads.per_user.get_mut(&stream.user) {
                *count -= 1;
                if *count == 0 {
                    uploads.per_user.remove(&stream.user);
                }
            }
        }
        self.answer(waiting, response, ctx);
    }

    pub(super) fn upload_resume(&self, conn: ConnId, ctx: &mut Ctx) {
        if self.uploads.streams.contains_key(&conn) {
            ctx.resume_body(conn);
        }
    }

    /// `GET`/`DELETE P/files/:file_id`.
    pub(super) fn file_route(
        &mut self,
        request: &Request,
        file_id: &str,
        waiting: Waiting,
        ctx: &Ctx,
    ) -> Result<Reply, Response> {
        let head = &request.head;
        if !upload::is_file_id(file_id) {
            return Err(file_not_found());
        }
        let signed = match (head.query_param("exp"), head.query_param("sig")) {
            (Some(exp), Some(sig)) if head.method != Method::Delete => Some((exp, sig)),
            _ => None,
        };
        // A valid link is enough to read; anything else needs the owner's token.
        let owner = match signed {
            Some((exp, sig)) => {
                self.uploads
                    .signer
                    .verify(file_id, &exp, &sig, ctx.unix)
                    .map_err(|error| {
                        log::debug!("file link refused: {error:?}");
                        match error {
                            LinkError::Expired => error::json_error(403, "Link expired"),
                            LinkError::BadSignature => error::json_error(403, "Invalid link"),
                        }
                    })?;
                None
            }
            None => Some(self.user(head)?.user_id),
        };
        let blobs = Arc::clone(&self.uploads.blobs);
        let file_id = file_id.to_owned();
        let method = head.method;
        let exp = ctx.unix + self.uploads.url_ttl.as_secs();
        let lost = Done::Reply(
            waiting.clone(),
            error::json_error(500, "An internal error occurred"),
        );
        self.lanes
            .io
            .try_submit(
                move |job| {
                    let call = FileCall {
                        file_id: &file_id,
                        owner: owner.as_deref(),
                        method,
                        exp,
                    };
                    let response = call
                        .run(blobs.as_ref())
                        .unwrap_or_else(|error| match error {
                            BlobError::NotFound => file_not_found(),
                            error => {
                                log::error!("file {file_id}: {error}");
                                error::json_error(500, "An internal error occurred")
                            }
                        });
                    let _ = job.complete(Done::Reply(waiting, response));
                },
                lost,
            )
            .map_err(|_| lane_busy())?;
        Ok(Reply::Later)
    }
}

/// A `P/files/:file_id` request, for the io lane.
struct FileCall<'a> {
    file_id: &'a str,
    /// The user whose token came with it; `None` for a signed link.
    owner: Option<&'a str>,
    method: Method,
    /// Until when a presigned redirect stays valid.
    exp: u64,
}

impl FileCall<'_> {
    /// A file of another user is not found, like a missing one.
    fn run(&self, blobs: &dyn Blobs) -> Result<Response, BlobError> {
        let meta = blobs.meta(self.file_id)?;
        if self.owner.is_some_and(|owner| owner != meta.owner) {
            return Err(BlobError::NotFound);
        }
        if self.method == Method::Delete {
            blobs.delete(&meta)?;
            return Ok(Response::empty(204));
        }
        Ok(match blobs.serve(&meta, self.exp)? {
            Served::Bytes(bytes) => {
                let mut response = Response::empty(200)
                    .with_header("Content-Type", meta.content_type.clone())
                    .with_header("Content-Disposition", disposition(&meta))
                    .with_header("Cache-Control", "private, max-age=300");
                response.body = bytes;
                response
            }
            Served::Redirect(url) => Response::empty(302)
                .with_header("Location", url)
                .with_header("Cache-Control", "no-store"),
        })
    }
}

/// Images and audio may show in the page; anything else is only ever downloaded.
fn disposition(meta: &FileMeta) -> String {
    let inline = meta.content_type.starts_with("image/") || meta.content_type.starts_with("audio/");
    let mut encoded = String::with_capacity(meta.name.len());
    for byte in meta.name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename*=UTF-8''{encoded}")
}

/// The spec's answer: exactly the fields the web page relies on.
fn stored_response(meta: &FileMeta, file_url: String) -> Response {
    error::json(
        200,
        &json!({
            "file_id": meta.file_id,
            "file_url": file_url,
            "content_type": meta.content_type,
            "size": meta.size,
        }),
    )
}

fn refusal(error: &UploadError) -> Response {
    error::json_error(error.status(), &error.to_string())
}

fn log_refusal(incoming: &Incoming, error: &UploadError) {
    match error {
        UploadError::Storage(cause) => {
            log::error!("upload {}: storing failed: {cause}", incoming.file_id)
        }
        UploadError::Aborted => log::info!(
            "upload {}: the client left mid-body; nothing kept",
            incoming.file_id
        ),
        refused => log::info!("upload {} refused: {refused:?}", incoming.file_id),
    }
}

fn file_not_found() -> Response {
    error::json_error(404, "File not found")
}
