//! Key generation from caller-supplied randomness, and the secret key file.
//!
//! # The secret key file
//! A small TOML file, at most [`KEY_FILE_BYTES_MAX`] bytes (comments allowed):
//!
//! ```toml
//! format = "transit-ledger-ed25519-secret/v1"
//! id = "tg-dev-1"
//! secret_key = "<standard padded base64 of the 32-byte Ed25519 seed>"
//! public_key = "<standard padded base64 of the 32-byte public key>"
//! ```
//!
//! `public_key` is redundant on purpose: parsing checks it against the secret, so a damaged or
//! mismatched file is caught before it signs anything.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::Deserialize;

use crate::signature::KeyId;

/// The `format` line of a secret key file.
pub const KEY_FILE_FORMAT: &str = "transit-ledger-ed25519-secret/v1";
/// The largest secret key file accepted, in bytes.
pub const KEY_FILE_BYTES_MAX: usize = 4096;

/// A key pair from 32 secret bytes. The caller supplies them from a secure random source
/// (`getrandom`) so that this crate stays free of IO and randomness; the same seed always gives
/// the same pair.
pub fn generate_keypair(seed: [u8; 32]) -> (SigningKey, VerifyingKey) {
    let signing = SigningKey::from_bytes(&seed);
    let verifying = signing.verifying_key();
    (signing, verifying)
}

/// A public key as standard padded base64 (44 characters), as in the registry.
pub fn public_key_base64(key: &VerifyingKey) -> String {
    STANDARD.encode(key.as_bytes())
}

/// Decodes standard padded base64 of exactly 32 bytes.
pub(crate) fn decode_32(text: &str) -> Result<[u8; 32], String> {
    // 32 bytes are 44 characters: refuse anything else before decoding.
    if text.len() != 44 {
        return Err(format!(
            "{} characters, expected 44 (base64 of 32 bytes)",
            text.len()
        ));
    }
    let bytes = STANDARD.decode(text).map_err(|e| e.to_string())?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| format!("{len} bytes, expected 32"))
}

/// Why a secret key file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    #[error("the key file is {0} bytes, at most {KEY_FILE_BYTES_MAX} allowed")]
    TooLarge(usize),
    #[error("not a key file: {0}")]
    Toml(String),
    #[error("format {0:?} is not {KEY_FILE_FORMAT:?}")]
    Format(String),
    #[error("id: {0}")]
    KeyId(String),
    #[error("secret_key: {0}")]
    SecretKey(String),
    #[error("public_key: {0}")]
    PublicKey(String),
    #[error("public_key does not match secret_key: the file is damaged or mixes two keys")]
    Mismatch,
}

/// The contents of a secret key file: the key and the id it signs as.
#[derive(Clone)]
pub struct SecretKeyFile {
    pub key_id: KeyId,
    pub signing_key: SigningKey,
}

impl fmt::Debug for SecretKeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(
            f,
            "SecretKeyFile({}, public {})",
            self.key_id,
            public_key_base64(&self.signing_key.verifying_key())
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyFile {
    format: String,
    id: String,
    secret_key: String,
    public_key: String,
}

impl SecretKeyFile {
    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing_key.verifying_key()
    }

    /// Parses a key file (see the module docs), checking the public key against the secret.
    pub fn from_toml_str(text: &str) -> Result<Self, KeyFileError> {
        if text.len() > KEY_FILE_BYTES_MAX {
            return Err(KeyFileError::TooLarge(text.len()));
        }
        let raw: RawKeyFile =
            toml::from_str(text).map_err(|e| KeyFileError::Toml(e.message().to_owned()))?;
        if raw.format != KEY_FILE_FORMAT {
            return Err(KeyFileError::Format(raw.format));
        }
        let key_id: KeyId = raw
            .id
            .parse()
            .map_err(|e: crate::KeyIdError| KeyFileError::KeyId(e.to_string()))?;
        let seed = decode_32(&raw.secret_key).map_err(KeyFileError::SecretKey)?;
        let public = decode_32(&raw.public_key).map_err(KeyFileError::PublicKey)?;
        let (signing_key, verifying) = generate_keypair(seed);
        if verifying.as_bytes() != &public {
            return Err(KeyFileError::Mismatch);
        }
        Ok(SecretKeyFile {
            key_id,
            signing_key,
        })
    }

    /// The file's text, with a comment saying what it is. Prepend more `#` lines freely.
    pub fn to_toml(&self) -> String {
        format!(
            "# transit-ledger submission signing key {id}. SECRET: whoever holds this file signs\n\
             # as {id}. Keep it with the national system only (mode 0600); the registry holds\n\
             # the public key.\n\
             format = \"{KEY_FILE_FORMAT}\"\n\
             id = \"{id}\"\n\
             secret_key = \"{secret}\"\n\
             public_key = \"{public}\"\n",
            id = self.key_id,
            secret = STANDARD.encode(self.signing_key.to_bytes()),
            public = public_key_base64(&self.verifying_key()),
        )
    }
}
