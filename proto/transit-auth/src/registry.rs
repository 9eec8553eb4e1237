//! The key registry: which keys exist, whose they are, when they may sign; and the check of a
//! submission's signature against it.
//!
//! # File format (TOML)
//! ```toml
//! [[key]]
//! id = "tg-dev-1"                       # 1-64 of [A-Za-z0-9._:-], unique
//! country = "TG"                        # ISO 3166-1 alpha-2: the sender.country it signs for
//! offices = ["TG000101", "TGCIN001"]    # optional; when present, the only sender.office values
//! public_key = "<base64 of 32 bytes>"   # standard padded base64 of the Ed25519 public key
//! not_before = "2024-01-01T00:00:00Z"   # RFC 3339 with an offset (quoted, or a TOML date-time)
//! not_after = "2027-01-01T00:00:00Z"    # optional; valid while not_before <= t < not_after
//! revoked_at = "2025-06-01T12:00:00Z"   # optional; invalid from this instant on
//! comment = "Togo, national system"     # optional, free text
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use ed25519_dalek::VerifyingKey;
use serde::Deserialize;
use transit_contract::ids::{CountryCode, OfficeCode, Timestamp};
use transit_contract::messages::InboundMessage;

use crate::keys::{decode_32, public_key_base64};
use crate::signature::{verify_with_key, KeyId, SignatureParseError, SubmissionSignature};

/// The largest registry file accepted, in bytes.
pub const REGISTRY_BYTES_MAX: usize = 1 << 20;
/// The most keys in one registry.
pub const REGISTRY_KEYS_MAX: usize = 10_000;
/// The most offices one key may be restricted to.
pub const OFFICES_PER_KEY_MAX: usize = 1_000;
/// The longest comment, in characters.
pub const COMMENT_LEN_MAX: usize = 512;

/// One key of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub id: KeyId,
    /// The country the key signs for: it must be the message's `sender.country`.
    pub country: CountryCode,
    /// When present, the only `sender.office` values the key may sign for (all in `country`).
    pub offices: Option<Vec<OfficeCode>>,
    pub public_key: VerifyingKey,
    /// The first instant the key is valid.
    pub not_before: Timestamp,
    /// The first instant the key is no longer valid, if it expires.
    pub not_after: Option<Timestamp>,
    /// The instant the key was revoked: invalid from then on (signatures checked before that
    /// instant stay valid: revocation is not retroactive).
    pub revoked_at: Option<Timestamp>,
    pub comment: String,
}

impl KeyEntry {
    /// The checks [`KeyRegistry::from_toml_str`] makes on each entry.
    pub fn validate(&self) -> Result<(), RegistryError> {
        let field = |field: &'static str, reason: String| RegistryError::Field {
            key: self.id.to_string(),
            field,
            reason,
        };
        if let Some(not_after) = self.not_after {
            if not_after <= self.not_before {
                return Err(RegistryError::EmptyPeriod {
                    key: self.id.clone(),
                    not_before: self.not_before,
                    not_after,
                });
            }
        }
        if let Some(offices) = &self.offices {
            if offices.is_empty() {
                return Err(field(
                    "offices",
                    "list at least one office, or leave offices out to allow all of the country's"
                        .to_owned(),
                ));
            }
            if offices.len() > OFFICES_PER_KEY_MAX {
                return Err(field(
                    "offices",
                    format!(
                        "{} offices, at most {OFFICES_PER_KEY_MAX} allowed",
                        offices.len()
                    ),
                ));
            }
            let mut seen = BTreeSet::new();
            for office in offices {
                if office.country() != self.country {
                    return Err(field(
                        "offices",
                        format!(
                            "office {office} is not in the key's country {}",
                            self.country
                        ),
                    ));
                }
                if !seen.insert(office) {
                    return Err(field("offices", format!("office {office} is listed twice")));
                }
            }
        }
        let comment_len = self.comment.chars().count();
        if comment_len > COMMENT_LEN_MAX {
            return Err(field(
                "comment",
                format!("{comment_len} characters, at most {COMMENT_LEN_MAX} allowed"),
            ));
        }
        Ok(())
    }

    /// Whether the key may sign at `at`: not revoked at or before `at`, and
    /// `not_before <= at < not_after`.
    pub fn check_time(&self, at: Timestamp) -> Result<(), SignatureError> {
        if let Some(revoked_at) = self.revoked_at {
            if revoked_at <= at {
                return Err(SignatureError::KeyRevoked {
                    key_id: self.id.clone(),
                    revoked_at,
                    at,
                });
            }
        }
        if at < self.not_before {
            return Err(SignatureError::KeyNotYetValid {
                key_id: self.id.clone(),
                not_before: self.not_before,
                at,
            });
        }
        if let Some(not_after) = self.not_after {
            if at >= not_after {
                return Err(SignatureError::KeyExpired {
                    key_id: self.id.clone(),
                    not_after,
                    at,
                });
            }
        }
        Ok(())
    }

    /// The entry as a `[[key]]` table to paste into a registry file.
    pub fn to_toml(&self) -> String {
        let mut out = String::from("[[key]]\n");
        // Writing to a String never fails.
        let _ = writeln!(out, "id = {}", toml_string(self.id.as_str()));
        let _ = writeln!(out, "country = {}", toml_string(self.country.as_str()));
        if let Some(offices) = &self.offices {
            let list: Vec<String> = offices.iter().map(|o| toml_string(o.as_str())).collect();
            let _ = writeln!(out, "offices = [{}]", list.join(", "));
        }
        let _ = writeln!(
            out,
            "public_key = {}",
            toml_string(&public_key_base64(&self.public_key))
        );
        let _ = writeln!(
            out,
            "not_before = {}",
            toml_string(&self.not_before.to_rfc3339())
        );
        if let Some(t) = self.not_after {
            let _ = writeln!(out, "not_after = {}", toml_string(&t.to_rfc3339()));
        }
        if let Some(t) = self.revoked_at {
            let _ = writeln!(out, "revoked_at = {}", toml_string(&t.to_rfc3339()));
        }
        if !self.comment.is_empty() {
            let _ = writeln!(out, "comment = {}", toml_string(&self.comment));
        }
        out
    }
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Why a registry file was refused. Nothing of a refused file is used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("the key registry is {0} bytes, at most {REGISTRY_BYTES_MAX} allowed")]
    TooLarge(usize),
    #[error("the key registry is not valid TOML of the expected shape: {0}")]
    Toml(String),
    #[error("the key registry lists {0} keys, at most {REGISTRY_KEYS_MAX} allowed")]
    TooManyKeys(usize),
    #[error("key {key}: {field}: {reason}")]
    Field {
        /// The key's id, or `#<position>` when the id itself is invalid.
        key: String,
        field: &'static str,
        reason: String,
    },
    #[error("key {key}: not_after {not_after} must be later than not_before {not_before}")]
    EmptyPeriod {
        key: KeyId,
        not_before: Timestamp,
        not_after: Timestamp,
    },
    #[error("key id {0} is listed more than once")]
    DuplicateId(KeyId),
    #[error("keys {first} and {second} have the same public key")]
    DuplicatePublicKey { first: KeyId, second: KeyId },
}

/// A time in the registry: an RFC 3339 string, or a TOML offset date-time.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawTime {
    Text(String),
    Toml(toml::value::Datetime),
}

impl RawTime {
    fn parse(&self) -> Result<Timestamp, String> {
        let text = match self {
            RawTime::Text(s) => s.clone(),
            RawTime::Toml(d) => d.to_string(),
        };
        text.parse().map_err(|e| {
            format!("{text:?} is not an RFC 3339 date-time with an offset (e.g. 2024-01-01T00:00:00Z): {e}")
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    #[serde(default)]
    key: Vec<RawKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    id: String,
    country: String,
    offices: Option<Vec<String>>,
    public_key: String,
    not_before: RawTime,
    not_after: Option<RawTime>,
    revoked_at: Option<RawTime>,
    #[serde(default)]
    comment: String,
}

impl RawKey {
    fn check(self, position: usize) -> Result<KeyEntry, RegistryError> {
        let id: KeyId = self
            .id
            .parse()
            .map_err(|e: crate::KeyIdError| RegistryError::Field {
                key: format!("#{}", position + 1),
                field: "id",
                reason: e.to_string(),
            })?;
        let field = |field: &'static str, reason: String| RegistryError::Field {
            key: id.to_string(),
            field,
            reason,
        };
        let country: CountryCode = self
            .country
            .parse()
            .map_err(|e: transit_contract::IdError| field("country", e.to_string()))?;
        let offices = match self.offices {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|o| o.parse::<OfficeCode>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| field("offices", e.to_string()))?,
            ),
        };
        let public_bytes = decode_32(&self.public_key).map_err(|e| field("public_key", e))?;
        let public_key = VerifyingKey::from_bytes(&public_bytes).map_err(|_| {
            field(
                "public_key",
                "not a valid Ed25519 public key (not a curve point)".to_owned(),
            )
        })?;
        if public_key.is_weak() {
            return Err(field(
                "public_key",
                "a weak (small-order) Ed25519 key is not allowed".to_owned(),
            ));
        }
        let not_before = self
            .not_before
            .parse()
            .map_err(|e| field("not_before", e))?;
        let not_after = self
            .not_after
            .map(|t| t.parse())
            .transpose()
            .map_err(|e| field("not_after", e))?;
        let revoked_at = self
            .revoked_at
            .map(|t| t.parse())
            .transpose()
            .map_err(|e| field("revoked_at", e))?;
        let entry = KeyEntry {
            id,
            country,
            offices,
            public_key,
            not_before,
            not_after,
            revoked_at,
            comment: self.comment,
        };
        entry.validate()?;
        Ok(entry)
    }
}

/// The keys allowed to sign submissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRegistry {
    keys: BTreeMap<KeyId, KeyEntry>,
}

/// A signature that checked out, and the key that made it: what the ledger records beside the
/// events (key id, public key, signature) for offline re-checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKey {
    pub key_id: KeyId,
    pub country: CountryCode,
    pub public_key: VerifyingKey,
}

impl VerifiedKey {
    /// The public key as standard padded base64.
    pub fn public_key_base64(&self) -> String {
        public_key_base64(&self.public_key)
    }
}

impl KeyRegistry {
    /// Parses and checks a registry file (see the module docs): every id valid and unique,
    /// every public key a valid, non-weak Ed25519 key listed once, countries and offices valid
    /// (offices in the key's country, none twice, the list not empty), RFC 3339 times with
    /// `not_before < not_after`, no unknown fields.
    pub fn from_toml_str(text: &str) -> Result<Self, RegistryError> {
        if text.len() > REGISTRY_BYTES_MAX {
            return Err(RegistryError::TooLarge(text.len()));
        }
        let raw: RawRegistry =
            toml::from_str(text).map_err(|e| RegistryError::Toml(e.to_string()))?;
        if raw.key.len() > REGISTRY_KEYS_MAX {
            return Err(RegistryError::TooManyKeys(raw.key.len()));
        }
        let mut keys = BTreeMap::new();
        let mut by_public: BTreeMap<[u8; 32], KeyId> = BTreeMap::new();
        for (position, raw_key) in raw.key.into_iter().enumerate() {
            let entry = raw_key.check(position)?;
            if let Some(first) = by_public.insert(entry.public_key.to_bytes(), entry.id.clone()) {
                return Err(RegistryError::DuplicatePublicKey {
                    first,
                    second: entry.id,
                });
            }
            if keys.contains_key(&entry.id) {
                return Err(RegistryError::DuplicateId(entry.id));
            }
            keys.insert(entry.id.clone(), entry);
        }
        Ok(KeyRegistry { keys })
    }

    /// The key named `id`.
    pub fn get(&self, id: &KeyId) -> Option<&KeyEntry> {
        self.keys.get(id)
    }

    /// Every key, by id.
    pub fn iter(&self) -> impl Iterator<Item = &KeyEntry> {
        self.keys.values()
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the registry has no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks that `sig` is a valid signature of `msg` by a registered key allowed to sign it
    /// at `at` (the ledger's clock when the submission is received, never the message's own
    /// `sentAt`). In order: key known, signature valid (strict Ed25519 over
    /// [`crate::signing_bytes`]), not revoked at or before `at`, `not_before <= at <
    /// not_after`, key country = `sender.country`, `sender.office` among the key's offices
    /// when it lists some.
    pub fn verify(
        &self,
        msg: &InboundMessage,
        sig: &SubmissionSignature,
        at: Timestamp,
    ) -> Result<VerifiedKey, SignatureError> {
        let entry = self
            .keys
            .get(&sig.key_id)
            .ok_or_else(|| SignatureError::UnknownKey {
                key_id: sig.key_id.clone(),
            })?;
        if !verify_with_key(&entry.public_key, msg, sig) {
            return Err(SignatureError::BadSignature {
                key_id: sig.key_id.clone(),
            });
        }
        entry.check_time(at)?;
        if entry.country != msg.sender.country {
            return Err(SignatureError::KeyCountryMismatch {
                key_id: entry.id.clone(),
                key_country: entry.country.clone(),
                sender_country: msg.sender.country.clone(),
            });
        }
        if let Some(offices) = &entry.offices {
            if !offices.contains(&msg.sender.office) {
                return Err(SignatureError::KeyOfficeNotAllowed {
                    key_id: entry.id.clone(),
                    office: msg.sender.office.clone(),
                    allowed: offices.clone(),
                });
            }
        }
        Ok(VerifiedKey {
            key_id: entry.id.clone(),
            country: entry.country.clone(),
            public_key: entry.public_key,
        })
    }

    /// [`Self::verify`] from the signature's text as received (the `Transit-Signature` header
    /// or the `transitSignature` property; `None` when absent): `MISSING_SIGNATURE`,
    /// `MALFORMED_SIGNATURE`, or the outcome of the check with the parsed signature.
    pub fn verify_text(
        &self,
        msg: &InboundMessage,
        text: Option<&str>,
        at: Timestamp,
    ) -> Result<(SubmissionSignature, VerifiedKey), SignatureError> {
        let text = text.ok_or(SignatureError::Missing)?;
        let sig: SubmissionSignature = text.parse().map_err(SignatureError::Malformed)?;
        let key = self.verify(msg, &sig, at)?;
        Ok((sig, key))
    }
}

/// How the edge should answer a signature failure: 401 (the sender is not authenticated) or
/// 403 (authenticated, but the key may not sign for this sender).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureErrorKind {
    Unauthenticated,
    Forbidden,
}

/// Why a submission's signature was refused. Each variant has a stable code ([`Self::as_str`])
/// and a human reason (`Display`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "no signature: send `keyId=<id>; alg=Ed25519; sig=<base64>` in the Transit-Signature \
         header (HTTP) or the transitSignature property (broker)"
    )]
    Missing,
    #[error("malformed signature: {0}")]
    Malformed(SignatureParseError),
    #[error("key {key_id} is not in the key registry")]
    UnknownKey { key_id: KeyId },
    #[error(
        "the signature does not verify with key {key_id} over this message's canonical bytes \
         (signed over different content, or with another key)"
    )]
    BadSignature { key_id: KeyId },
    #[error("key {key_id} is valid from {not_before}, not at {at}")]
    KeyNotYetValid {
        key_id: KeyId,
        not_before: Timestamp,
        at: Timestamp,
    },
    #[error("key {key_id} expired at {not_after}, before {at}")]
    KeyExpired {
        key_id: KeyId,
        not_after: Timestamp,
        at: Timestamp,
    },
    #[error("key {key_id} was revoked at {revoked_at}, before {at}")]
    KeyRevoked {
        key_id: KeyId,
        revoked_at: Timestamp,
        at: Timestamp,
    },
    #[error("key {key_id} signs for {key_country}, but the message's sender country is {sender_country}")]
    KeyCountryMismatch {
        key_id: KeyId,
        key_country: CountryCode,
        sender_country: CountryCode,
    },
    #[error(
        "key {key_id} signs only for offices {}, but the message's sender office is {office}",
        OfficeList(allowed)
    )]
    KeyOfficeNotAllowed {
        key_id: KeyId,
        office: OfficeCode,
        allowed: Vec<OfficeCode>,
    },
}

struct OfficeList<'a>(&'a [OfficeCode]);

impl fmt::Display for OfficeList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, o) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{o}")?;
        }
        Ok(())
    }
}

impl SignatureError {
    /// Every code, for documentation and exhaustive tests at the edge.
    pub const CODES: [&'static str; 9] = [
        "MISSING_SIGNATURE",
        "MALFORMED_SIGNATURE",
        "UNKNOWN_KEY",
        "BAD_SIGNATURE",
        "KEY_NOT_YET_VALID",
        "KEY_EXPIRED",
        "KEY_REVOKED",
        "KEY_COUNTRY_MISMATCH",
        "KEY_OFFICE_NOT_ALLOWED",
    ];

    /// The stable SCREAMING_SNAKE code, e.g. `BAD_SIGNATURE`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Missing => "MISSING_SIGNATURE",
            Self::Malformed(_) => "MALFORMED_SIGNATURE",
            Self::UnknownKey { .. } => "UNKNOWN_KEY",
            Self::BadSignature { .. } => "BAD_SIGNATURE",
            Self::KeyNotYetValid { .. } => "KEY_NOT_YET_VALID",
            Self::KeyExpired { .. } => "KEY_EXPIRED",
            Self::KeyRevoked { .. } => "KEY_REVOKED",
            Self::KeyCountryMismatch { .. } => "KEY_COUNTRY_MISMATCH",
            Self::KeyOfficeNotAllowed { .. } => "KEY_OFFICE_NOT_ALLOWED",
        }
    }

    /// A human explanation naming the values involved (same as `Display`).
    pub fn reason(&self) -> String {
        self.to_string()
    }

    /// 401 until the signature has verified (who sent it is not known), 403 for what is
    /// refused about the key that made it: validity, revocation, country, office.
    pub fn kind(&self) -> SignatureErrorKind {
        match self {
            Self::Missing
            | Self::Malformed(_)
            | Self::UnknownKey { .. }
            | Self::BadSignature { .. } => SignatureErrorKind::Unauthenticated,
            Self::KeyNotYetValid { .. }
            | Self::KeyExpired { .. }
            | Self::KeyRevoked { .. }
            | Self::KeyCountryMismatch { .. }
            | Self::KeyOfficeNotAllowed { .. } => SignatureErrorKind::Forbidden,
        }
    }
}
