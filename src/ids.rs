//! Identifiers that must not be guessable: session ids, message ids, share tokens.

/// 128 random bits as 32 lowercase hex characters (the spec's id format).
pub fn random_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    // By hand: `write!` per byte cost more than the random bytes (two ids per exchange).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for byte in bytes {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_32_lowercase_hex_and_differ() {
        let a = super::random_id().expect("rng");
        let b = super::random_id().expect("rng");
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(a, b);
    }
}
