//! Decimal digits for the hot paths (numbers in hand-written JSON, timestamps in every
//! frame) without a `div` instruction per digit.
//!
//! The release build is `opt-level = "z"`, and under it LLVM keeps a division by a
//! constant as the hardware `div` (it counts division as cheap when optimising for
//! size) instead of a multiply by the reciprocal: a 64-bit `div` is tens of cycles, and
//! a 13-digit millisecond timestamp took thirteen of them. `perf` put `json::uint` at
//! 5 % of the store lane's time. Here the reciprocal multiply is written out, so the
//! build setting cannot undo it.

/// `n / 10` and `n % 10`, exact for every `u64`: ⌈2⁶⁷ / 10⌉ is the magic number
/// (Granlund and Montgomery), and the 128-bit product is one `mul` on x86-64.
pub fn div10(n: u64) -> (u64, u8) {
    const RECIPROCAL: u128 = 0xCCCC_CCCC_CCCC_CCCD;
    let quotient = ((u128::from(n) * RECIPROCAL) >> 67) as u64;
    // The remainder is below 10, so it fits a byte.
    (quotient, (n - quotient * 10) as u8)
}

/// The digits of `value`, most significant first.
pub fn uint(out: &mut String, mut value: u64) {
    let mut digits = [0_u8; 20];
    let mut start = digits.len();
    loop {
        let (quotient, digit) = div10(value);
        start -= 1;
        digits[start] = b'0' + digit;
        value = quotient;
        if value == 0 {
            break;
        }
    }
    // One copy rather than a push per digit (a call each, callgrind); ASCII digits are
    // always UTF-8.
    if let Ok(text) = std::str::from_utf8(&digits[start..]) {
        out.push_str(text);
    }
}

/// `value`'s last `field.len()` digits, zero-padded, into `field`.
pub fn fixed_width(field: &mut [u8], mut value: u64) {
    for digit in field.iter_mut().rev() {
        let (quotient, last) = div10(value);
        *digit = b'0' + last;
        value = quotient;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn div10_is_exact_across_the_range() {
        let edges = [
            0,
            1,
            9,
            10,
            11,
            99,
            100,
            u64::MAX / 10,
            u64::MAX - 1,
            u64::MAX,
        ];
        let mut n: u64 = 1;
        let spread = std::iter::from_fn(|| {
            n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            Some(n)
        });
        for value in edges.into_iter().chain(spread.take(100_000)) {
            assert_eq!(div10(value), (value / 10, (value % 10) as u8), "{value}");
        }
    }

    #[test]
    fn uint_writes_what_display_writes() {
        for value in [0, 7, 10, 1_765_000_000_123, u64::MAX] {
            let mut out = String::from("x");
            uint(&mut out, value);
            assert_eq!(out, format!("x{value}"));
        }
    }

    #[test]
    fn fixed_width_pads_and_keeps_the_last_digits() {
        let mut field = [0_u8; 4];
        fixed_width(&mut field, 7);
        assert_eq!(&field, b"0007");
        fixed_width(&mut field[1..], 12_345);
        assert_eq!(&field, b"0345");
    }
}
