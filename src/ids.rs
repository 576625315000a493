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
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0u8; 32];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
    // Whole bytes, then one copy: a `String::push` per digit was 3k instructions per
    // chat exchange. Hex digits are ASCII, so the lossy decoding never replaces one.
    String::from_utf8_lossy(&hex).into_owned()
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
