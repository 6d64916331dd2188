//! A fixed-capacity table of per-source state. A spoofed flood (a new
//! source address per packet) must not grow memory or push out the state
//! that matters, so:
//! - the table is set-associative with a fixed number of slots, sets
//!   picked by a hash keyed at random per process (an attacker cannot aim
//!   at one set);
//! - when a set is full the victim is the least valuable entry (see
//!   [`Worth`]): state that costs a real round trip to build (failed or
//!   successful authentication) outlives packet counters of strangers;
//! - sets are allocated on first use, so an idle server pays for none.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use crate::net::SourceKey;

/// Slots per set: enough that a hot set keeps its valuable entries, few
/// enough that a lookup is one short scan.
const WAYS: usize = 8;

/// How much an entry is worth keeping, compared as a tuple: higher first
/// field wins, then the more recent `last_seen`.
pub(crate) trait Worth {
    fn worth(&self) -> (u8, u64);
}

struct Slot<V> {
    key: SourceKey,
    value: V,
}

/// One set: `WAYS` slots, allocated on first use.
type Set<V> = Option<Box<[Option<Slot<V>>; WAYS]>>;

pub(crate) struct SourceTable<V> {
    sets: Vec<Set<V>>,
    hasher: RandomState,
    len: usize,
}

impl<V: Default + Worth> SourceTable<V> {
    /// Room for at least `capacity` sources (rounded up to whole sets).
    pub(crate) fn new(capacity: usize) -> Self {
        let sets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        SourceTable {
            sets: (0..sets).map(|_| None).collect(),
            hasher: RandomState::new(),
            len: 0,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.sets.len() * WAYS
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn set_of(&self, key: SourceKey) -> usize {
        (self.hasher.hash_one(key) as usize) & (self.sets.len() - 1)
    }

    pub(crate) fn get(&self, key: SourceKey) -> Option<&V> {
        let set = self.sets[self.set_of(key)].as_ref()?;
        set.iter()
            .flatten()
            .find(|s| s.key == key)
            .map(|s| &s.value)
    }

    /// The entry of `key`, created (possibly evicting the least valuable
    /// entry of its set) when missing.
    pub(crate) fn entry(&mut self, key: SourceKey) -> &mut V {
        let i = self.set_of(key);
        let set = self.sets[i].get_or_insert_with(|| Box::new(std::array::from_fn(|_| None)));
        let pos = match set
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.key == key))
        {
            Some(p) => p,
            None => {
                let victim = match set.iter().position(Option::is_none) {
                    Some(free) => {
                        self.len += 1;
                        free
                    }
                    None => set
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, s)| s.as_ref().map(|s| s.value.worth()))
                        .map_or(0, |(k, _)| k),
                };
                set[victim] = Some(Slot {
                    key,
                    value: V::default(),
                });
                victim
            }
        };
        match &mut set[pos] {
            Some(slot) => &mut slot.value,
            // Filled just above.
            None => unreachable!("slot {pos} was just filled"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct V {
        precious: bool,
        seen: u64,
    }
    impl Worth for V {
        fn worth(&self) -> (u8, u64) {
            (u8::from(self.precious), self.seen)
        }
    }

    #[test]
    fn bounded_and_keeps_what_matters_under_a_spoofed_flood() {
        let mut t: SourceTable<V> = SourceTable::new(1024);
        let cap = t.capacity();
        assert!(cap >= 1024);
        // 200 sources that authenticated. (With a random hash key a set may
        // get more than its 8 ways of them; those displace each other.)
        for i in 0..200u32 {
            let v = t.entry(SourceKey::V4(0x0a00_0000 + i));
            v.precious = true;
            v.seen = 1;
        }
        let kept: Vec<u32> = (0..200u32)
            .filter(|i| t.get(SourceKey::V4(0x0a00_0000 + i)).is_some())
            .collect();
        assert!(kept.len() >= 190, "{}", kept.len());
        // A million spoofed sources, each newer than the last.
        for i in 0..1_000_000u32 {
            t.entry(SourceKey::V4(0xc000_0000 + i)).seen = 2 + u64::from(i);
            assert!(t.len() <= cap);
        }
        // Not one of them displaced an entry that authenticated.
        for i in kept {
            assert!(
                t.get(SourceKey::V4(0x0a00_0000 + i))
                    .is_some_and(|v| v.precious),
                "{i}"
            );
        }
    }

    #[test]
    fn entry_finds_the_same_slot() {
        let mut t: SourceTable<V> = SourceTable::new(16);
        t.entry(SourceKey::V6(7)).seen = 5;
        assert_eq!(t.get(SourceKey::V6(7)).map(|v| v.seen), Some(5));
        t.entry(SourceKey::V6(7)).seen = 6;
        assert_eq!(t.get(SourceKey::V6(7)).map(|v| v.seen), Some(6));
        assert_eq!(t.len(), 1);
        assert!(t.get(SourceKey::V4(7)).is_none());
    }
}
