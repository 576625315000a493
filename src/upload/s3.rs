//! The S3 backend (`S3_BUCKET` set): `rust-s3`'s blocking API over rustls. A file goes
//! up in one PUT when it is small, else as a multipart upload of [`PART`]-sized parts
//! (S3's smallest part but the last); its metadata is a small JSON object of its own
//! at `<prefix>/.meta/<file_id>.json` (user folders are escaped, so none is called
//! `.meta`). `file_url` is a presigned GET; `P/files/:file_id` redirects to a fresh one.
//!
//! A part is the unit S3 takes, so this backend holds up to one part (5 MiB) of an
//! upload in memory, where the local backend holds none.

use std::time::Duration;

use s3::creds::Credentials;
use s3::error::S3Error;
use s3::serde_types::Part;
use s3::{Bucket, Region};

use super::{BlobError, BlobWriter, Blobs, FileMeta, Served};
use crate::config::S3Config;

/// S3's smallest multipart part (every part but the last).
pub const PART: usize = 5 * 1024 * 1024;
/// One request that takes longer fails the upload, rather than holding an io thread.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// S3 signatures are valid for 7 days at most.
const MAX_PRESIGN: u64 = 7 * 24 * 3600;

pub struct S3Blobs {
    bucket: Box<Bucket>,
    prefix: String,
}

impl S3Blobs {
    pub fn new(config: &S3Config, prefix: &str) -> Result<S3Blobs, BlobError> {
        let region = match &config.endpoint {
            Some(endpoint) => Region::Custom {
                region: config.region.clone(),
                endpoint: endpoint.trim_end_matches('/').to_owned(),
            },
            None => config.region.parse().map_err(remote)?,
        };
        let credentials = Credentials::new(
            Some(&config.access_key_id),
            Some(config.secret_access_key.expose_str()),
            None,
            None,
            None,
        )
        .map_err(|error| BlobError::Remote(error.to_string()))?;
        let mut bucket = Bucket::new(&config.bucket, region, credentials).map_err(remote)?;
        if config.endpoint.is_some() {
            // MinIO and other S3-compatible stores are addressed path-style.
            bucket = bucket.with_path_style();
        }
        bucket.set_request_timeout(Some(REQUEST_TIMEOUT));
        Ok(S3Blobs {
            bucket,
            prefix: prefix.to_owned(),
        })
    }

    fn meta_key(&self, file_id: &str) -> String {
        format!("{}/.meta/{file_id}.json", self.prefix)
    }

    fn presign(&self, key: &str, exp: u64) -> Result<String, BlobError> {
        let now = crate::time::unix_now();
        let secs = exp.saturating_sub(now).clamp(1, MAX_PRESIGN);
        self.bucket
            .presign_get(key, u32::try_from(secs).unwrap_or(u32::MAX), None)
            .map_err(remote)
    }
}

fn remote(error: impl std::fmt::Display) -> BlobError {
    BlobError::Remote(error.to_string())
}

/// A 404 is a missing file; anything else is the store failing.
fn classify(error: S3Error) -> BlobError {
    match error {
        S3Error::HttpFailWithBody(404, _) => BlobError::NotFound,
        error => remote(error),
    }
}

impl Blobs for S3Blobs {
    fn create(&self, meta: &FileMeta) -> Result<Box<dyn BlobWriter>, BlobError> {
        Ok(Box::new(S3Writer {
            bucket: self.bucket.clone(),
            key: meta.key.clone(),
            meta_key: self.meta_key(&meta.file_id),
            content_type: meta.content_type.clone(),
            buffer: Vec::new(),
            multipart: None,
        }))
    }

    fn meta(&self, file_id: &str) -> Result<FileMeta, BlobError> {
        let response = self
            .bucket
            .get_object(self.meta_key(file_id))
            .map_err(classify)?;
        serde_json::from_slice(response.bytes())
            .map_err(|error| BlobError::Corrupt(error.to_string()))
    }

    fn serve(&self, meta: &FileMeta, exp: u64) -> Result<Served, BlobError> {
        self.presign(&meta.key, exp).map(Served::Redirect)
    }

    fn delete(&self, meta: &FileMeta) -> Result<(), BlobError> {
        // The metadata first: once it is gone the file cannot be found.
        self.bucket
            .delete_object(self.meta_key(&meta.file_id))
            .map_err(classify)?;
        self.bucket.delete_object(&meta.key).map_err(classify)?;
        Ok(())
    }

    fn url(&self, meta: &FileMeta, exp: u64) -> Result<String, BlobError> {
        self.presign(&meta.key, exp)
    }
}

struct S3Writer {
    bucket: Box<Bucket>,
    key: String,
    meta_key: String,
    content_type: String,
    /// Bytes not yet sent: less than one part.
    buffer: Vec<u8>,
    /// Once the file outgrew one part: the upload id and the parts sent.
    multipart: Option<(String, Vec<Part>)>,
}

impl S3Writer {
    fn send_part(&mut self) -> Result<(), BlobError> {
        if self.multipart.is_none() {
            let started = self
                .bucket
                .initiate_multipart_upload(&self.key, &self.content_type)
                .map_err(remote)?;
            self.multipart = Some((started.upload_id, Vec::new()));
        }
        let Some((upload_id, parts)) = &mut self.multipart else {
            return Ok(());
        };
        let number = u32::try_from(parts.len() + 1).unwrap_or(u32::MAX);
        let part = self
            .bucket
            .put_multipart_chunk(
                &self.buffer,
                &self.key,
                number,
                upload_id,
                &self.content_type,
            )
            .map_err(remote)?;
        parts.push(part);
        self.buffer.clear();
        Ok(())
    }
}

impl BlobWriter for S3Writer {
    fn write(&mut self, mut data: &[u8]) -> Result<(), BlobError> {
        while !data.is_empty() {
            let take = (PART - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buffer.len() == PART {
                self.send_part()?;
            }
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>, meta: &FileMeta) -> Result<(), BlobError> {
        if self.multipart.is_some() {
            if !self.buffer.is_empty() {
                self.send_part()?;
            }
            if let Some((upload_id, parts)) = self.multipart.take() {
                let done = self
                    .bucket
                    .complete_multipart_upload(&self.key, &upload_id, parts);
                if let Err(error) = done {
                    let _ = self.bucket.abort_upload(&self.key, &upload_id);
                    return Err(remote(error));
                }
            }
        } else {
            self.bucket
                .put_object_with_content_type(&self.key, &self.buffer, &self.content_type)
                .map_err(remote)?;
        }
        let json =
            serde_json::to_vec(meta).map_err(|error| BlobError::Corrupt(error.to_string()))?;
        let stored =
            self.bucket
                .put_object_with_content_type(&self.meta_key, &json, "application/json");
        if let Err(error) = stored {
            // Without its metadata the file could never be served or deleted.
            let _ = self.bucket.delete_object(&self.key);
            return Err(remote(error));
        }
        Ok(())
    }
}

impl Drop for S3Writer {
    /// An upload that did not finish leaves no parts behind (S3 bills for them).
    fn drop(&mut self) {
        if let Some((upload_id, _)) = self.multipart.take() {
            if let Err(error) = self.bucket.abort_upload(&self.key, &upload_id) {
                log::warn!(
                    "S3: cannot abort the multipart upload of {}: {error}",
                    self.key
                );
            }
        }
    }
}
