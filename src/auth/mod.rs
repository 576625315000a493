//! JWT authentication (spec: websocket.md §Auth, http.md §Auth/§Errors).
//!
//! HMAC only: HS256/HS384/HS512 with the raw secret bytes. We read the header's `alg`
//! ourselves first, so `none`/RS*/ES*/PS*/EdDSA are refused before the key is touched, and
//! jsonwebtoken is then told to accept exactly that one algorithm (the list is ours, never
//! the token's). `exp`/`nbf` are checked here against the caller's `now` with no leeway:
//! jsonwebtoken's own checks read the system clock and default to 60 s of leeway. An
//! `exp` more than [`MAX_TOKEN_LIFETIME_SECS`] ahead is refused like an expired one.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The only algorithms we accept, by their exact (case-sensitive) header names.
const ALGS: [(&str, Algorithm); 3] = [
    ("HS256", Algorithm::HS256),
    ("HS384", Algorithm::HS384),
    ("HS512", Algorithm::HS512),
];

/// How far ahead of now an `exp` may lie (10 years). No real issuer needs more, a leaked
/// token should not outlive the deployment, and an `exp` this side of it always fits the
/// loop's monotonic clock (an `exp` of 1e19 once overflowed `Instant` and crashed us).
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub name: String,
    pub roles: Vec<String>,
    /// `exp` in unix seconds (a fractional `exp` is rounded up: valid strictly before it).
    pub expires_at: Option<u64>,
}

impl Identity {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin" || r == "chat_admin")
    }
}

/// Why authentication failed. The variant is for logs only; clients get
/// [`AuthError::http_code`] / [`AuthError::http_message`], which never say why.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    /// `Authorization` is missing or not `Bearer <token>`.
    MalformedHeader,
    /// Not a JWT, or a claim has the wrong JSON type (e.g. `roles` not an array of
    /// strings, `exp` not a number): present-but-mistyped is malformed, not missing.
    Malformed,
    AlgorithmNotAllowed,
    BadSignature,
    /// Required claim absent, `null`, or (for `user_id`) empty.
    MissingClaim(&'static str),
    Expired,
    /// `exp` more than [`MAX_TOKEN_LIFETIME_SECS`] ahead.
    ExpiresTooLate,
    NotYetValid,
    /// No `exp` while `REQUIRE_EXP` is on.
    MissingExp,
    Mint(String),
}

impl AuthError {
    /// `code` of the 401 body (http.md §Errors).
    pub fn http_code(&self) -> &'static str {
        match self {
            AuthError::MalformedHeader => "UNAUTHORIZED",
            _ => "INVALID_TOKEN",
        }
    }

    /// Generic client-facing `error` text matching [`AuthError::http_code`].
    pub fn http_message(&self) -> &'static str {
        match self {
            AuthError::MalformedHeader => "Invalid authorization header",
            _ => "Invalid or expired authentication token",
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::MalformedHeader => {
                f.write_str("authorization header is not `Bearer <token>`")
            }
            AuthError::Malformed => f.write_str("token is not a well-formed JWT with typed claims"),
            AuthError::AlgorithmNotAllowed => f.write_str("token alg is not HS256/HS384/HS512"),
            AuthError::BadSignature => f.write_str("token signature does not verify"),
            AuthError::MissingClaim(c) => write!(f, "token lacks required claim `{c}`"),
            AuthError::Expired => f.write_str("token expired"),
            AuthError::ExpiresTooLate => f.write_str("token exp is more than 10 years ahead"),
            AuthError::NotYetValid => f.write_str("token not yet valid (nbf)"),
            AuthError::MissingExp => f.write_str("token has no exp and REQUIRE_EXP is on"),
            AuthError::Mint(e) => write!(f, "cannot mint token: {e}"),
        }
    }
}

impl std::error::Error for AuthError {}

/// Verifies tokens; build once at start-up and share (it is `Send + Sync`).
#[derive(Clone, Debug)] // DecodingKey's Debug redacts the secret.
pub struct Verifier {
    /// `None` for an empty secret: HMAC with an empty key is forgeable by anyone, so we
    /// fail closed (every token → `BadSignature`) even if start-up forgot to refuse it.
    key: Option<DecodingKey>,
    /// One pinned `Validation` per entry of `ALGS`, same index.
    validations: [Validation; 3],
    require_exp: bool,
}

impl Verifier {
    pub fn new(secret: &[u8], require_exp: bool) -> Verifier {
        let pinned = |(_, alg): (&str, Algorithm)| {
            let mut v = Validation::new(alg);
            v.leeway = 0;
            // Time claims are ours (caller's clock); exp presence is ours (MissingExp).
            v.validate_exp = false;
            v.validate_nbf = false;
            v.required_spec_claims.clear();
            // We configure no audience; left on, jsonwebtoken would reject every token
            // that merely carries an `aud` claim, which the spec does not ask for.
            v.validate_aud = false;
            v
        };
        hmac::install();
        Verifier {
            key: (!secret.is_empty()).then(|| DecodingKey::from_secret(secret)),
            validations: ALGS.map(pinned),
            require_exp,
        }
    }

    /// `now` = unix seconds. `exp` is valid strictly before it (RFC 7519; also matches
    /// closing the socket "at exp"); `nbf` is valid from it on.
    pub fn verify(&self, token: &str, now: u64) -> Result<Identity, AuthError> {
        let idx = pinned_alg_index(token)?;
        let key = self.key.as_ref().ok_or(AuthError::BadSignature)?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validations[idx])
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::InvalidAlgorithm => AuthError::AlgorithmNotAllowed,
                // Base64/JSON/shape errors; its claim and time checks are switched off.
                _ => AuthError::Malformed,
            })?
            .claims;

        let user_id = claims
            .user_id
            .filter(|u| !u.is_empty())
            .ok_or(AuthError::MissingClaim("user_id"))?;
        let roles = claims.roles.ok_or(AuthError::MissingClaim("roles"))?;
        let expires_at = claims.exp.map(numeric_date);
        match expires_at {
            None if self.require_exp => return Err(AuthError::MissingExp),
            Some(exp) if now >= exp => return Err(AuthError::Expired),
            Some(exp) if exp - now > MAX_TOKEN_LIFETIME_SECS => {
                return Err(AuthError::ExpiresTooLate)
            }
            _ => {}
        }
        if claims.nbf.map(numeric_date).is_some_and(|nbf| now < nbf) {
            return Err(AuthError::NotYetValid);
        }
        // An empty name would render as nothing in the UI; treat it like an absent one.
        let name = claims
            .name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| user_id.clone());
        Ok(Identity {
            user_id,
            name,
            roles,
            expires_at,
        })
    }
}

/// Claims we read. Unknown claims are ignored; a duplicated key is a serde error (Malformed),
/// so a token cannot carry two different `user_id`s.
#[derive(Deserialize)]
struct Claims {
    user_id: Option<String>,
    roles: Option<Vec<String>>,
    name: Option<String>,
    // NumericDate may be fractional (RFC 7519 §2).
    exp: Option<f64>,
    nbf: Option<f64>,
}

/// Round up so a fractional time is never treated as earlier than it is; `as` saturates
/// (negative → 0, huge → u64::MAX).
fn numeric_date(t: f64) -> u64 {
    t.ceil() as u64
}

/// Index into `ALGS` of the header's `alg`, read without touching the key. jsonwebtoken's
/// `decode_header` cannot do this: an `alg` outside its enum (e.g. `none`) is just a JSON
/// error there, indistinguishable from garbage.
fn pinned_alg_index(token: &str) -> Result<usize, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let header: serde_json::Map<String, serde_json::Value> = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or(AuthError::Malformed)?;
    // RFC 7515 §4.1.11: extensions listed in `crit` must be understood; we understand none.
    if header.contains_key("crit") {
        return Err(AuthError::Malformed);
    }
    let alg = header
        .get("alg")
        .and_then(|a| a.as_str())
        .ok_or(AuthError::Malformed)?;
    ALGS.iter()
        .position(|(name, _)| *name == alg)
        .ok_or(AuthError::AlgorithmNotAllowed)
}

#[derive(Serialize)]
struct MintClaims<'a> {
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    roles: &'a [String],
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
}

/// HS256 token for `chatbox token` and `--dev`. `ttl_secs: None` mints a token without
/// `exp`, which a `REQUIRE_EXP=true` server refuses.
pub fn mint(
    secret: &[u8],
    user_id: &str,
    name: Option<&str>,
    roles: &[String],
    issued_at: u64,
    ttl_secs: Option<u64>,
) -> Result<String, AuthError> {
    // Refuse to mint what `Verifier` would refuse, or what anyone could forge.
    if secret.is_empty() {
        return Err(AuthError::Mint("empty secret".into()));
    }
    if user_id.is_empty() {
        return Err(AuthError::Mint("empty user_id".into()));
    }
    if ttl_secs.is_some_and(|ttl| ttl > MAX_TOKEN_LIFETIME_SECS) {
        return Err(AuthError::Mint("ttl is over the 10-year limit".into()));
    }
    let exp = match ttl_secs {
        Some(ttl) => Some(
            issued_at
                .checked_add(ttl)
                .ok_or_else(|| AuthError::Mint("issued_at + ttl overflows".into()))?,
        ),
        None => None,
    };
    hmac::install();
    let claims = MintClaims {
        user_id,
        name,
        roles,
        iat: issued_at,
        exp,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| AuthError::Mint(e.to_string()))
}

/// `Authorization` value → token. The scheme is the exact, case-sensitive `Bearer `
/// (as the old service); surrounding spaces around the token are dropped (RFC 6750 allows
/// `1*SP` after the scheme, HTTP allows trailing OWS).
pub fn bearer_token(header_value: &str) -> Result<&str, AuthError> {
    match header_value.strip_prefix("Bearer ").map(str::trim) {
        Some(token) if !token.is_empty() => Ok(token),
        _ => Err(AuthError::MalformedHeader),
    }
}

mod hmac;

#[cfg(test)]
mod tests;
