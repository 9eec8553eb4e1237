//! The embedded store: the shared contract, plus what only a file-backed log must show:
//! durability across reopen, torn tails cut, damage reported with its position, tamper
//! detection by the signed checkpoints, segment rollover.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use ledger_store::file::{FileStore, FileStoreConfig, LOG_DIR};
use ledger_store::testsuite::{event, to};
use ledger_store::verify::verify_dir;
use ledger_store::{EventStore, ExpectedVersion, LedgerKey, StoreError};
use tempfile::TempDir;

fn config(dir: &Path) -> FileStoreConfig {
    let mut config = FileStoreConfig::new(dir);
    config.key = Some(LedgerKey::from_secret([3; 32]));
    config
}

async fn fresh() -> (Arc<FileStore>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(config(dir.path())).unwrap();
    (Arc::new(store), dir)
}

ledger_store::contract_tests!(fresh);

async fn fill(store: &FileStore, n: u32) {
    for i in 0..n {
        store
            .append(vec![
                to(
                    &format!("movement-{}", i % 7),
                    ExpectedVersion::Any,
                    vec![event("Moved", format!("payload {i}").as_bytes())],
                ),
                to(
                    &format!("guarantee-{}", i % 3),
                    ExpectedVersion::Any,
                    vec![event("Reserved", &[1; 100])],
                ),
            ])
            .await
            .unwrap();
    }
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join(LOG_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn reopen_keeps_everything_and_the_same_root() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(config(dir.path())).unwrap();
    fill(&store, 50).await;
    let before = store.read_all(0, 1000).await.unwrap();
    let cp = store.close().await.unwrap().unwrap();
    let store = FileStore::open(config(dir.path())).unwrap();
    assert_eq!(store.open_report().events, 100);
    assert_eq!(store.read_all(0, 1000).await.unwrap(), before);
    assert_eq!(store.latest_checkpoint(), Some(cp));
    store.close().await.unwrap();
    let report = verify_dir(dir.path(), None).unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.events, 100);
    assert_eq!(report.last_checkpoint_size, 100);
}

#[tokio::test]
async fn a_second_open_of_the_same_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(config(dir.path())).unwrap();
    let err = FileStore::open(config(dir.path())).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    store.close().await.unwrap();
}

#[tokio::test]
async fn torn_tail_is_cut_on_open_at_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(config(dir.path())).unwrap();
    fill(&store, 3).await; // 3 appends of 2 records each
    let events = store.read_all(0, 10).await.unwrap();
    store.close().await.unwrap();
    let seg = segment_files(dir.path()).pop().unwrap();
    let full = std::fs::read(&seg).unwrap();
    let copy_dir = dir.path().join("copy");
    // A crash can stop the write at any byte. Whatever survives, the store opens, keeps whole
    // appends only (never half of a multi-stream append), and serves a prefix of the history.
    // (No checkpoint file in the copy: a cut below a signed checkpoint is damage, tested apart.)
    for keep in 16..full.len() {
        std::fs::create_dir_all(copy_dir.join(LOG_DIR)).unwrap();
        let copy = copy_dir.join(LOG_DIR).join(seg.file_name().unwrap());
        std::fs::write(&copy, &full[..keep]).unwrap();
        let report = verify_dir(&copy_dir, Some(LedgerKey::from_secret([3; 32]).public())).unwrap();
        assert!(
            report.intact(),
            "keep {keep}: a torn tail is not damage: {report:?}"
        );
        let store = FileStore::open(config(&copy_dir)).unwrap();
        let n = store.head();
        assert_eq!(
            n % 2,
            0,
            "an append is all or nothing (keep {keep}, head {n})"
        );
        assert_eq!(
            store.read_all(0, 10).await.unwrap()[..],
            events[..n as usize]
        );
        // The cut tail is gone for good: new appends continue from a clean end.
        fill(&store, 1).await;
        store.close().await.unwrap();
        assert!(verify_dir(&copy_dir, None).unwrap().intact());
        std::fs::remove_dir_all(&copy_dir).unwrap();
    }
    // Zero-filled space after the last record (as a power cut can leave) is a torn tail too.
    let mut padded = full.clone();
    padded.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&seg, &padded).unwrap();
    let store = FileStore::open(config(dir.path())).unwrap();
    assert_eq!(store.head(), 6);
    assert_eq!(store.open_report().torn_bytes_cut, 4096);
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_flipped_byte_anywhere_is_reported_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(config(dir.path())).unwrap();
    fill(&store, 10).await;
    store.close().await.unwrap();
    let seg = segment_files(dir.path()).pop().unwrap();
    let full = std::fs::read(&seg).unwrap();
    let store = FileStore::open(config(dir.path())).unwrap();
    let events = store.read_all(0, 100).await.unwrap();
    store.close().await.unwrap();
    // Record boundaries: walk the framing.
    let mut starts = Vec::new();
    let mut at = 16usize;
    while at < full.len() {
        starts.push(at);
        let len = u32::from_le_bytes(full[at..at + 4].try_into().unwrap()) as usize;
        at += 12 + len;
    }
    assert_eq!(starts.len(), events.len());
    for offset in (16..full.len()).step_by(7) {
        let position = starts.iter().rposition(|s| *s <= offset).unwrap() as u64;
        let mut bad = full.clone();
        bad[offset] ^= 0x40;
        std::fs::write(&seg, &bad).unwrap();
        let report = verify_dir(dir.path(), None).unwrap();
        let problem = report
            .problem
            .clone()
            .unwrap_or_else(|| panic!("flip at {offset} not found: {report:?}"));
        assert_eq!(problem.position, position, "flip at {offset}: {problem:?}");
        let err = FileStore::open(config(dir.path())).unwrap_err();
        match err {
            StoreError::Corrupt { position: p, .. } => assert_eq!(p, position),
            other => panic!("flip at {offset}: {other}"),
        }
    }
    std::fs::write(&seg, &full).unwrap();
    assert!(verify_dir(dir.path(), None).unwrap().intact());
}

#[tokio::test]
async fn a_rewritten_record_with_valid_checksums_is_caught_by_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(config(dir.path())).unwrap();
    fill(&store, 5).await;
    store.close().await.unwrap();
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    // Re-frame record 0 with one payload byte changed and fresh checksums.
    let len = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    let mut payload = bytes[28..28 + len].to_vec();
    let last = payload.len() - 1;
    payload[last] ^= 1;
    let mut framed = Vec::new();
    ledger_store::record::encode_frame(&mut framed, &payload);
    bytes[16..28 + len].copy_from_slice(&framed);
    std::fs::write(&seg, &bytes).unwrap();
    let report = verify_dir(dir.path(), None).unwrap();
    let problem = report.problem.unwrap();
    assert!(
        problem
            .reason
            .contains("differs from the signed checkpoint"),
        "{problem:?}"
    );
    let err = FileStore::open(config(dir.path())).unwrap_err();
    assert!(err.to_string().contains("history was altered"), "{err}");
}

#[tokio::test]
async fn a_removed_tail_below_a_checkpoint_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(config(dir.path())).unwrap();
    fill(&store, 5).await;
    store.close().await.unwrap();
    let seg = segment_files(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&seg).unwrap();
    let len = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    // Keep only the first append (2 records would be more; keep 1 whole append = 2 records).
    let second = 16 + 12 + len;
    let len2 = u32::from_le_bytes(bytes[second..second + 4].try_into().unwrap()) as usize;
    std::fs::write(&seg, &bytes[..second + 12 + len2]).unwrap();
    let err = FileStore::open(config(dir.path())).unwrap_err();
    assert!(
        err.to_string().contains("acknowledged events are missing"),
        "{err}"
    );
    assert!(!verify_dir(dir.path(), None).unwrap().intact());
}

#[tokio::test]
async fn segments_roll_over_and_read_across() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.segment_bytes_max = 4096;
    let store = FileStore::open(cfg).unwrap();
    fill(&store, 60).await;
    let all = store.read_all(0, 1000).await.unwrap();
    assert_eq!(all.len(), 120);
    store.close().await.unwrap();
    assert!(segment_files(dir.path()).len() > 3);
    let mut cfg = config(dir.path());
    cfg.segment_bytes_max = 4096;
    let store = FileStore::open(cfg).unwrap();
    assert_eq!(store.read_all(0, 1000).await.unwrap(), all);
    fill(&store, 5).await;
    store.close().await.unwrap();
    let report = verify_dir(dir.path(), None).unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.events, 130);
}

#[tokio::test]
async fn idempotency_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(config(dir.path())).unwrap();
    let e = event("A", b"x");
    let first = store
        .append(vec![to("s", ExpectedVersion::NoStream, vec![e.clone()])])
        .await
        .unwrap();
    store.close().await.unwrap();
    let store = FileStore::open(config(dir.path())).unwrap();
    let again = store
        .append(vec![to("s", ExpectedVersion::NoStream, vec![e])])
        .await
        .unwrap();
    assert!(again.already_recorded);
    assert_eq!(again.events, first.events);
    store.close().await.unwrap();
}

#[tokio::test]
async fn verify_with_another_key_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(config(dir.path())).unwrap();
    fill(&store, 2).await;
    store.close().await.unwrap();
    let other = LedgerKey::from_secret([9; 32]).public();
    let report = verify_dir(dir.path(), Some(other)).unwrap();
    assert!(!report.intact());
}

/// Copies the files of data folder `from` (all but its lock) into `to`.
fn copy_data(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if path.is_dir() {
            copy_data(&path, &to.join(name));
        } else if name != "LOCK" {
            std::fs::copy(&path, to.join(name)).unwrap();
        }
    }
}

/// Where the records of a segment start, walking its framing.
fn record_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 16usize;
    while at < bytes.len() {
        starts.push(at);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 12 + len;
    }
    assert_eq!(at, bytes.len());
    starts
}

#[tokio::test]
async fn a_last_write_whose_payload_reads_as_zeros_from_a_sector_boundary_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let small_segments = |dir: &Path| {
        let mut cfg = config(dir);
        cfg.segment_bytes_max = 8192;
        cfg.checkpoint_interval = std::time::Duration::from_secs(3600);
        cfg
    };
    let store = FileStore::open(small_segments(dir.path())).unwrap();
    fill(&store, 40).await;
    store.checkpoint_now().await.unwrap();
    let acknowledged = store.read_all(0, 1000).await.unwrap();
    assert_eq!(acknowledged.len(), 80);
    // The last write: one append of two events, each over several sectors, acknowledged
    // (so durable) here; below it is cut back to what a power cut during its write can leave.
    let big: Vec<u8> = (0..3000).map(|i| 1 + (i % 250) as u8).collect();
    store
        .append(vec![
            to(
                "movement-x",
                ExpectedVersion::Any,
                vec![event("Moved", &big)],
            ),
            to(
                "guarantee-x",
                ExpectedVersion::Any,
                vec![event("Reserved", &big)],
            ),
        ])
        .await
        .unwrap();
    let seg = segment_files(dir.path()).pop().unwrap();
    assert!(segment_files(dir.path()).len() > 2);
    let full = std::fs::read(&seg).unwrap();
    let starts = record_starts(&full);
    let [.., append_start, last_start] = starts[..] else {
        panic!("the last segment holds the last append: {starts:?}")
    };
    // Sector-aligned file offsets inside the payloads of the append's two records: zeros from
    // the second one's (its header is intact) or from the first one's (the second is all zero).
    let aligned_in_payload = |start: usize, end: usize| {
        (start + 12..end)
            .filter(|p| p % 512 == 0)
            .collect::<Vec<_>>()
    };
    let mut points = aligned_in_payload(last_start, full.len());
    points.extend(aligned_in_payload(append_start, last_start));
    assert!(points.len() >= 8, "{points:?}");
    let scratch = tempfile::tempdir().unwrap();
    let copy = scratch.path().join("copy");
    for p in points {
        copy_data(dir.path(), &copy);
        let torn_seg = copy.join(LOG_DIR).join(seg.file_name().unwrap());
        let mut torn = full[..p].to_vec();
        torn.resize(full.len(), 0);
        std::fs::write(&torn_seg, &torn).unwrap();
        // `verify` notes the torn tail without calling it damage, and agrees with the open.
        let report = verify_dir(&copy, None).unwrap();
        assert!(report.intact(), "zeros from {p}: {report:?}");
        assert!(report.torn_tail.is_some(), "zeros from {p}: {report:?}");
        assert_eq!(report.events, 80);
        let store = FileStore::open(small_segments(&copy)).unwrap();
        assert_eq!(store.head(), 80, "zeros from {p}");
        assert_eq!(
            store.open_report().torn_bytes_cut,
            (full.len() - append_start) as u64,
            "zeros from {p}: the whole append is cut"
        );
        assert_eq!(store.read_all(0, 1000).await.unwrap(), acknowledged);
        assert_eq!(
            std::fs::metadata(&torn_seg).unwrap().len(),
            append_start as u64
        );
        // The log goes on from a clean end.
        fill(&store, 1).await;
        store.close().await.unwrap();
        let report = verify_dir(&copy, None).unwrap();
        assert!(report.intact() && report.torn_tail.is_none(), "{report:?}");
        assert_eq!(report.events, 82);
        std::fs::remove_dir_all(&copy).unwrap();
    }
    // Once a signed checkpoint covers the append it was acknowledged for certain: the same
    // zeros are then acknowledged events gone missing, and the open refuses.
    store.checkpoint_now().await.unwrap();
    copy_data(dir.path(), &copy);
    let torn_seg = copy.join(LOG_DIR).join(seg.file_name().unwrap());
    let p = aligned_in_payload(last_start, full.len())[0];
    let mut torn = full[..p].to_vec();
    torn.resize(full.len(), 0);
    std::fs::write(&torn_seg, &torn).unwrap();
    let err = FileStore::open(small_segments(&copy)).unwrap_err();
    assert!(
        err.to_string().contains("acknowledged events are missing"),
        "{err}"
    );
    assert!(!verify_dir(&copy, None).unwrap().intact());
    store.close().await.unwrap();
}
