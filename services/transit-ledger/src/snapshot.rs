//! Durable read models: the projections' views stored on disk together with the log position
//! (and the Merkle root at that position) they reflect, in one file replaced atomically.
//!
//! The views are kept in memory to answer queries within the latency targets; this file is
//! what lets a restart resume instead of replaying the whole log. Writing the views and their
//! position as one file, renamed into place only after it is fsynced, is the "same
//! transaction": after a crash the folder holds either the previous snapshot or the new one,
//! never views from one position labelled with another. The runner then replays the log from
//! the snapshot's position, so no event is applied twice or skipped (ADR 0004).
//!
//! A snapshot is only a cache of the log. One that cannot be used — damaged, written by
//! another format version or fraud configuration, or not matching the log it sits beside (its
//! Merkle root differs from the log's root at its position, e.g. after a log was restored from
//! an older backup) — is set aside and the views are rebuilt from position 0.
//!
//! Layout: a fixed header, then the views as MessagePack (`rmp_serde`, field names kept so a
//! reader can tell fields apart):
//! `magic "TLVIEWS1" | format u32 | position u64 | root [32] | payload_len u64 |
//!  payload_crc32c u32 | header_crc32c u32 | payload`, integers little-endian.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::projection::Views;

/// The snapshot's file name in its folder.
pub const SNAPSHOT_FILE: &str = "views.snapshot";
/// Bumped whenever the views' stored shape or their fold logic changes, so an old snapshot is
/// rebuilt rather than misread.
pub const VIEWS_FORMAT_VERSION: u32 = 2;
/// The largest snapshot payload read back (a bound on what a damaged length can ask for).
pub const SNAPSHOT_BYTES_MAX: u64 = 64 << 30;

const MAGIC: &[u8; 8] = b"TLVIEWS1";
const HEADER_LEN: usize = 8 + 4 + 8 + 32 + 8 + 4 + 4;

/// Why a snapshot could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading or writing the file failed.
    #[error("snapshot I/O: {0}")]
    Io(#[from] io::Error),
    /// The file is not a snapshot, or it is damaged.
    #[error("snapshot damaged: {0}")]
    Damaged(String),
    /// Written by another version of the views.
    #[error("snapshot format {found}, this build reads {VIEWS_FORMAT_VERSION}")]
    Format {
        /// The version found.
        found: u32,
    },
    /// The views could not be encoded or decoded.
    #[error("snapshot encoding: {0}")]
    Encoding(String),
}

/// Views with the position and root they reflect.
#[derive(Debug)]
pub struct Snapshot {
    /// The number of log events applied (positions `0..position`).
    pub position: u64,
    /// The log's Merkle root at `position`.
    pub root: [u8; 32],
    /// The views.
    pub views: Views,
}

/// What writing a snapshot cost.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// File size.
    pub bytes: u64,
    /// Time to encode the views (the runner pauses for this long).
    pub encode: std::time::Duration,
    /// Time to write and fsync the file.
    pub write: std::time::Duration,
}

/// Writes `bytes` to `path` so that `path` holds either its old content or all of `bytes`:
/// write a temporary file, fsync it, rename it over `path`, fsync the folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(err) = written {
        // A partial temporary file (a full disk) would hold on to space the log needs, and
        // the next attempt takes a new name: remove it now, not at the next start.
        let _ = std::fs::remove_file(&tmp);
        return Err(err);
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A temporary name of its own for each write (`<name>.tmp-<pid>-<n>`), so two writers —
/// e.g. a runner being replaced while its last write is still running — never interleave
/// their bytes in one temporary file.
fn tmp_path(path: &Path) -> PathBuf {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}-{n}", std::process::id()));
    path.with_file_name(name)
}

/// Removes temporary files a crash left beside `path` (`<name>.tmp-*`).
pub fn remove_stale_temporaries(path: &Path) -> io::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(());
    };
    let mut prefix = name.to_os_string();
    prefix.push(".tmp-");
    let prefix = prefix.to_string_lossy().into_owned();
    let entries = match std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Encodes `views` (reflecting `position` events, with Merkle root `root`) into snapshot bytes.
pub fn encode(position: u64, root: &[u8; 32], views: &Views) -> Result<Vec<u8>, SnapshotError> {
    let mut out = vec![0u8; HEADER_LEN];
    rmp_serde::encode::write_named(&mut out, views)
        .map_err(|e| SnapshotError::Encoding(e.to_string()))?;
    let payload_len = (out.len() - HEADER_LEN) as u64;
    let payload_crc = crc32c::crc32c(&out[HEADER_LEN..]);
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VIEWS_FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&position.to_le_bytes());
    header.extend_from_slice(root);
    header.extend_from_slice(&payload_len.to_le_bytes());
    header.extend_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&header);
    header.extend_from_slice(&header_crc.to_le_bytes());
    debug_assert_eq!(header.len(), HEADER_LEN);
    out[..HEADER_LEN].copy_from_slice(&header);
    Ok(out)
}

/// Writes the snapshot of `views` into `dir` (created if missing).
pub fn write(
    dir: &Path,
    position: u64,
    root: &[u8; 32],
    views: &Views,
) -> Result<Written, SnapshotError> {
    let started = std::time::Instant::now();
    let bytes = encode(position, root, views)?;
    let encode_time = started.elapsed();
    std::fs::create_dir_all(dir)?;
    write_atomically(&dir.join(SNAPSHOT_FILE), &bytes)?;
    Ok(Written {
        bytes: bytes.len() as u64,
        encode: encode_time,
        write: started.elapsed().saturating_sub(encode_time),
    })
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Decodes snapshot bytes, checking both checksums before trusting any length or value.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
    let damaged = |why: &str| SnapshotError::Damaged(why.to_owned());
    if bytes.len() < HEADER_LEN {
        return Err(damaged("shorter than its header"));
    }
    let (header, payload) = bytes.split_at(HEADER_LEN);
    if &header[..8] != MAGIC {
        return Err(damaged("not a views snapshot (bad magic)"));
    }
    if crc32c::crc32c(&header[..HEADER_LEN - 4]) != le_u32(&header[HEADER_LEN - 4..]) {
        return Err(damaged("header checksum mismatch"));
    }
    let format = le_u32(&header[8..12]);
    if format != VIEWS_FORMAT_VERSION {
        return Err(SnapshotError::Format { found: format });
    }
    let position = le_u64(&header[12..20]);
    let mut root = [0u8; 32];
    root.copy_from_slice(&header[20..52]);
    let payload_len = le_u64(&header[52..60]);
    if payload_len != payload.len() as u64 {
        return Err(damaged(
            "payload length differs from the header (torn write?)",
        ));
    }
    if crc32c::crc32c(payload) != le_u32(&header[60..64]) {
        return Err(damaged("payload checksum mismatch"));
    }
    let views: Views =
        rmp_serde::from_slice(payload).map_err(|e| SnapshotError::Encoding(e.to_string()))?;
    Ok(Snapshot {
        position,
        root,
        views,
    })
}

/// Reads the snapshot in `dir`; `Ok(None)` when there is none.
pub fn read(dir: &Path) -> Result<Option<Snapshot>, SnapshotError> {
    let path = dir.join(SNAPSHOT_FILE);
    remove_stale_temporaries(&path)?;
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let len = file.metadata()?.len();
    if len > SNAPSHOT_BYTES_MAX {
        return Err(SnapshotError::Damaged(format!(
            "{len} bytes is more than the {SNAPSHOT_BYTES_MAX} a snapshot may hold"
        )));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    decode(&bytes).map(Some)
}

/// Moves an unusable snapshot aside (kept for inspection, replaced by the next one set aside),
/// so the next start does not trip on it again.
pub fn set_aside(dir: &Path) -> io::Result<()> {
    let path = dir.join(SNAPSHOT_FILE);
    match std::fs::rename(&path, dir.join(format!("{SNAPSHOT_FILE}.unusable"))) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> Vec<u8> {
        encode(42, &[7u8; 32], &Views::default()).unwrap()
    }

    #[test]
    fn a_snapshot_round_trips_with_its_position_and_root() {
        let snap = decode(&sample()).unwrap();
        assert_eq!(snap.position, 42);
        assert_eq!(snap.root, [7u8; 32]);
        assert_eq!(snap.views.hashes(), Views::default().hashes());
    }

    #[test]
    fn a_torn_or_flipped_snapshot_is_refused_before_decoding() {
        let bytes = sample();
        for cut in [0, 10, HEADER_LEN, bytes.len() - 1] {
            assert!(
                matches!(decode(&bytes[..cut]), Err(SnapshotError::Damaged(_))),
                "cut at {cut}"
            );
        }
        for at in [0, 13, 30, HEADER_LEN - 1, HEADER_LEN, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[at] ^= 0x01;
            assert!(
                matches!(decode(&b), Err(SnapshotError::Damaged(_))),
                "flip at {at}"
            );
        }
    }

    #[test]
    fn another_format_version_is_refused() {
        let mut bytes = sample();
        bytes[8..12].copy_from_slice(&(VIEWS_FORMAT_VERSION + 1).to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..HEADER_LEN - 4]);
        bytes[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            decode(&bytes),
            Err(SnapshotError::Format { found }) if found == VIEWS_FORMAT_VERSION + 1
        ));
    }

    #[test]
    fn writing_replaces_the_file_atomically_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 1, &[1u8; 32], &Views::default()).unwrap();
        write(dir.path(), 2, &[2u8; 32], &Views::default()).unwrap();
        let snap = read(dir.path()).unwrap().unwrap();
        assert_eq!(snap.position, 2);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(SNAPSHOT_FILE)]);
        set_aside(dir.path()).unwrap();
        assert!(read(dir.path()).unwrap().is_none());
    }
}
