//! Offline verification of a data folder, for auditors: every record's checksums and
//! sequence, the Merkle tree rebuilt from the records, and every signed checkpoint (signature
//! and root) against it. Changes nothing on disk.

use std::path::Path;

use ed25519_dalek::VerifyingKey;

use crate::checkpoint::{load_public_key, PUBLIC_FILE};
use crate::file::{read_checkpoints, scan_log, CHECKPOINT_FILE, KEY_DIR, LOG_DIR};
use crate::StoreError;

/// Where verification found the first problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Global position of the first event that cannot be trusted (for checkpoint problems:
    /// the first position past the last checkpoint that checked out).
    pub position: u64,
    /// File it is in.
    pub file: String,
    /// Byte offset in that file.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

/// What verification found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events that checked out.
    pub events: u64,
    /// Segment files read.
    pub segments: usize,
    /// Checkpoints whose signature and root checked out.
    pub checkpoints_verified: u64,
    /// Tree size of the last checkpoint that checked out.
    pub last_checkpoint_size: u64,
    /// The Merkle root over all events, hex.
    pub root: String,
    /// An unfinished write at the end (never acknowledged; the next open cuts it).
    pub torn_tail: Option<String>,
    /// The first problem, if any: the folder is intact only when this is `None`.
    pub problem: Option<Problem>,
    /// Which key the checkpoints were checked with, and where it came from.
    pub key_source: String,
}

impl VerifyReport {
    /// True when nothing was altered or lost.
    pub fn intact(&self) -> bool {
        self.problem.is_none()
    }
}

/// Verifies the data folder `dir`. `public_key` should come from a trusted source; without it
/// the key stored in the folder is used (which an attacker with write access could replace).
pub fn verify_dir(
    dir: &Path,
    public_key: Option<VerifyingKey>,
) -> Result<VerifyReport, StoreError> {
    let (key, key_source) = match public_key {
        Some(key) => (key, "given public key".to_owned()),
        None => {
            let path = dir.join(KEY_DIR).join(PUBLIC_FILE);
            let key = load_public_key(&path).map_err(StoreError::Invalid)?;
            (key, format!("{} (from the data folder)", path.display()))
        }
    };
    let scan = scan_log(&dir.join(LOG_DIR))?;
    let mut report = VerifyReport {
        events: scan.events(),
        segments: scan.segments(),
        root: ledger_merkle::to_hex(&scan.tree().root()),
        torn_tail: scan.cut.as_ref().map(|c| {
            format!(
                "{} bytes at the end of {}: {} (never acknowledged; cut on next open)",
                c.bytes,
                c.path.display(),
                c.reason
            )
        }),
        key_source,
        ..VerifyReport::default()
    };
    if let Some(StoreError::Corrupt {
        position,
        segment,
        offset,
        reason,
    }) = &scan.damage
    {
        report.problem = Some(Problem {
            position: *position,
            file: segment.clone(),
            offset: *offset,
            reason: reason.clone(),
        });
    }
    let checkpoint_path = dir.join(CHECKPOINT_FILE);
    let problem = |offset: u64, position: u64, reason: String| Problem {
        position,
        file: checkpoint_path.display().to_string(),
        offset,
        reason,
    };
    if !checkpoint_path.exists() {
        return Ok(report);
    }
    let checkpoints = match read_checkpoints(&checkpoint_path) {
        Ok(c) => c,
        Err((offset, reason)) => {
            report.problem.get_or_insert(problem(offset, 0, reason));
            return Ok(report);
        }
    };
    let tree = scan.tree();
    for (offset, cp) in &checkpoints.items {
        let after = report.last_checkpoint_size;
        if let Err(reason) = cp.verify(&key) {
            report
                .problem
                .get_or_insert(problem(*offset, after, reason));
            break;
        }
        if cp.tree_size > tree.len() {
            // Either the log lost acknowledged events, or damage stopped the scan earlier.
            if report.problem.is_none() {
                report.problem = Some(problem(
                    *offset,
                    tree.len(),
                    format!(
                        "signed checkpoint covers {} events but only {} are in the log",
                        cp.tree_size,
                        tree.len()
                    ),
                ));
            }
            break;
        }
        let root = tree.root_at(cp.tree_size)?;
        if ledger_merkle::to_hex(&root) != cp.root {
            report.problem.get_or_insert(problem(
                *offset,
                after,
                format!(
                    "Merkle root at size {} differs from the signed checkpoint: an event in positions {after}..{} was altered",
                    cp.tree_size, cp.tree_size
                ),
            ));
            break;
        }
        report.checkpoints_verified += 1;
        report.last_checkpoint_size = cp.tree_size;
    }
    Ok(report)
}
