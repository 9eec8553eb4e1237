//! Pure projection logic over the ledger's global feed: "event in, changes out".
//!
//! Three views follow the log in position order: the regional transit database
//! ([`movements::MovementsView`]), guarantee exposure ([`exposure::ExposureView`]) and corridor
//! analytics ([`corridors::CorridorsView`]). Each takes a [`LedgerEvent`] (decoded by the
//! projection runner from a store record), updates its state and says what changed. Nothing
//! here stores, reads a clock or does IO: "now" is always passed in.
//!
//! Every view has a `state_hash()`: SHA-256 over a canonical JSON serialisation of its state
//! (object keys sorted, since `serde_json::Value` keeps maps in a `BTreeMap`), so that a view
//! rebuilt from position 0 can be compared with the one built incrementally.
//!
//! Invariant: a view ignores an event whose position is not above the last position it applied,
//! so a batch replayed after a runner crash is never applied twice.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use transit_contract::events::{EventMeta, GuaranteeEvent, MovementEvent};
use transit_contract::ids::{CountryCode, GuaranteeReference, IdError, Mrn, OfficeCode};

pub mod corridors;
pub mod exposure;
mod fast_map;
pub mod movements;
#[cfg(test)]
mod snapshot_tests;

pub use corridors::CorridorsView;
pub use exposure::ExposureView;
pub use fast_map::{FastHasher, FastMap, FastState};
pub use movements::MovementsView;

/// One recorded event of the global feed, as the views see it.
///
/// The stream's identifier (`mrn`, `grn`) is carried beside the event because most event
/// types do not repeat it in their data: the runner takes it from the stream name
/// (`movement-<MRN>`, `guarantee-<GRN>`).
#[derive(Debug, Clone, Copy)]
pub enum LedgerEvent<'a> {
    Movement {
        position: u64,
        mrn: &'a Mrn,
        meta: &'a EventMeta,
        event: &'a MovementEvent,
    },
    Guarantee {
        position: u64,
        grn: &'a GuaranteeReference,
        meta: &'a EventMeta,
        event: &'a GuaranteeEvent,
    },
}

impl LedgerEvent<'_> {
    /// The global position of the event.
    pub fn position(&self) -> u64 {
        match self {
            Self::Movement { position, .. } | Self::Guarantee { position, .. } => *position,
        }
    }

    /// The event's metadata.
    pub fn meta(&self) -> &EventMeta {
        match self {
            Self::Movement { meta, .. } | Self::Guarantee { meta, .. } => meta,
        }
    }

    /// The stable type name of the event.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Movement { event, .. } => event.event_type(),
            Self::Guarantee { event, .. } => event.event_type(),
        }
    }
}

/// A corridor: office of departure > office of destination, e.g. `TG000101>BFOUA001`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Corridor {
    pub departure: OfficeCode,
    pub destination: OfficeCode,
}

impl Corridor {
    /// The corridor between two offices.
    pub fn new(departure: OfficeCode, destination: OfficeCode) -> Corridor {
        Corridor {
            departure,
            destination,
        }
    }

    /// The country pair, e.g. `TG>BF`.
    pub fn country_pair(&self) -> CountryPair {
        CountryPair {
            from: self.departure.country(),
            to: self.destination.country(),
        }
    }
}

impl fmt::Display for Corridor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}>{}", self.departure, self.destination)
    }
}

/// Why a corridor or country pair could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("expected `A>B`, got {0:?}")]
    MissingSeparator(String),
    #[error(transparent)]
    Id(#[from] IdError),
    #[error("an HS filter is 2, 4 or 6 digits, got {0:?}")]
    HsPrefix(String),
}

impl FromStr for Corridor {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let (a, b) = s
            .split_once('>')
            .ok_or_else(|| ParseError::MissingSeparator(s.to_owned()))?;
        Ok(Corridor::new(a.parse()?, b.parse()?))
    }
}

impl TryFrom<String> for Corridor {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        s.parse()
    }
}

impl From<Corridor> for String {
    fn from(c: Corridor) -> String {
        c.to_string()
    }
}

/// The countries of departure and destination of a corridor, e.g. `TG>BF`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryPair {
    pub from: CountryCode,
    pub to: CountryCode,
}

impl fmt::Display for CountryPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}>{}", self.from, self.to)
    }
}

impl FromStr for CountryPair {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let (a, b) = s
            .split_once('>')
            .ok_or_else(|| ParseError::MissingSeparator(s.to_owned()))?;
        Ok(CountryPair {
            from: a.parse()?,
            to: b.parse()?,
        })
    }
}

impl TryFrom<String> for CountryPair {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        s.parse()
    }
}

impl From<CountryPair> for String {
    fn from(c: CountryPair) -> String {
        c.to_string()
    }
}

/// SHA-256 over the JSON of `value`, streamed into the hasher (no intermediate tree: the
/// views are hashed at a million movements). The bytes depend only on the content because
/// every map in the views serialises in key order (a `BTreeMap`, or a hash map through
/// [`fast_map::Sorted`]) and struct fields serialise in declaration order; a hash map must
/// never reach hashed state in its iteration order.
pub(crate) fn canonical_hash<T: Serialize>(value: &T) -> [u8; 32] {
    struct Hasher(Sha256);
    impl std::io::Write for Hasher {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut hasher = Hasher(Sha256::new());
    // Serialising plain data cannot fail; if it ever did, hashing the error text still
    // gives a stable, clearly different value.
    if let Err(e) = serde_json::to_writer(&mut hasher, value) {
        return Sha256::digest(format!("unserialisable state: {e}").as_bytes()).into();
    }
    hasher.0.finalize().into()
}

/// A state hash as lower-case hex, for printing (e.g. by `transit-ledger replay`).
pub fn hash_hex(hash: &[u8; 32]) -> String {
    hex::encode(hash)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn corridor_round_trips_and_names_its_countries() {
        let c: Corridor = "TG000101>BFOUA001".parse().unwrap();
        assert_eq!(c.to_string(), "TG000101>BFOUA001");
        assert_eq!(c.country_pair().to_string(), "TG>BF");
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"TG000101>BFOUA001\"");
        assert_eq!(serde_json::from_str::<Corridor>(&json).unwrap(), c);
        assert!("TG000101".parse::<Corridor>().is_err());
        assert_eq!("TG>BF".parse::<CountryPair>().unwrap(), c.country_pair());
    }

    #[test]
    fn canonical_hash_ignores_insertion_order() {
        let mut a = std::collections::BTreeMap::new();
        a.insert("b", 1);
        a.insert("a", 2);
        let mut b = std::collections::BTreeMap::new();
        b.insert("a", 2);
        b.insert("b", 1);
        assert_eq!(canonical_hash(&a), canonical_hash(&b));
        assert_ne!(canonical_hash(&1), canonical_hash(&2));
    }
}
