//! Settings of file uploads: S3 or a local directory, size, key layout, and each user's
//! share (uploads at once, uploads per minute).

use std::time::Duration;

use super::error::{ConfigError, Secret};
use super::parse::{p_dur, p_int, p_secret, p_size, p_text, path_segments};
use super::read::Reader;
use super::table::Kind;
use super::url::p_secure_url;

#[derive(Clone, Debug)]
pub struct UploadsConfig {
    /// `None` = local uploads in `data_dir/uploads`.
    pub s3: Option<S3Config>,
    pub max_size: u64,
    /// No leading or trailing `/`: keys are `{prefix}/{user_id}/…`.
    pub prefix: String,
    pub url_ttl: Duration,
    /// Uploads in progress at once per user.
    pub max_concurrent: usize,
    /// Uploads started per user per minute.
    pub rate_limit: u32,
}

#[derive(Clone, Debug)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// Custom endpoint (MinIO …), to be used path-style; `None` = AWS.
    pub endpoint: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: Secret,
}

impl UploadsConfig {
    pub(super) fn read(r: &Reader) -> Result<UploadsConfig, ConfigError> {
        let s3 = r
            .opt("S3_BUCKET", p_bucket)?
            .map(|bucket| -> Result<_, ConfigError> {
                const WHY: &str = " but S3_BUCKET is";
                Ok(S3Config {
                    bucket,
                    region: r.need("S3_REGION", WHY, p_text)?,
                    endpoint: r.opt("S3_ENDPOINT", p_secure_url)?,
                    access_key_id: r.need("S3_ACCESS_KEY_ID", WHY, p_text)?,
                    secret_access_key: r.need("S3_SECRET_ACCESS_KEY", WHY, p_secret)?,
                })
            })
            .transpose()?;
        Ok(UploadsConfig {
            s3,
            max_size: r.val("UPLOAD_MAX_SIZE", p_size)?,
            prefix: r.val("UPLOAD_PREFIX", |s, _| {
                path_segments(s).map(|()| s.to_owned())
            })?,
            url_ttl: r.val("UPLOAD_URL_TTL", p_dur)?,
            max_concurrent: r.val("UPLOAD_MAX_CONCURRENT", p_int)?,
            rate_limit: r.val("UPLOAD_RATE_LIMIT", p_int)?,
        })
    }
}

fn p_bucket(s: &str, _: Kind) -> Result<String, String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = (3..=63).contains(&s.len())
        && s.chars().all(|c| ok_char(c) || c == '.' || c == '-')
        && s.starts_with(ok_char)
        && s.ends_with(ok_char);
    if ok {
        Ok(s.to_owned())
    } else {
        Err("is not a valid S3 bucket name".into())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::*;

    #[test]
    fn s3_needs_region_and_keys() {
        let mut pairs = vec![("S3_BUCKET", "chat-files")];
        for next in [
            ("S3_REGION", "eu-west-1"),
            ("S3_ACCESS_KEY_ID", "AKIA1"),
            ("S3_SECRET_ACCESS_KEY", "k"),
        ] {
            assert!(fails(&pairs, next.0).contains("but S3_BUCKET is"));
            pairs.push(next);
        }
        let s3 = ok(&pairs).uploads.s3.unwrap();
        assert_eq!((s3.bucket.as_str(), s3.endpoint), ("chat-files", None));
        for (name, bad) in [
            ("S3_BUCKET", "My_Bucket"),
            ("S3_ENDPOINT", "ftp://minio"),
            ("S3_ENDPOINT", "http://s3.amazonaws.com"),
        ] {
            fails(&[pairs.as_slice(), &[(name, bad)]].concat(), name);
        }
        assert!(
            ok(&[("S3_REGION", "eu-west-1")]).uploads.s3.is_none(),
            "no bucket, no S3"
        );
    }

    #[test]
    fn upload_prefix() {
        for bad in ["/files", "files/", "a/../b", "a b"] {
            fails(&[("UPLOAD_PREFIX", bad)], "UPLOAD_PREFIX");
        }
        assert_eq!(
            ok(&[("UPLOAD_PREFIX", "files/chat")]).uploads.prefix,
            "files/chat"
        );
    }
}
