//! Key ids, the signature's text form (`Transit-Signature` / `transitSignature`), signing and
//! the offline check against one public key.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use transit_contract::messages::InboundMessage;

use crate::canonical::signing_bytes;

/// The HTTP header that carries the signature of a submission.
pub const HTTP_HEADER: &str = "Transit-Signature";
/// The JMS / STOMP message property that carries the signature of a broker submission.
pub const BROKER_PROPERTY: &str = "transitSignature";
/// The only algorithm: the `alg` parameter's value.
pub const ALGORITHM: &str = "Ed25519";
/// The longest signature text accepted, in bytes (a well-formed one is at most 123).
pub const SIGNATURE_TEXT_LEN_MAX: usize = 512;
/// The longest key id, in characters.
pub const KEY_ID_LEN_MAX: usize = 64;

/// Base64 (standard alphabet, padded) of 64 bytes is 88 characters.
const SIGNATURE_BASE64_LEN: usize = 88;

/// Why a text is not a key id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyIdError {
    #[error("a key id must not be empty")]
    Empty,
    #[error("a key id is at most {KEY_ID_LEN_MAX} characters, this one has {0}")]
    TooLong(usize),
    #[error("character {character:?} at position {position} is not allowed in a key id (only A-Z a-z 0-9 . _ : -)")]
    InvalidCharacter { position: usize, character: char },
}

/// The name of a key in the registry: 1 to [`KEY_ID_LEN_MAX`] characters of
/// `[A-Za-z0-9._:-]`, compared exactly (case matters), e.g. `tg-dev-1`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn key_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')
}

impl FromStr for KeyId {
    type Err = KeyIdError;
    fn from_str(s: &str) -> Result<Self, KeyIdError> {
        if s.is_empty() {
            return Err(KeyIdError::Empty);
        }
        if let Some((position, character)) = s.chars().enumerate().find(|(_, c)| !key_id_char(*c)) {
            return Err(KeyIdError::InvalidCharacter {
                position,
                character,
            });
        }
        // Only ASCII is left, so bytes = characters.
        if s.len() > KEY_ID_LEN_MAX {
            return Err(KeyIdError::TooLong(s.len()));
        }
        Ok(KeyId(s.to_owned()))
    }
}

impl TryFrom<String> for KeyId {
    type Error = KeyIdError;
    fn try_from(s: String) -> Result<Self, KeyIdError> {
        s.parse()
    }
}

impl From<KeyId> for String {
    fn from(k: KeyId) -> String {
        k.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

/// Why a signature text was refused (`MALFORMED_SIGNATURE`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureParseError {
    #[error("the signature is {0} bytes long, at most {SIGNATURE_TEXT_LEN_MAX} allowed")]
    TooLong(usize),
    #[error("the signature must be printable ASCII")]
    NotPrintableAscii,
    #[error("empty parameter: expected `keyId=<id>; alg=Ed25519; sig=<base64>`")]
    EmptyParameter,
    #[error("parameter {0:?} is not of the form name=value")]
    NotNameValue(String),
    #[error("unknown parameter {0:?}: only keyId, alg and sig are allowed")]
    UnknownParameter(String),
    #[error("parameter {0} appears more than once")]
    DuplicateParameter(&'static str),
    #[error("parameter {0} is missing: expected `keyId=<id>; alg=Ed25519; sig=<base64>`")]
    MissingParameter(&'static str),
    #[error("alg {0:?} is not supported: only {ALGORITHM}")]
    UnsupportedAlgorithm(String),
    #[error("keyId: {0}")]
    KeyId(KeyIdError),
    #[error("sig: not standard padded base64 of 64 bytes ({0})")]
    Base64(String),
}

/// A signature over a submission's [`signing_bytes`], by the key `key_id`.
///
/// Its text form (`Display` / `FromStr`) is the value of the `Transit-Signature` header and of
/// the `transitSignature` broker property:
/// `keyId=tg-dev-1; alg=Ed25519; sig=<88 characters of base64>`. Parsing is strict: exactly
/// the three parameters (in any order, each once, names case-sensitive), spaces or tabs only
/// around `;` and at the ends, `alg` exactly `Ed25519`, `sig` canonical padded base64 of
/// exactly 64 bytes, at most [`SIGNATURE_TEXT_LEN_MAX`] bytes in all.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SubmissionSignature {
    pub key_id: KeyId,
    pub signature: [u8; 64],
}

impl SubmissionSignature {
    /// The signature bytes as standard padded base64 (88 characters).
    pub fn signature_base64(&self) -> String {
        STANDARD.encode(self.signature)
    }
}

impl fmt::Display for SubmissionSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "keyId={}; alg={ALGORITHM}; sig={}",
            self.key_id,
            self.signature_base64()
        )
    }
}

impl fmt::Debug for SubmissionSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubmissionSignature({self})")
    }
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

fn decode_signature(text: &str) -> Result<[u8; 64], SignatureParseError> {
    if text.len() != SIGNATURE_BASE64_LEN {
        return Err(SignatureParseError::Base64(format!(
            "{} characters, expected {SIGNATURE_BASE64_LEN}",
            text.len()
        )));
    }
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| SignatureParseError::Base64(e.to_string()))?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| SignatureParseError::Base64(format!("{len} bytes")))
}

impl FromStr for SubmissionSignature {
    type Err = SignatureParseError;
    fn from_str(s: &str) -> Result<Self, SignatureParseError> {
        if s.len() > SIGNATURE_TEXT_LEN_MAX {
            return Err(SignatureParseError::TooLong(s.len()));
        }
        if !s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
            return Err(SignatureParseError::NotPrintableAscii);
        }
        let mut key_id = None;
        let mut alg = None;
        let mut sig = None;
        for part in s.split(';') {
            let part = trim_ows(part);
            if part.is_empty() {
                return Err(SignatureParseError::EmptyParameter);
            }
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| SignatureParseError::NotNameValue(part.to_owned()))?;
            let (slot, name) = match name {
                "keyId" => (&mut key_id, "keyId"),
                "alg" => (&mut alg, "alg"),
                "sig" => (&mut sig, "sig"),
                other => return Err(SignatureParseError::UnknownParameter(other.to_owned())),
            };
            if slot.replace(value).is_some() {
                return Err(SignatureParseError::DuplicateParameter(name));
            }
        }
        let key_id = key_id.ok_or(SignatureParseError::MissingParameter("keyId"))?;
        let alg = alg.ok_or(SignatureParseError::MissingParameter("alg"))?;
        let sig = sig.ok_or(SignatureParseError::MissingParameter("sig"))?;
        if alg != ALGORITHM {
            return Err(SignatureParseError::UnsupportedAlgorithm(alg.to_owned()));
        }
        Ok(SubmissionSignature {
            key_id: key_id.parse().map_err(SignatureParseError::KeyId)?,
            signature: decode_signature(sig)?,
        })
    }
}

/// Signs `msg` with `key`, naming the key `key_id`.
pub fn sign(key: &SigningKey, key_id: KeyId, msg: &InboundMessage) -> SubmissionSignature {
    SubmissionSignature {
        key_id,
        signature: key.sign(&signing_bytes(msg)).to_bytes(),
    }
}

/// Whether `sig` is a valid Ed25519 signature (strict verification) of `msg`'s
/// [`signing_bytes`] by `key`. The key id is not looked at.
pub(crate) fn verify_with_key(
    key: &VerifyingKey,
    msg: &InboundMessage,
    sig: &SubmissionSignature,
) -> bool {
    key.verify_strict(&signing_bytes(msg), &Signature::from_bytes(&sig.signature))
        .is_ok()
}

/// Whether `sig` is a valid signature of `msg` by the holder of `public_key`, with no registry:
/// for an auditor re-checking a recorded submission years later with the public key recorded
/// beside it. Only the cryptography is checked (the key id, validity and country were checked
/// when the submission was recorded). An invalid public key encoding verifies nothing.
pub fn verify_detached(
    public_key: &[u8; 32],
    msg: &InboundMessage,
    sig: &SubmissionSignature,
) -> bool {
    VerifyingKey::from_bytes(public_key).is_ok_and(|key| verify_with_key(&key, msg, sig))
}
