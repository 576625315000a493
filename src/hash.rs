//! A hasher for the ids the server makes itself (job ids, socket ids, connection ids),
//! the keys of the loop's busiest maps. The standard SipHash-1-3 keyed per map guards a
//! map against keys chosen to collide (HashDoS), which only an outsider's keys need; for
//! a counter or a slot number it was ~14k instructions of a chat exchange (callgrind).
//! Keys a client names (session ids, user ids, rate-limit keys) go in a [`NameMap`]:
//! aHash with keys drawn at random per map, which is built to resist chosen collisions.
//! On SipHash, hashing was ~9 % of the loop's instructions per chat exchange (11.8k);
//! with these maps on aHash it is 3.7k (callgrind).
//!
//! One multiply per word, the 128-bit product's halves folded together (foldhash's
//! folded multiply): every bit of the result depends on every bit of the key, so both
//! the bits hashbrown takes the bucket from (the low ones) and the tag (the top seven)
//! spread, for counters and for ids that differ only in their high half (a slot's
//! generation) alike.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by an id the server made.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
/// A set of ids the server made.
pub type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;
/// A map keyed by a name a client may choose.
pub type NameMap<K, V> = HashMap<K, V, ahash::RandomState>;
/// A set of names a client may choose.
pub type NameSet<K> = HashSet<K, ahash::RandomState>;

/// An odd constant with its bits spread (rustc-hash 2's).
const SPREAD: u64 = 0xf135_7aea_2e62_a9c5;

#[derive(Clone, Copy, Default)]
pub struct IdHasher(u64);

impl IdHasher {
    fn add(&mut self, word: u64) {
        let product = u128::from(self.0 ^ word) * u128::from(SPREAD);
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0_u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let mut tail = [0_u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        // The length goes in with the tail, so that "a" and "a\0" differ.
        self.add(u64::from_le_bytes(tail) ^ ((bytes.len() as u64) << 56));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    fn hash<T: std::hash::Hash>(value: T) -> u64 {
        BuildHasherDefault::<IdHasher>::default().hash_one(value)
    }

    /// How many of `hashes` share a bucket of a table of `buckets` (a power of two), or
    /// its tag, with an earlier one: what hashbrown would probe past.
    fn clashes(hashes: &[u64], buckets: u64) -> (usize, usize) {
        let mut slots = HashSet::new();
        let mut tags = HashSet::new();
        let slot_clashes = hashes
            .iter()
            .filter(|&&h| !slots.insert(h & (buckets - 1)))
            .count();
        let tag_clashes = hashes.iter().filter(|&&h| !tags.insert(h >> 57)).count();
        (slot_clashes, tag_clashes)
    }

    #[test]
    fn counters_and_slot_ids_spread_over_buckets_and_tags() {
        let counters: Vec<u64> = (1..=1024_u64).map(hash).collect();
        // Same slot, generations counting up: only the high half differs.
        let generations: Vec<u64> = (0..1024_u64).map(|g| hash((g << 32) | 7)).collect();
        for hashes in [&counters, &generations] {
            let (slots, tags) = clashes(&hashes[..128], 256);
            // Uniform hashes put 128 keys in 256 buckets with ~28 clashes; a weak
            // spread of the high half puts them all in one.
            assert!(slots < 48, "{slots} bucket clashes");
            // 128 keys over 128 tags: ~47 clashes when uniform.
            assert!(tags < 64, "{tags} tag clashes");
        }
    }

    #[test]
    fn every_width_and_byte_string_is_told_apart() {
        assert_ne!(hash(1_u32), hash(2_u32));
        assert_ne!(hash(1_u64), hash(1_u64 << 32));
        let mut seen = HashSet::new();
        for bytes in [
            &b""[..],
            b"a",
            b"a\0",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefghi",
        ] {
            let mut hasher = IdHasher::default();
            hasher.write(bytes);
            assert!(seen.insert(hasher.finish()), "{bytes:?} clashes");
        }
    }
}
