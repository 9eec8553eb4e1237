//! Signed submissions: who sent a message, proven with Ed25519, checked against a key registry.
//!
//! Every inbound message carries, beside it (never inside it: the message schema denies unknown
//! fields), a signature by a key of the sending administration. This crate says what is signed,
//! how the signature travels, how keys are listed and how a signature is checked. It is pure:
//! functions take text or bytes and return values; reading files, headers or broker properties
//! is the edge's job.
//!
//! # What is signed: the canonical form
//! [`signing_bytes`] = the ASCII domain separator [`DOMAIN_SEPARATOR`]
//! (`transit-ledger/submission/v1\n`) followed by the canonical JSON of the message:
//! `serde_json::to_vec(&InboundMessage)`, the same bytes whose SHA-256 is the ledger's content
//! digest ([`canonical_json`]). The canonical JSON is the *typed* value written back out: fields
//! in schema order, no whitespace, absent optional fields as `null`, identifiers normalised as
//! on parse (seal ids upper-cased and trimmed...), times in RFC 3339 UTC. A JSON submission and
//! an XML submission of the same message decode to the same value, so they have the same
//! canonical bytes and the same signature (Ed25519 is deterministic). Formatting, attribute
//! order, whitespace or the wire format never matter; content does.
//!
//! # How it travels
//! HTTP header [`HTTP_HEADER`] (`Transit-Signature`) or JMS/STOMP property [`BROKER_PROPERTY`]
//! (`transitSignature`), with the same text ([`SubmissionSignature`]):
//! `keyId=<key id>; alg=Ed25519; sig=<base64 (standard, padded) of the 64 signature bytes>`,
//! at most [`SIGNATURE_TEXT_LEN_MAX`] bytes.
//!
//! # The key registry
//! A TOML file of `[[key]]` entries ([`KeyRegistry`]): id, country, optional offices, public
//! key, validity period and revocation. [`KeyRegistry::verify`] checks, in this order: the key
//! is known (`UNKNOWN_KEY`); the signature verifies (`BAD_SIGNATURE`, with Ed25519
//! `verify_strict`); the key is not revoked at or before the time of the check (`KEY_REVOKED`);
//! the time is inside `not_before <= at < not_after` (`KEY_NOT_YET_VALID`, `KEY_EXPIRED`); the
//! key's country is the sender's (`KEY_COUNTRY_MISMATCH`); if the key lists offices, the
//! sender's office is one of them (`KEY_OFFICE_NOT_ALLOWED`). The signature is checked before
//! the policy, so every policy refusal is attributable to the key's holder.
//!
//! Checking the key against what the message *does* (Togo recording a crossing at a Burkinabè
//! office...) is the rules' job: `transit_rules::authz`, given that the sender is authentic.
//!
//! # Keys
//! [`generate_keypair`] takes the caller's 32 random bytes (this crate has no randomness);
//! [`SecretKeyFile`] is the small TOML file holding a secret key and its id;
//! [`KeyEntry::to_toml`] renders the registry entry of a public key.
//!
//! Invariant: no IO, no clock, no randomness: time and seeds are always passed in.

mod canonical;
mod keys;
mod registry;
mod signature;

#[cfg(test)]
mod tests;

pub use canonical::{canonical_json, signing_bytes, DOMAIN_SEPARATOR};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use keys::{
    generate_keypair, public_key_base64, KeyFileError, SecretKeyFile, KEY_FILE_BYTES_MAX,
    KEY_FILE_FORMAT,
};
pub use registry::{
    KeyEntry, KeyRegistry, RegistryError, SignatureError, SignatureErrorKind, VerifiedKey,
    COMMENT_LEN_MAX, OFFICES_PER_KEY_MAX, REGISTRY_BYTES_MAX, REGISTRY_KEYS_MAX,
};
pub use signature::{
    sign, verify_detached, KeyId, KeyIdError, SignatureParseError, SubmissionSignature, ALGORITHM,
    BROKER_PROPERTY, HTTP_HEADER, KEY_ID_LEN_MAX, SIGNATURE_TEXT_LEN_MAX,
};
