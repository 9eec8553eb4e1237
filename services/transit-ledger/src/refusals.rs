//! The refused-submissions audit log: every submission the ledger refused (over HTTP or the
//! broker), with who claimed to send it, the reason code, and a hash of the bytes, so attempts
//! to write what a sender may not write are visible to auditors and analysts, never silently
//! dropped.
//!
//! Refusals are not transit facts and are kept out of the event log (a refused message
//! "appends nothing"): they go to `DATA/refusals.log`, one JSON object per line, synced before
//! the refusal is answered. The newest [`REFUSALS_RECENT_MAX`] are also kept in memory for the
//! GraphQL `refusedSubmissions` view; the file keeps them all. A torn last line (crash while
//! writing) is skipped on open.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use transit_contract::ids::Timestamp;
use transit_contract::messages::InboundMessage;

/// Refusals kept in memory for queries (the file keeps all of them).
pub const REFUSALS_RECENT_MAX: usize = 10_000;
/// The longest reason text kept (a reason quoting hostile input stays bounded).
pub const REFUSAL_REASON_CHARS_MAX: usize = 1_000;

/// One refused submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedSubmission {
    /// Sequence number in the log (0-based).
    pub seq: u64,
    /// The ledger clock when it was refused.
    pub at: Timestamp,
    /// `http` or `broker`.
    pub channel: String,
    /// The reason code (`FORBIDDEN_OFFICE`, `BAD_SIGNATURE`, `MALFORMED`, ...).
    pub code: String,
    /// The human-readable reason.
    pub reason: String,
    /// The sender the message claimed, when it parsed.
    pub sender_country: Option<String>,
    /// The sender office the message claimed, when it parsed.
    pub sender_office: Option<String>,
    /// The message id, when it parsed.
    pub message_id: Option<String>,
    /// The message type, when it parsed.
    pub kind: Option<String>,
    /// The movement, when the message names one.
    pub mrn: Option<String>,
    /// The key id named by the signature, when one was sent (not proof of who sent it).
    pub key_id: Option<String>,
    /// SHA-256 of the bytes received, hex.
    pub body_sha256: String,
    /// Size of the bytes received.
    pub body_bytes: u64,
    /// Who was authenticated when it was refused: the bearer token's `<iss>/<sub>` over HTTP,
    /// the broker user over the broker (absent when not known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

/// What the caller knows about a refused submission.
#[derive(Debug, Clone, Copy)]
pub struct Refused<'a> {
    /// `http` or `broker`.
    pub channel: &'a str,
    /// The bytes received.
    pub raw: &'a [u8],
    /// The message, if it parsed.
    pub message: Option<&'a InboundMessage>,
    /// The signature text received, if any.
    pub signature: Option<&'a str>,
    /// The reason code.
    pub code: &'a str,
    /// The reason.
    pub reason: &'a str,
    /// Who was authenticated, if known.
    pub principal: Option<&'a str>,
}

/// A filter on refusals (all fields optional).
#[derive(Debug, Clone, Default)]
pub struct RefusalFilter {
    /// Claimed sender country.
    pub country: Option<String>,
    /// Reason code.
    pub code: Option<String>,
}

/// The append-only refusal log and its in-memory tail.
#[derive(Debug)]
pub struct RefusalLog {
    path: PathBuf,
    file: Mutex<File>,
    recent: Mutex<VecDeque<RefusedSubmission>>,
    total: AtomicU64,
}

impl RefusalLog {
    /// Opens (or creates) the log at `path` and loads its newest entries.
    pub fn open(path: impl Into<PathBuf>) -> std::io::Result<RefusalLog> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut recent = VecDeque::new();
        let mut total = 0u64;
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).lines() {
                let line = line?;
                match serde_json::from_str::<RefusedSubmission>(&line) {
                    Ok(r) => {
                        total = total.max(r.seq + 1);
                        if recent.len() == REFUSALS_RECENT_MAX {
                            recent.pop_front();
                        }
                        recent.push_back(r);
                    }
                    Err(e) => tracing::warn!(
                        path = %path.display(),
                        error = %e,
                        "skipped an unreadable refusal line (torn by a crash?)"
                    ),
                }
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)?;
        // A line torn by a crash gets its end, so the next entry starts a line of its own.
        let len = file.metadata()?.len();
        if len > 0 {
            use std::io::{Read, Seek, SeekFrom};
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        Ok(RefusalLog {
            path,
            file: Mutex::new(file),
            recent: Mutex::new(recent),
            total: AtomicU64::new(total),
        })
    }

    /// Where it is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a refusal durably (the line is synced before this returns). Recording must
    /// never turn a refusal into a server error, so a write failure is logged, not returned.
    pub fn record(&self, at: Timestamp, refused: Refused<'_>) -> RefusedSubmission {
        let message = refused.message;
        let key_id = refused.signature.and_then(|s| {
            s.parse::<transit_auth::SubmissionSignature>()
                .ok()
                .map(|sig| sig.key_id.to_string())
        });
        let mut reason = refused.reason.to_owned();
        if reason.chars().count() > REFUSAL_REASON_CHARS_MAX {
            reason = reason.chars().take(REFUSAL_REASON_CHARS_MAX).collect();
            reason.push('…');
        }
        let mut file = self.file.lock();
        let entry = RefusedSubmission {
            seq: self.total.fetch_add(1, Ordering::SeqCst),
            at,
            channel: refused.channel.to_owned(),
            code: refused.code.to_owned(),
            reason,
            sender_country: message.map(|m| m.sender.country.to_string()),
            sender_office: message.map(|m| m.sender.office.to_string()),
            message_id: message.map(|m| m.message_id.to_string()),
            kind: message.map(|m| m.kind().to_owned()),
            mrn: message.and_then(|m| m.mrn()).map(|m| m.to_string()),
            key_id,
            body_sha256: hex::encode(Sha256::digest(refused.raw)),
            body_bytes: refused.raw.len() as u64,
            principal: refused.principal.map(str::to_owned),
        };
        let written = serde_json::to_vec(&entry)
            .map_err(std::io::Error::other)
            .and_then(|mut line| {
                line.push(b'\n');
                file.write_all(&line)?;
                file.sync_data()
            });
        if let Err(e) = written {
            tracing::error!(error = %e, path = %self.path.display(), "could not record a refusal");
        }
        drop(file);
        let mut recent = self.recent.lock();
        if recent.len() == REFUSALS_RECENT_MAX {
            recent.pop_front();
        }
        recent.push_back(entry.clone());
        entry
    }

    /// Refusals ever recorded.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    /// The newest refusals matching `filter`, newest first, at most `first`.
    pub fn newest(&self, filter: &RefusalFilter, first: usize) -> Vec<RefusedSubmission> {
        self.recent
            .lock()
            .iter()
            .rev()
            .filter(|r| {
                filter
                    .country
                    .as_ref()
                    .is_none_or(|c| r.sender_country.as_ref() == Some(c))
                    && filter.code.as_ref().is_none_or(|c| &r.code == c)
            })
            .take(first)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn refused<'a>(code: &'a str, raw: &'a [u8]) -> Refused<'a> {
        Refused {
            channel: "http",
            raw,
            message: None,
            signature: Some("keyId=tg-dev-1; alg=Ed25519; sig=AAAA"),
            code,
            reason: "because",
            principal: Some("transit-ledger-dev/tg-asycuda"),
        }
    }

    #[test]
    fn refusals_survive_a_reopen_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("refusals.log");
        let at = Timestamp::from_unix_millis(1_780_000_000_000).unwrap();
        {
            let log = RefusalLog::open(&path).unwrap();
            log.record(at, refused("BAD_SIGNATURE", b"one"));
            log.record(at, refused("FORBIDDEN_OFFICE", b"two"));
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"seq\":2,\"at\"")
            .unwrap();
        let log = RefusalLog::open(&path).unwrap();
        assert_eq!(log.total(), 2);
        log.record(at, refused("MALFORMED", b"three"));
        drop(log);
        let log = RefusalLog::open(&path).unwrap();
        assert_eq!(log.total(), 3);
        assert_eq!(
            log.newest(&RefusalFilter::default(), 1)[0].code,
            "MALFORMED"
        );
        let all = log.newest(&RefusalFilter::default(), 10);
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].code, "FORBIDDEN_OFFICE");
        assert_eq!(all[1].body_sha256, hex::encode(Sha256::digest(b"two")));
        let only = RefusalFilter {
            code: Some("BAD_SIGNATURE".into()),
            ..RefusalFilter::default()
        };
        assert_eq!(log.newest(&only, 10)[0].seq, 0);
    }
}
