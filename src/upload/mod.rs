//! File uploads: what is accepted (`name.rs` the file name, `sniff.rs` the content), the
//! body's way from the loop to the io lane (`pipe.rs`), the multipart parser that takes
//! it in pieces (`multipart.rs`), the job that turns it into a stored file
//! (`receive.rs`), where files live behind the [`Blobs`] trait (`dir.rs`: a local
//! directory, the default; `s3.rs`), the expiring links to them (`signed.rs`), and the
//! check of external links sent in file frames (`url_check.rs`).
//!
//! Nothing here runs on the event loop but `Pipe::push`/`Pipe::abort`; the rest is
//! blocking work for the io lane. No sockets, no chat.

pub mod dir;
pub mod multipart;
pub mod name;
pub mod pipe;
pub mod receive;
pub mod s3;
pub mod signed;
pub mod sniff;
pub mod url_check;

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

/// What is known of a stored file; the local backend keeps it next to the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    pub file_id: String,
    /// The uploader's `user_id`: the only user who may fetch it with a token or delete it.
    pub owner: String,
    /// Where it lives in the backend: `<prefix>/<user_id>/<yyyy>/<mm>/<file_id>`.
    pub key: String,
    /// The name the client gave (a label; never used as a path).
    pub name: String,
    /// Decided from the content.
    pub content_type: String,
    pub size: u64,
    pub created: u64,
}

#[derive(Debug)]
pub enum BlobError {
    NotFound,
    Io(io::Error),
    /// The stored metadata cannot be read back.
    Corrupt(String),
    /// The remote store (S3) refused or failed a request.
    Remote(String),
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobError::NotFound => f.write_str("no such file"),
            BlobError::Io(error) => write!(f, "file storage: {error}"),
            BlobError::Corrupt(what) => write!(f, "file metadata unreadable: {what}"),
            BlobError::Remote(what) => write!(f, "file storage: {what}"),
        }
    }
}

impl std::error::Error for BlobError {}

impl From<io::Error> for BlobError {
    fn from(error: io::Error) -> BlobError {
        match error.kind() {
            io::ErrorKind::NotFound => BlobError::NotFound,
            _ => BlobError::Io(error),
        }
    }
}

/// Where uploaded files live. Every call blocks: io lane only.
pub trait Blobs: Send + Sync {
    /// Starts a new file under `meta.key`. Nothing is visible until `commit`; a writer
    /// dropped before that leaves nothing behind.
    fn create(&self, meta: &FileMeta) -> Result<Box<dyn BlobWriter>, BlobError>;

    fn meta(&self, file_id: &str) -> Result<FileMeta, BlobError>;

    /// How `P/files/:file_id` hands the file out.
    fn serve(&self, meta: &FileMeta, exp: u64) -> Result<Served, BlobError>;

    fn delete(&self, meta: &FileMeta) -> Result<(), BlobError>;

    /// A link that fetches the file without a token, valid until `exp` (unix seconds).
    fn url(&self, meta: &FileMeta, exp: u64) -> Result<String, BlobError>;
}

/// A stored file as `P/files/:file_id` answers with it.
pub enum Served {
    Bytes(Vec<u8>),
    /// Fetch it there instead (a presigned URL).
    Redirect(String),
}

pub trait BlobWriter: Send {
    fn write(&mut self, data: &[u8]) -> Result<(), BlobError>;
    /// Makes the file visible under its key, with its final `meta`.
    fn commit(self: Box<Self>, meta: &FileMeta) -> Result<(), BlobError>;
}

/// `<prefix>/<user_id>/<yyyy>/<mm>/<file_id>`; the user id is escaped so that no id can
/// make a key climb out of its folder (`..`, `/`) or clash with another's.
pub fn key(prefix: &str, user_id: &str, unix: u64, file_id: &str) -> String {
    let date = crate::time::rfc3339(unix);
    let (year, month) = (&date[..4], &date[5..7]);
    let mut user = String::with_capacity(user_id.len());
    for byte in user_id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_') {
            user.push(char::from(byte));
        } else {
            user.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{prefix}/{user}/{year}/{month}/{file_id}")
}

/// A file id as the server makes them (32 lowercase hex): anything else names no file,
/// and is never used to build a path.
pub fn is_file_id(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_old_layout_and_stay_in_their_folder() {
        // 2026-12-07
        let unix = 1_796_601_600;
        assert_eq!(
            key("chat-files", "u-1", unix, "f"),
            "chat-files/u-1/2026/12/f"
        );
        assert_eq!(
            key("p", "../a/b.c", unix, "f"),
            "p/%2E%2E%2Fa%2Fb%2Ec/2026/12/f"
        );
    }

    #[test]
    fn file_ids() {
        assert!(is_file_id("0123456789abcdef0123456789abcdef"));
        assert!(!is_file_id("0123456789ABCDEF0123456789abcdef"));
        assert!(!is_file_id("../../../../etc/passwd/aaaaaaaaaa"));
    }
}
