//! jsonwebtoken's crypto, HMAC only, on `ring`.
//!
//! jsonwebtoken 11 needs a `CryptoProvider`. Its `rust_crypto` one links RSA, P-256/384
//! and Ed25519 (and the `rsa` crate, RUSTSEC-2023-0071) that our pinned HS256/384/512
//! never reach. `ring` is already in the binary for TLS, HMAC-SHA-256/384/512 included,
//! so this provider costs next to nothing and its verify compares in constant time.
//! Every other algorithm is refused here too, not only by `Verifier`'s pinning.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use ring::hmac;

static HMAC_ONLY: CryptoProvider = CryptoProvider {
    signer_factory,
    verifier_factory,
    // JWKs (RSA/EC key components, thumbprints) are never used: these panic if called.
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes [`HMAC_ONLY`] the process's provider. Call before the first encode or decode:
/// jsonwebtoken fixes its provider at first use, and with no crypto feature that is one
/// that panics. Calling again is harmless (the first install stays).
pub(super) fn install() {
    // Err means a provider is installed already; the only installer is this function.
    let _ = HMAC_ONLY.install_default();
}

/// One HMAC key for one algorithm; it both signs and verifies.
struct Hmac {
    key: hmac::Key,
    alg: Algorithm,
}

impl Hmac {
    fn new(alg: Algorithm, family: AlgorithmFamily, secret: &[u8]) -> Result<Hmac> {
        let ring_alg = match alg {
            Algorithm::HS256 => hmac::HMAC_SHA256,
            Algorithm::HS384 => hmac::HMAC_SHA384,
            Algorithm::HS512 => hmac::HMAC_SHA512,
            _ => return Err(ErrorKind::InvalidAlgorithm.into()),
        };
        if family != AlgorithmFamily::Hmac {
            return Err(ErrorKind::InvalidKeyFormat.into());
        }
        Ok(Hmac {
            key: hmac::Key::new(ring_alg, secret),
            alg,
        })
    }
}

fn signer_factory(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Ok(Box::new(Hmac::new(*alg, key.family(), key.as_bytes())?))
}

fn verifier_factory(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    Ok(Box::new(Hmac::new(
        *alg,
        key.family(),
        key.try_get_as_bytes()?,
    )?))
}

impl Signer<Vec<u8>> for Hmac {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        Ok(hmac::sign(&self.key, msg).as_ref().to_vec())
    }
}

impl Verifier<Vec<u8>> for Hmac {
    fn verify(&self, msg: &[u8], tag: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        hmac::verify(&self.key, msg, tag).map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Hmac {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

impl JwtVerifier for Hmac {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}
