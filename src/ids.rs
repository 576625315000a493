//! Identifiers that must not be guessable: session ids, message ids, share tokens.
//!
//! The bits come from rand's `ThreadRng`, a CSPRNG (ChaCha12) that each thread seeds
//! from the OS and reseeds from it every 64 KiB: no system call per id, where asking the
//! OS for each one cost two `getrandom` calls per chat exchange. A thread whose OS
//! random source fails at seeding panics; on the loop that is contained to the
//! connection being served (`net::reactor::contain`).

use rand::RngCore;

/// 128 random bits as 32 lowercase hex characters (the spec's id format).
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    // By hand: `write!` per byte cost more than the random bytes (two ids per exchange).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for byte in bytes {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_32_lowercase_hex_and_differ() {
        let a = super::random_id();
        let b = super::random_id();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(a, b);
    }
}
