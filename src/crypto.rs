//! Encryption at rest for stored text (`spec/storage.md` §Encryption at rest).
//!
//! The stored form is the old service's: standard base64 (with padding) of
//! `nonce (12 random bytes) || ciphertext || tag (16 bytes)`, AES-256-GCM, no associated
//! data. Reading is lenient on purpose: deployments switched encryption on over existing
//! plaintext, so a value that does not decode or authenticate is returned as stored.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why [`Cipher::seal`] could not encrypt. Opening never fails (see [`Cipher::open`]).
#[derive(Debug)]
pub enum SealError {
    /// The operating system's random source failed. Without a fresh nonce nothing may be
    /// encrypted: a repeated nonce under one key breaks GCM.
    Rng(getrandom::Error),
    /// AES-GCM refused the plaintext (only possible beyond GCM's 64 GiB limit).
    TooLong,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::Rng(err) => write!(f, "no random nonce: {err}"),
            SealError::TooLong => f.write_str("plaintext too long for AES-GCM"),
        }
    }
}

impl std::error::Error for SealError {}

/// AES-256-GCM under one key. Not `Debug`, so the key schedule cannot end up in a log.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
}

impl Cipher {
    pub fn new(key: &[u8; 32]) -> Cipher {
        Cipher {
            aead: Aes256Gcm::new(&(*key).into()),
        }
    }

    /// Encrypts `plaintext` under a fresh random nonce.
    pub fn seal(&self, plaintext: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(SealError::Rng)?;
        self.seal_with_nonce(&nonce, plaintext)
    }

    /// Split from [`Cipher::seal`] so a known-answer test can fix the nonce.
    fn seal_with_nonce(
        &self,
        nonce: &[u8; NONCE_LEN],
        plaintext: &str,
    ) -> Result<String, SealError> {
        let sealed = self
            .aead
            .encrypt(&(*nonce).into(), plaintext.as_bytes())
            .map_err(|_| SealError::TooLong)?;
        let mut stored = Vec::with_capacity(NONCE_LEN + sealed.len());
        stored.extend_from_slice(nonce);
        stored.extend_from_slice(&sealed);
        Ok(STANDARD.encode(stored))
    }

    /// The plaintext of a sealed value; `stored` itself when it is not one (not base64,
    /// too short, wrong key or tampered, or not UTF-8 inside): such values are plaintext
    /// written before encryption was switched on, and a reader must still see them.
    pub fn open(&self, stored: &str) -> String {
        self.try_open(stored).unwrap_or_else(|| stored.to_owned())
    }

    fn try_open(&self, stored: &str) -> Option<String> {
        let bytes = STANDARD.decode(stored).ok()?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let plain = self.aead.decrypt(&nonce.into(), sealed).ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn round_trip() {
        let cipher = Cipher::new(&KEY);
        for text in ["", "hello", "Grüße, 世界 🚀", &"x".repeat(100_000)] {
            let sealed = cipher.seal(text).unwrap();
            assert_ne!(sealed, text);
            assert_eq!(
                STANDARD.decode(&sealed).unwrap().len(),
                NONCE_LEN + text.len() + TAG_LEN
            );
            assert_eq!(cipher.open(&sealed), text);
        }
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let cipher = Cipher::new(&KEY);
        let a = STANDARD.decode(cipher.seal("same").unwrap()).unwrap();
        let b = STANDARD.decode(cipher.seal("same").unwrap()).unwrap();
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn tampered_or_foreign_values_come_back_as_stored() {
        let cipher = Cipher::new(&KEY);
        let sealed = cipher.seal("secret").unwrap();
        let mut bytes = STANDARD.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = STANDARD.encode(&bytes);
        assert_eq!(cipher.open(&tampered), tampered);
        assert_eq!(Cipher::new(&[8; 32]).open(&sealed), sealed, "other key");
    }

    #[test]
    fn plaintext_passes_through() {
        let cipher = Cipher::new(&KEY);
        let short_base64 = STANDARD.encode([0u8; NONCE_LEN + TAG_LEN - 1]);
        for text in [
            "",
            "hello world",
            "aGVsbG8=",
            "Zm9v\n",
            &short_base64,
            "ünïcödé",
        ] {
            assert_eq!(cipher.open(text), text);
        }
    }

    /// McGrew & Viega, "The Galois/Counter Mode of Operation", test case 14: AES-256,
    /// zero key, zero 96-bit IV, 16 zero bytes of plaintext (valid UTF-8), no AAD.
    #[test]
    fn known_answer() {
        let cipher = Cipher::new(&[0; 32]);
        let plaintext = "\0".repeat(16);
        let expected = [
            "000000000000000000000000",         // nonce
            "cea7403d4d606b6e074ec5d3baf39d18", // ciphertext
            "d0d1c8a799996bf0265b98b5d48ab919", // tag
        ]
        .concat();
        let expected: Vec<u8> = (0..expected.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&expected[i..i + 2], 16).unwrap())
            .collect();
        let expected = STANDARD.encode(expected);
        assert_eq!(
            cipher.seal_with_nonce(&[0; NONCE_LEN], &plaintext).unwrap(),
            expected
        );
        assert_eq!(cipher.open(&expected), plaintext);
    }
}
