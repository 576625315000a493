//! Expiring links to local files: `?exp=<unix seconds>&sig=<hex HMAC-SHA256>` over the
//! file id and the expiry, so a link cannot be moved to another file or kept alive.
//! The key is derived from `JWT_SECRET` under a label of its own: a link's signature is
//! never a valid signature of anything else.

use std::fmt::Write;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const LABEL: &[u8] = b"chatbox file links v1";

#[derive(Debug, PartialEq, Eq)]
pub enum LinkError {
    Expired,
    /// Missing, malformed, or signed for something else.
    BadSignature,
}

#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl Signer {
    pub fn new(secret: &[u8]) -> Signer {
        Signer {
            key: mac(secret, LABEL),
        }
    }

    /// The query string of a link to `file_id` that is valid until `exp`.
    pub fn query(&self, file_id: &str, exp: u64) -> String {
        format!("exp={exp}&sig={}", hex(&self.sign(file_id, exp)))
    }

    /// Checks a link's `exp` and `sig` at `now`.
    pub fn verify(&self, file_id: &str, exp: &str, sig: &str, now: u64) -> Result<(), LinkError> {
        let exp: u64 = exp.parse().map_err(|_| LinkError::BadSignature)?;
        let sig = unhex(sig).ok_or(LinkError::BadSignature)?;
        let mut check =
            HmacSha256::new_from_slice(&self.key).map_err(|_| LinkError::BadSignature)?;
        check.update(&message(file_id, exp));
        // Constant time: the comparison tells nothing about how much of a guess matched.
        check
            .verify_slice(&sig)
            .map_err(|_| LinkError::BadSignature)?;
        if exp <= now {
            return Err(LinkError::Expired);
        }
        Ok(())
    }

    fn sign(&self, file_id: &str, exp: u64) -> Vec<u8> {
        mac(&self.key, &message(file_id, exp))
    }
}

fn message(file_id: &str, exp: u64) -> Vec<u8> {
    format!("{file_id}\n{exp}").into_bytes()
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(query: &str) -> (String, String) {
        let (exp, sig) = query.split_once('&').expect("two parts");
        (
            exp.trim_start_matches("exp=").to_owned(),
            sig.trim_start_matches("sig=").to_owned(),
        )
    }

    #[test]
    fn a_link_is_valid_for_its_file_until_it_expires() {
        let signer = Signer::new(b"k");
        let (exp, sig) = parts(&signer.query("f1", 100));
        assert_eq!(signer.verify("f1", &exp, &sig, 99), Ok(()));
        assert_eq!(
            signer.verify("f1", &exp, &sig, 100),
            Err(LinkError::Expired)
        );
        assert_eq!(
            signer.verify("f2", &exp, &sig, 99),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            signer.verify("f1", "101", &sig, 99),
            Err(LinkError::BadSignature)
        );
        let mut tampered = sig.clone().into_bytes();
        tampered[0] = if tampered[0] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert_eq!(
            signer.verify("f1", &exp, &tampered, 99),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            signer.verify("f1", &exp, "zz", 99),
            Err(LinkError::BadSignature)
        );
        let other = Signer::new(b"other");
        assert_eq!(
            other.verify("f1", &exp, &sig, 99),
            Err(LinkError::BadSignature)
        );
    }
}
