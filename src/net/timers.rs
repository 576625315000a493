//! One hashed timer wheel for the whole event loop.
//!
//! Every connection has a few deadlines (HTTP head, keep-alive idle, WebSocket ping and
//! pong, drain), and most of them are re-armed long before they fire. So scheduling is
//! O(1) and there is no cancel: the owner remembers the tick it armed last and ignores
//! a fired entry whose tick no longer matches (lazy cancellation). That costs one stale
//! entry per re-arm, gone when its tick passes, instead of an index from keys to entries.
//!
//! Time is cut into ticks counted from `origin`; tick `t` lives in slot `t % slots`, and
//! each entry keeps its absolute tick, so an entry several rotations away simply waits
//! in its slot until a visit finds it due. Each slot also remembers its earliest tick,
//! which lets `expire` skip slots with nothing due and `next_deadline` answer exactly
//! in at most one rotation's worth of steps, without looking at entries.

use std::time::{Duration, Instant};

struct Entry<K> {
    tick: u64,
    key: K,
}

struct Slot<K> {
    entries: Vec<Entry<K>>,
    /// Earliest tick in `entries`; `u64::MAX` when empty.
    min_tick: u64,
}

pub struct TimerWheel<K> {
    origin: Instant,
    tick_nanos: u128,
    slots: Vec<Slot<K>>,
    /// The last tick `expire` reached; every entry with a tick before it has fired, and
    /// every stored entry has a tick at or after it.
    current: u64,
    len: usize,
    /// The earliest tick of any entry (`u64::MAX` when none), kept exact: lowered by
    /// `schedule`, rescanned by `expire` only once it has fired. Scanning on every poll
    /// instead cost up to a rotation (1,024 slots) per loop turn when every deadline
    /// lies a minute away, as an open WebSocket's do.
    earliest: u64,
}

impl<K: Copy> TimerWheel<K> {
    /// A wheel counting ticks of `tick` from `origin`; no instant before `origin` should
    /// ever be passed in. `slots` × `tick` is one rotation; entries further away still
    /// work, they are only visited (not fired) once per rotation.
    ///
    /// # Panics
    /// If `tick` is zero or `slots` is zero: both are configuration bugs.
    pub fn new(origin: Instant, tick: Duration, slots: usize) -> Self {
        assert!(!tick.is_zero(), "timer wheel tick must be non-zero");
        assert!(slots > 0, "timer wheel needs at least one slot");
        TimerWheel {
            origin,
            tick_nanos: tick.as_nanos(),
            slots: (0..slots)
                .map(|_| Slot {
                    entries: Vec::new(),
                    min_tick: u64::MAX,
                })
                .collect(),
            current: 0,
            len: 0,
            earliest: u64::MAX,
        }
    }

    /// Arms `key` to fire at `at` (rounded up to a tick, so never early) and returns the
    /// tick it will be reported with; an `at` already past fires at the next `expire`.
    pub fn schedule(&mut self, at: Instant, key: K) -> u64 {
        let nanos = at.saturating_duration_since(self.origin).as_nanos();
        let tick = to_tick(nanos.div_ceil(self.tick_nanos)).max(self.current);
        let slot = self.slot_mut(tick);
        slot.entries.push(Entry { tick, key });
        slot.min_tick = slot.min_tick.min(tick);
        self.len += 1;
        self.earliest = self.earliest.min(tick);
        tick
    }

    /// The instant of the earliest armed tick, for the poll timeout; `None` when empty
    /// (or when that tick lies beyond what `Instant` can represent).
    /// It may be earlier than the caller's `now` (an entry is overdue): poll without
    /// waiting then. Called on every loop turn, so it only converts `earliest`.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        let nanos = u128::from(self.earliest) * self.tick_nanos;
        let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
        // The remainder is below 10^9, so it fits.
        self.origin
            .checked_add(Duration::new(secs, (nanos % 1_000_000_000) as u32))
    }

    /// The earliest tick stored, found in at most one rotation's worth of steps: every
    /// entry in the slot visited at tick `t` has a tick >= `t` (all earlier ones have
    /// fired), so once the best found is <= `t`, no later slot can beat it.
    fn scan_earliest(&self) -> u64 {
        if self.len == 0 {
            return u64::MAX;
        }
        let mut best = u64::MAX;
        for t in self.current..self.current + self.slots.len() as u64 {
            best = best.min(self.slot(t).min_tick);
            if best <= t {
                break;
            }
        }
        best
    }

    /// Advances to `now` and appends every due entry (tick <= `now`'s tick) to `out` as
    /// (tick, key). However far `now` jumps, each slot is visited at most once.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<(u64, K)>) {
        let nanos = now.saturating_duration_since(self.origin).as_nanos();
        let now_tick = to_tick(nanos / self.tick_nanos).max(self.current);
        // Starts at `current` itself: entries scheduled in the past were put there.
        let last = now_tick.min(self.current + self.slots.len() as u64 - 1);
        let before = out.len();
        for t in self.current..=last {
            let slot = self.slot_mut(t);
            if slot.min_tick > now_tick {
                continue;
            }
            let mut min_tick = u64::MAX;
            slot.entries.retain(|entry| {
                if entry.tick <= now_tick {
                    out.push((entry.tick, entry.key));
                    false
                } else {
                    min_tick = min_tick.min(entry.tick);
                    true
                }
            });
            slot.min_tick = min_tick;
        }
        self.len -= out.len() - before;
        self.current = now_tick;
        if self.earliest <= now_tick {
            self.earliest = self.scan_earliest();
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot(&self, tick: u64) -> &Slot<K> {
        &self.slots[(tick % self.slots.len() as u64) as usize]
    }

    fn slot_mut(&mut self, tick: u64) -> &mut Slot<K> {
        let len = self.slots.len() as u64;
        &mut self.slots[(tick % len) as usize]
    }
}

/// Ticks past `u64::MAX` (half a million years at 1 ns) are treated as "never".
fn to_tick(ticks: u128) -> u64 {
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(10);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn never_early_and_within_one_tick() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin, TICK, 16);
        let offsets = [0, 1, 9, 10, 11, 15, 20, 99, 100, 101];
        for (key, &off) in offsets.iter().enumerate() {
            wheel.schedule(origin + ms(off), key);
        }
        let mut fired_at = vec![None; offsets.len()];
        let mut out = Vec::new();
        for step in 0..=200 {
            out.clear();
            wheel.expire(origin + ms(step), &mut out);
            for &(_, key) in &out {
                assert!(fired_at[key].replace(step).is_none(), "fired twice");
            }
        }
        for (key, &off) in offsets.iter().enumerate() {
            let at = fired_at[key].expect("never fired");
            assert!(
                at >= off,
                "key {key} due at {off} ms fired early at {at} ms"
            );
            assert!(
                at < off + 10,
                "key {key} due at {off} ms fired late at {at} ms"
            );
        }
        assert!(wheel.is_empty());
    }

    #[test]
    fn far_future_fires_on_time_not_at_a_wrap() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin, TICK, 8);
        // 3.5 rotations ahead: its slot comes round three times before it is due.
        let tick = wheel.schedule(origin + ms(285), 'x');
        assert_eq!(tick, 29);
        let mut out = Vec::new();
        for t in 0..29 {
            wheel.expire(origin + TICK * t, &mut out);
            assert!(out.is_empty(), "fired early at tick {t}");
        }
        wheel.expire(origin + TICK * 29, &mut out);
        assert_eq!(out, vec![(29, 'x')]);
    }

    #[test]
    fn large_jump_fires_everything_due_exactly_once() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin, TICK, 16);
        for key in 0..1000u64 {
            wheel.schedule(origin + ms(key * 3), key);
        }
        let mut out = Vec::new();
        // 1500 ms = 150 ticks, more than nine rotations in one call.
        wheel.expire(origin + ms(1500), &mut out);
        let mut keys: Vec<u64> = out.iter().map(|&(_, k)| k).collect();
        keys.sort_unstable();
        assert_eq!(keys, (0..=500).collect::<Vec<_>>());
        assert_eq!(wheel.len(), 499);
        out.clear();
        wheel.expire(origin + ms(1500), &mut out);
        assert!(out.is_empty());
        wheel.expire(origin + ms(100_000), &mut out);
        keys = out.iter().map(|&(_, k)| k).collect();
        keys.sort_unstable();
        assert_eq!(keys, (501..1000).collect::<Vec<_>>());
        assert!(wheel.is_empty());
    }

    #[test]
    fn next_deadline_is_the_earliest_entry() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin, TICK, 8);
        assert_eq!(wheel.next_deadline(), None);
        // Same slot as tick 2, but ten rotations later: must not be reported as tick 2.
        wheel.schedule(origin + TICK * 82, 1);
        assert_eq!(wheel.next_deadline(), Some(origin + TICK * 82));
        wheel.schedule(origin + ms(45), 2);
        assert_eq!(wheel.next_deadline(), Some(origin + ms(50)));
        let mut out = Vec::new();
        wheel.expire(origin + ms(50), &mut out);
        assert_eq!(out, vec![(5, 2)]);
        assert_eq!(wheel.next_deadline(), Some(origin + TICK * 82));
        wheel.expire(origin + TICK * 82, &mut out);
        assert_eq!(wheel.next_deadline(), None);
    }

    /// The earliest deadline stays exact across expiries that fire nothing, entries
    /// rotations away, and the firing of the earliest one.
    #[test]
    fn next_deadline_survives_expiries_and_far_entries() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin, TICK, 8);
        let mut out = Vec::new();
        wheel.schedule(origin + TICK * 100, 1);
        wheel.schedule(origin + TICK * 30, 2);
        wheel.expire(origin + TICK * 10, &mut out);
        assert!(out.is_empty());
        assert_eq!(wheel.next_deadline(), Some(origin + TICK * 30));
        wheel.expire(origin + TICK * 30, &mut out);
        assert_eq!(out, vec![(30, 2)]);
        assert_eq!(wheel.next_deadline(), Some(origin + TICK * 100));
        // Scheduled in the past: due at once, and reported as the next deadline.
        wheel.schedule(origin, 3);
        assert_eq!(wheel.next_deadline(), Some(origin + TICK * 30));
    }

    #[test]
    fn past_deadline_fires_at_next_expire() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin, TICK, 8);
        let now = origin + ms(1005);
        let mut out = Vec::new();
        wheel.expire(now, &mut out);
        let tick = wheel.schedule(origin + ms(50), 'p');
        assert_eq!(tick, 100);
        assert!(wheel.next_deadline().is_some_and(|d| d <= now));
        wheel.expire(now, &mut out);
        assert_eq!(out, vec![(100, 'p')]);
        assert!(wheel.is_empty());
    }

    #[test]
    fn many_entries_in_one_slot() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin, TICK, 4);
        for key in 0..5000 {
            // Ticks 3 and 7 share slot 3.
            let at = if key % 2 == 0 { 30 } else { 70 };
            wheel.schedule(origin + ms(at), key);
        }
        let mut out = Vec::new();
        wheel.expire(origin + ms(30), &mut out);
        assert_eq!(out.len(), 2500);
        assert!(out.iter().all(|&(tick, key)| tick == 3 && key % 2 == 0));
        out.clear();
        wheel.expire(origin + ms(69), &mut out);
        assert!(out.is_empty());
        wheel.expire(origin + ms(70), &mut out);
        assert_eq!(out.len(), 2500);
        assert!(out.iter().all(|&(tick, key)| tick == 7 && key % 2 == 1));
    }

    struct XorShift(u64);

    impl XorShift {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn randomized_against_sorted_model() {
        const STEP: Duration = Duration::from_millis(7);
        let ticks_at = |d: Duration| d.as_nanos() / STEP.as_nanos();
        let origin = Instant::now();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut wheel = TimerWheel::new(origin, STEP, 32);
        // The model: (deadline, tick, key), kept sorted by deadline.
        let mut model: Vec<(Duration, u64, u32)> = Vec::new();
        let mut now = Duration::ZERO;
        let mut out = Vec::new();
        for key in 0..20_000u32 {
            if rng.below(3) > 0 {
                // Mostly near, sometimes many rotations ahead, sometimes in the past.
                let offset = match rng.below(10) {
                    0 => ms(rng.below(20_000)),
                    1 => Duration::ZERO,
                    _ => Duration::from_micros(rng.below(400_000)),
                };
                let at = if rng.below(20) == 0 {
                    now.saturating_sub(offset)
                } else {
                    now + offset
                };
                let want = at.as_nanos().div_ceil(STEP.as_nanos()).max(ticks_at(now));
                let tick = wheel.schedule(origin + at, key);
                assert_eq!(u128::from(tick), want);
                let pos = model.partition_point(|e| e.0 <= at);
                model.insert(pos, (at, tick, key));
            } else {
                now += match rng.below(50) {
                    0 => ms(rng.below(5_000)),
                    _ => Duration::from_micros(rng.below(20_000)),
                };
                out.clear();
                wheel.expire(origin + now, &mut out);
                let mut want = Vec::new();
                model.retain(|&(at, tick, key)| {
                    let due = u128::from(tick) <= ticks_at(now);
                    if due {
                        assert!(at <= now, "key {key} due {at:?} fired early at {now:?}");
                        want.push((tick, key));
                    }
                    !due
                });
                out.sort_unstable();
                want.sort_unstable();
                assert_eq!(out, want);
            }
            assert_eq!(wheel.len(), model.len());
            let earliest = model.iter().map(|e| e.1).min();
            let want = earliest.map(|tick| origin + STEP * u32::try_from(tick).unwrap());
            assert_eq!(wheel.next_deadline(), want);
        }
    }
}
