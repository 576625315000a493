//! The fixed-capacity connection table.
//!
//! Allocated once at start-up with `MAX_CONNECTIONS` slots: the slab's capacity *is* the
//! connection limit, so a full slab is a normal, countable condition (answered with 503)
//! rather than an allocation failure. Every slot carries a generation that is bumped on
//! release, and a [`ConnId`] names (slot, generation): a completion or a stale poll event
//! for a connection that has gone away can never reach the connection that reused its slot.

use std::fmt;

/// A connection's identity: slot index plus the generation the slot had when the
/// connection was inserted.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

impl ConnId {
    /// Packs the id into a `mio::Token` value above `reserved` (the loop's own tokens).
    pub fn to_token(self, reserved: usize) -> mio::Token {
        mio::Token(((self.generation as usize) << 32) | (self.index as usize + reserved))
    }

    /// The inverse of [`ConnId::to_token`]; `None` for the reserved tokens.
    pub fn from_token(token: mio::Token, reserved: usize) -> Option<ConnId> {
        let index = (token.0 & 0xffff_ffff).checked_sub(reserved)?;
        Some(ConnId {
            index: u32::try_from(index).ok()?,
            generation: (token.0 >> 32) as u32,
        })
    }

    pub fn index(self) -> usize {
        self.index as usize
    }

    /// The id as one number, for names kept outside the loop (the chat's socket ids):
    /// the generation travels in the high half, so a stale name still cannot reach a
    /// reused slot.
    pub fn to_bits(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    /// The inverse of [`ConnId::to_bits`].
    pub fn from_bits(bits: u64) -> ConnId {
        ConnId {
            index: bits as u32,
            generation: (bits >> 32) as u32,
        }
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    /// Free slot indices; popped from the end so recently freed (cache-warm) slots are
    /// reused first.
    free: Vec<u32>,
}

impl<T> Slab<T> {
    /// Allocates every slot up front. Values are expected to be small (a `Box` of the
    /// connection) so that an idle slab of 10 000 slots costs a few hundred KiB.
    pub fn with_capacity(capacity: usize) -> Slab<T> {
        let capacity = capacity.min(u32::MAX as usize);
        let mut slots = Vec::with_capacity(capacity);
        slots.resize_with(capacity, || Slot {
            generation: 0,
            value: None,
        });
        let free = (0..capacity as u32).rev().collect();
        Slab { slots, free }
    }

    /// Stores `make(id)` in a free slot; `None` when the slab is full.
    pub fn insert_with(&mut self, make: impl FnOnce(ConnId) -> T) -> Option<ConnId> {
        let index = self.free.pop()?;
        let slot = &mut self.slots[index as usize];
        let id = ConnId {
            index,
            generation: slot.generation,
        };
        slot.value = Some(make(id));
        Some(id)
    }

    pub fn get(&self, id: ConnId) -> Option<&T> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation == id.generation {
            slot.value.as_ref()
        } else {
            None
        }
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut T> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation == id.generation {
            slot.value.as_mut()
        } else {
            None
        }
    }

    /// Takes the value out and retires the id: the slot's next tenant gets a new generation.
    pub fn remove(&mut self, id: ConnId) -> Option<T> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        Some(value)
    }

    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// Ids of every occupied slot (a snapshot, so the caller may remove while iterating).
    pub fn ids(&self) -> Vec<ConnId> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.value.is_some())
            .map(|(index, slot)| ConnId {
                index: index as u32,
                generation: slot.generation,
            })
            .collect()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (ConnId, &mut T)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(index, slot)| {
                let generation = slot.generation;
                slot.value.as_mut().map(|value| {
                    let id = ConnId {
                        index: index as u32,
                        generation,
                    };
                    (id, value)
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_slab_refuses_and_recovers() {
        let mut slab = Slab::with_capacity(2);
        let a = slab.insert_with(|_| 'a').expect("slot");
        let _b = slab.insert_with(|_| 'b').expect("slot");
        assert!(slab.is_full());
        assert!(slab.insert_with(|_| 'c').is_none());
        assert_eq!(slab.remove(a), Some('a'));
        assert!(slab.insert_with(|_| 'c').is_some());
        assert_eq!(slab.len(), 2);
    }

    #[test]
    fn reused_slot_does_not_answer_to_the_old_id() {
        let mut slab = Slab::with_capacity(1);
        let old = slab.insert_with(|_| "old").expect("slot");
        slab.remove(old);
        let new = slab.insert_with(|_| "new").expect("slot");
        assert_eq!(old.index(), new.index(), "the slot is reused");
        assert_eq!(slab.get(old), None);
        assert_eq!(slab.remove(old), None);
        assert_eq!(slab.get(new), Some(&"new"));
    }

    #[test]
    fn token_round_trip_keeps_generation_and_skips_reserved() {
        let mut slab = Slab::with_capacity(4);
        let first = slab.insert_with(|_| ()).expect("slot");
        slab.remove(first);
        let id = slab.insert_with(|_| ()).expect("slot");
        let token = id.to_token(3);
        assert_eq!(ConnId::from_token(token, 3), Some(id));
        assert_ne!(ConnId::from_token(first.to_token(3), 3), Some(id));
        assert_eq!(ConnId::from_token(mio::Token(2), 3), None);
    }

    #[test]
    fn bits_round_trip_keeps_generation() {
        let mut slab = Slab::with_capacity(1);
        let old = slab.insert_with(|_| ()).expect("slot");
        slab.remove(old);
        let new = slab.insert_with(|_| ()).expect("slot");
        assert_eq!(ConnId::from_bits(new.to_bits()), new);
        assert_ne!(ConnId::from_bits(old.to_bits()), new);
    }

    #[test]
    fn insert_passes_the_new_id() {
        let mut slab = Slab::with_capacity(3);
        let id = slab.insert_with(|id| id).expect("slot");
        assert_eq!(slab.get(id), Some(&id));
        assert_eq!(slab.ids(), vec![id]);
    }
}
