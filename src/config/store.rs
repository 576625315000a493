//! What `store::open` reads: which backend, where its data lives, how content is sealed,
//! and how many threads may block on it.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;

use super::error::{ConfigError, Secret};
use super::parse::{p_bool, p_dur, p_int, scheme_in};
use super::read::Reader;
use super::table::Kind;

/// Not `Debug`: `encryption_key` is bare key material that `{:?}` would print;
/// `MongoConfig` is, because its URI is a [`Secret`].
#[derive(Clone)]
pub struct StoreConfig {
    /// `None` = embedded store in `data_dir`.
    pub mongo: Option<MongoConfig>,
    pub data_dir: PathBuf,
    /// `None` = messages are stored in plaintext; main should log a warning.
    pub encryption_key: Option<[u8; 32]>,
    pub encrypt_all_fields: bool,
    /// Threads of the store lane.
    pub workers: usize,
}

#[derive(Clone, Debug)]
pub struct MongoConfig {
    /// A secret because a URI usually carries the password.
    pub uri: Secret,
    pub database: String,
    pub collection: String,
    pub connect_timeout: Duration,
    pub retry_attempts: u32,
    pub retry_delay: Duration,
}

impl StoreConfig {
    pub(super) fn read(r: &Reader) -> Result<StoreConfig, ConfigError> {
        let mongo = r
            .opt("MONGO_URI", p_mongo_uri)?
            .map(|uri| -> Result<_, ConfigError> {
                Ok(MongoConfig {
                    uri,
                    database: r.val("MONGO_DATABASE", p_db_name)?,
                    collection: r.val("MONGO_COLLECTION", p_db_name)?,
                    connect_timeout: r.val("MONGO_CONNECT_TIMEOUT", p_dur)?,
                    retry_attempts: r.val("MONGO_RETRY_ATTEMPTS", p_int)?,
                    retry_delay: r.val("MONGO_RETRY_DELAY", p_dur)?,
                })
            })
            .transpose()?;
        Ok(StoreConfig {
            mongo,
            data_dir: r.val("DATA_DIR", |s, _| Ok(PathBuf::from(s)))?,
            encryption_key: r.opt("ENCRYPTION_KEY", p_encryption_key)?,
            encrypt_all_fields: r.val("ENCRYPT_ALL_FIELDS", p_bool)?,
            workers: r.val("STORE_WORKERS", p_int)?,
        })
    }
}

/// Base64 first (the documented form), then the raw 32 bytes existing deployments use.
fn p_encryption_key(s: &str, _: Kind) -> Result<[u8; 32], String> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok();
    let bytes = match &decoded {
        Some(d) if d.len() == 32 => d.as_slice(),
        _ => s.as_bytes(),
    };
    <[u8; 32]>::try_from(bytes).map_err(|_| match decoded {
        Some(d) => format!(
            "decodes from base64 to {} bytes and is {} bytes as text, not 32",
            d.len(),
            s.len()
        ),
        None => format!("is not base64 and is {} bytes as text, not 32", s.len()),
    })
}

fn p_mongo_uri(s: &str, _: Kind) -> Result<Secret, String> {
    scheme_in(s, &["mongodb://", "mongodb+srv://"]).map(|()| Secret::new(s))
}

fn p_db_name(s: &str, _: Kind) -> Result<String, String> {
    match s
        .chars()
        .find(|c| c.is_whitespace() || "/\\\"$".contains(*c))
    {
        Some(c) => Err(format!("contains {c:?}")),
        None => Ok(s.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::table::secs;
    use crate::config::testing::*;

    #[test]
    fn encryption_key_forms() {
        let raw = "0123456789abcdefghijklmnopqrstuv";
        assert_eq!(
            ok(&[("ENCRYPTION_KEY", raw)]).store.encryption_key,
            raw.as_bytes().try_into().ok()
        );
        let key = ok(&[("ENCRYPTION_KEY", KEY_B64)])
            .store
            .encryption_key
            .unwrap();
        assert_eq!(key[31], 31);
        for bad in [
            "AAECAwQFBgcICQoLDA0ODw==",
            &raw[..31],
            "0123456789abcdefghijklmnopqrstuvw",
        ] {
            let msg = fails(&[("ENCRYPTION_KEY", bad)], "ENCRYPTION_KEY");
            assert!(!msg.contains(bad), "{msg}");
        }
    }

    #[test]
    fn storage_settings() {
        let mongo = ok(&[("MONGO_URI", "mongodb://db:27017")])
            .store
            .mongo
            .unwrap();
        assert_eq!(
            (mongo.database.as_str(), mongo.collection.as_str()),
            ("chat", "sessions")
        );
        assert_eq!((mongo.connect_timeout, mongo.retry_attempts), (secs(10), 3));
        assert_eq!(
            (mongo.retry_delay, mongo.uri.expose_str()),
            (Duration::from_millis(100), "mongodb://db:27017")
        );
        for bad in ["postgres://db", "mongodb://", "db:27017"] {
            fails(&[("MONGO_URI", bad)], "MONGO_URI");
        }
        fails(
            &[("MONGO_URI", "mongodb://db"), ("MONGO_DATABASE", "my db")],
            "MONGO_DATABASE",
        );
    }
}
