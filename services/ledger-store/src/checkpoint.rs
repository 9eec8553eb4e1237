//! Signed checkpoints: the ledger's Ed25519 signature over (origin, tree size, root, time),
//! in the spirit of the C2SP tlog-checkpoint note format, so that anyone holding the ledger's
//! public key can check that a tree head is authentic and, with consistency proofs, that the
//! log only ever grew.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use ledger_merkle::Hash;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The text the signature covers.
pub fn note_body(origin: &str, tree_size: u64, root: &Hash, timestamp_ms: i64) -> String {
    let root_b64 = base64::engine::general_purpose::STANDARD.encode(root);
    format!("{origin}\n{tree_size}\n{root_b64}\ntime {timestamp_ms}\n")
}

/// A tree head signed by the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedCheckpoint {
    /// The log's name (its identity in the note).
    pub origin: String,
    /// Number of leaves (events) covered.
    pub tree_size: u64,
    /// Merkle root at `tree_size`, hex.
    pub root: String,
    /// When it was signed (ledger clock), Unix milliseconds.
    pub timestamp_ms: i64,
    /// Which key signed: hex of the first 8 bytes of SHA-256(public key).
    pub key_id: String,
    /// Ed25519 signature over [`note_body`], hex.
    pub signature: String,
}

impl SignedCheckpoint {
    /// The signed note text (body, blank line, signature line) as C2SP notes show it.
    pub fn note(&self) -> Result<String, String> {
        let root = ledger_merkle::from_hex(&self.root).map_err(|e| e.to_string())?;
        let sig = hex::decode(&self.signature).map_err(|e| e.to_string())?;
        let sig_b64 = base64::engine::general_purpose::STANDARD.encode(sig);
        Ok(format!(
            "{}\n\u{2014} {} {}\n",
            note_body(&self.origin, self.tree_size, &root, self.timestamp_ms),
            self.key_id,
            sig_b64
        ))
    }

    /// Checks the signature with `key`.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), String> {
        if key_id(key) != self.key_id {
            return Err(format!(
                "checkpoint signed by key {}, not this one",
                self.key_id
            ));
        }
        let root = ledger_merkle::from_hex(&self.root).map_err(|e| e.to_string())?;
        let sig_bytes: [u8; 64] = hex::decode(&self.signature)
            .map_err(|e| e.to_string())?
            .try_into()
            .map_err(|_| "signature is not 64 bytes".to_owned())?;
        let body = note_body(&self.origin, self.tree_size, &root, self.timestamp_ms);
        key.verify(body.as_bytes(), &Signature::from_bytes(&sig_bytes))
            .map_err(|_| "checkpoint signature does not verify".to_owned())
    }
}

/// The key id of a public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// The ledger's signing key.
pub struct LedgerKey {
    signing: SigningKey,
}

impl std::fmt::Debug for LedgerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "LedgerKey({})", key_id(&self.signing.verifying_key()))
    }
}

/// File name of the secret key inside the key folder.
pub const SECRET_FILE: &str = "ledger.ed25519";
/// File name of the public key inside the key folder.
pub const PUBLIC_FILE: &str = "ledger.ed25519.pub";

impl LedgerKey {
    /// A key from 32 secret bytes (tests, simulations).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(&secret),
        }
    }

    /// Loads the key from `dir`, creating one (secret file mode 0600) if there is none.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Self> {
        let secret_path = dir.join(SECRET_FILE);
        if secret_path.exists() {
            let text = fs::read_to_string(&secret_path)?;
            let bytes: [u8; 32] = hex::decode(text.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} is not a hex Ed25519 secret key", secret_path.display()),
                    )
                })?;
            return Ok(Self::from_secret(bytes));
        }
        fs::create_dir_all(dir)?;
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
        let key = Self::from_secret(secret);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&secret_path)?;
        f.write_all(hex::encode(secret).as_bytes())?;
        f.sync_all()?;
        fs::write(dir.join(PUBLIC_FILE), hex::encode(key.public().as_bytes()))?;
        fs::File::open(dir)?.sync_all()?;
        Ok(key)
    }

    /// The public half.
    pub fn public(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// Signs a tree head.
    pub fn sign(
        &self,
        origin: &str,
        tree_size: u64,
        root: &Hash,
        timestamp_ms: i64,
    ) -> SignedCheckpoint {
        let body = note_body(origin, tree_size, root, timestamp_ms);
        let sig = self.signing.sign(body.as_bytes());
        SignedCheckpoint {
            origin: origin.to_owned(),
            tree_size,
            root: ledger_merkle::to_hex(root),
            timestamp_ms,
            key_id: key_id(&self.public()),
            signature: hex::encode(sig.to_bytes()),
        }
    }
}

/// Reads a hex public key file.
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{} is not a hex Ed25519 public key", path.display()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sign_then_verify_and_tamper() {
        let key = LedgerKey::from_secret([7; 32]);
        let cp = key.sign("transit-ledger/test", 42, &[1; 32], 1_700_000_000_000);
        cp.verify(&key.public()).unwrap();
        let mut bad = cp.clone();
        bad.tree_size = 43;
        assert!(bad.verify(&key.public()).is_err());
        let other = LedgerKey::from_secret([8; 32]);
        assert!(cp.verify(&other.public()).is_err());
        assert!(cp.note().unwrap().contains("\n42\n"));
    }
}
