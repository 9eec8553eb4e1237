//! Hash maps for the views' internal lookups, and their canonical (sorted) serialisation.
//!
//! The views find movements by MRN and index postings by key on every event; at a million
//! movements a B-tree of strings costs a dozen string comparisons per lookup, each a cache
//! miss, where a hash map costs one probe. The keys are validated identifiers (MRNs, office
//! codes, trader ids) hashed with [`FastState`]: a multiply-and-fold hash over 8-byte words,
//! seeded per map from the standard library's random keys, so that the layout (and a
//! crafted-collision attack) differs from one process to the next, at a fraction of the cost
//! of SipHash.
//!
//! Invariant: a hash map never reaches serialised or hashed state in its iteration order:
//! [`serialize_sorted`] and [`Sorted`] write it exactly as the `BTreeMap` it replaces would
//! (entries in key order, the length announced), so snapshots and `state_hash()` stay
//! byte-identical.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use serde::{Serialize, Serializer};

/// A hash map keyed by validated identifiers (see the module docs).
pub type FastMap<K, V> = HashMap<K, V, FastState>;

/// Builds [`FastHasher`]s with a seed drawn once per map.
#[derive(Debug, Clone, Copy)]
pub struct FastState {
    seed: u64,
}

impl Default for FastState {
    fn default() -> Self {
        // `RandomState` draws its keys from the OS once per thread and then steps them, so
        // this is cheap and differs per map.
        FastState {
            seed: RandomState::new().hash_one(0x9e37_79b9_7f4a_7c15_u64) | 1,
        }
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher { state: self.seed }
    }
}

/// Odd constants from the digits of pi (as in foldhash), for the multiplications.
const MUL_A: u64 = 0x243f_6a88_85a3_08d3;
const MUL_B: u64 = 0x1319_8a2e_0370_7344 | 1;

/// The high and low halves of the full 128-bit product, folded: every input bit reaches
/// every output bit.
#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

/// See [`FastState`].
#[derive(Debug, Clone)]
pub struct FastHasher {
    state: u64,
}

impl FastHasher {
    #[inline]
    fn word(&mut self, w: u64) {
        self.state = folded_multiply(self.state ^ w, MUL_A);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            self.word(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        // The length goes into the last word, so that trailing zero bytes still count.
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        self.word(u64::from_le_bytes(w) ^ ((bytes.len() as u64) << 56));
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.word(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.word(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.word(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.word(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.word(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        folded_multiply(self.state, MUL_B)
    }
}

/// Serialises a hash map as the `BTreeMap` with the same entries would be: in key order.
pub(crate) fn serialize_sorted<K, V, H, S>(map: &HashMap<K, V, H>, s: S) -> Result<S::Ok, S::Error>
where
    K: Ord + Serialize,
    V: Serialize,
    S: Serializer,
{
    Sorted(map).serialize(s)
}

/// A hash map that serialises in key order (see [`serialize_sorted`]), for hashing a view's
/// state without copying it.
pub(crate) struct Sorted<'a, K, V, H>(pub(crate) &'a HashMap<K, V, H>);

impl<K, V, H> Serialize for Sorted<'_, K, V, H>
where
    K: Ord + Serialize,
    V: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<(&K, &V)> = self.0.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        s.collect_map(entries)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn sorted_serialisation_matches_a_btree_map() {
        let mut hashed: FastMap<String, u32> = FastMap::default();
        let mut ordered = BTreeMap::new();
        for i in 0..500u32 {
            let k = format!("24TG{:013}", i.wrapping_mul(2_654_435_761) % 100_000);
            hashed.insert(k.clone(), i);
            ordered.insert(k, i);
        }
        assert_eq!(
            serde_json::to_string(&Sorted(&hashed)).unwrap(),
            serde_json::to_string(&ordered).unwrap()
        );
        assert_eq!(
            rmp_serde::to_vec_named(&Sorted(&hashed)).unwrap(),
            rmp_serde::to_vec_named(&ordered).unwrap()
        );
        let back: FastMap<String, u32> =
            rmp_serde::from_slice(&rmp_serde::to_vec_named(&Sorted(&hashed)).unwrap()).unwrap();
        assert_eq!(back, hashed);
    }

    #[test]
    fn hashes_spread_and_tell_lengths_apart() {
        let state = FastState::default();
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000u32 {
            assert!(seen.insert(state.hash_one(format!("24TG{i:013}"))));
        }
        assert_ne!(
            state.hash_one([0u8; 3].as_slice()),
            state.hash_one([0u8; 4].as_slice())
        );
    }
}
