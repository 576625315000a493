//! What token verification reads: the signing key and whether a token must expire.

use super::error::{ConfigError, Secret};
use super::parse::p_bool;
use super::read::Reader;
use super::table::Kind;

#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub jwt_secret: Secret,
    pub require_exp: bool,
}

impl AuthConfig {
    pub(super) fn read(r: &Reader) -> Result<AuthConfig, ConfigError> {
        Ok(AuthConfig {
            jwt_secret: r.val("JWT_SECRET", p_jwt_secret)?,
            require_exp: r.val("REQUIRE_EXP", p_bool)?,
        })
    }
}

/// Substrings that mark a JWT secret as copied from a sample rather than generated.
const WEAK_WORDS: &str =
    "secret test password admin changeme default example demo 12345 placeholder replace_with \
     change-me change_me your-";

fn p_jwt_secret(s: &str, _: Kind) -> Result<Secret, String> {
    if s.len() < 32 {
        return Err(format!("is {} bytes long, fewer than 32", s.len()));
    }
    let lower = s.to_lowercase();
    match WEAK_WORDS.split(' ').find(|w| lower.contains(w)) {
        Some(w) => Err(format!("contains the sample word {w:?}")),
        None => Ok(Secret::new(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::*;
    use crate::config::Config;

    #[test]
    fn jwt_secret_missing_short_or_weak() {
        let mut vars = env(&[]);
        vars.remove("JWT_SECRET");
        let e = Config::from_vars(&vars).err().unwrap();
        assert_eq!(
            (e.variable.as_str(), e.problem.as_str()),
            ("JWT_SECRET", "is not set")
        );
        assert!(fails(&[("JWT_SECRET", "")], "JWT_SECRET").contains("is not set"));
        let short = &GOOD_SECRET[..31];
        let msg = fails(&[("JWT_SECRET", short)], "JWT_SECRET");
        assert!(msg.contains("31 bytes") && !msg.contains(short), "{msg}");
        for word in WEAK_WORDS.split(' ') {
            let secret = format!("Qx7{}Zp9vN3xW0pLr7Kc2Hm5Tj9Yb4Fg", word.to_uppercase());
            let msg = fails(&[("JWT_SECRET", &secret)], "JWT_SECRET");
            assert!(
                msg.to_lowercase().contains(word) && !msg.contains(&secret),
                "{msg}"
            );
        }
    }
}
