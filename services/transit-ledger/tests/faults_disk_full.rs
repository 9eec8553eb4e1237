//! Disk full (fault profile, `ops/faults.sh`): the real binary `serve` with its data folder on
//! a small file system of its own — a loop-mounted ext4 image (journal, fsync, block
//! allocation as in production), or a size-limited tmpfs where loop devices are not available.
//! Mounting needs root (CI runs as root); without it the test says so and skips.
//!
//! A ballast file leaves only `FAULT_DISK_HEADROOM_KB` (default 192) free, then simulated
//! traffic goes in until appends are refused. Checked: a refusal is `507 STORAGE_FULL` with no
//! internals (never a 500), reads are still served, `verify` finds the folder intact while it
//! is full; once the ballast is removed the same service records again without a restart.
//! Then the disk is filled again and the service killed with SIGKILL while full: it restarts
//! on the full disk (serving reads, refusing appends with 507) and records again once there is
//! room. At the end every acknowledged message is recorded exactly once, `verify` passes, and
//! the views equal a rebuild. `FAULT_DISK_MB` (default 16) sizes the file system,
//! `FAULT_MOVEMENTS_DISK` (default 120) the traffic, `FAULT_SEED` the simulation.
#![allow(clippy::unwrap_used)]

mod common;
mod faults;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faults::{assert_exactly_once, assert_intact, env_u64, Service, Traffic};

/// A size-limited file system mounted for the test, unmounted when dropped.
struct SmallDisk {
    mount: PathBuf,
    kind: &'static str,
}

impl SmallDisk {
    /// A loop-mounted ext4 image of `mb` MiB, else a tmpfs of that size; the reason when
    /// neither can be mounted.
    fn mount(dir: &Path, mb: u64) -> Result<SmallDisk, String> {
        let mount = dir.join("mnt");
        std::fs::create_dir_all(&mount).unwrap();
        let image = dir.join("disk.ext4");
        let run = |cmd: &mut Command| -> Result<(), String> {
            let out = cmd.output().map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
            }
        };
        let ext4 = std::fs::File::create(&image)
            .and_then(|f| f.set_len(mb << 20))
            .map_err(|e| e.to_string())
            .and_then(|()| {
                // No blocks reserved for root: the service runs as root in CI.
                run(Command::new("mkfs.ext4")
                    .args(["-q", "-F", "-m", "0"])
                    .arg(&image))
            })
            .and_then(|()| {
                run(Command::new("mount")
                    .args(["-o", "loop"])
                    .arg(&image)
                    .arg(&mount))
            });
        match ext4 {
            Ok(()) => Ok(SmallDisk {
                mount,
                kind: "ext4 on a loop device",
            }),
            Err(ext4_error) => {
                let _ = std::fs::remove_file(&image);
                run(Command::new("mount")
                    .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
                    .arg(&mount))
                .map(|()| SmallDisk {
                    mount,
                    kind: "tmpfs",
                })
                .map_err(|tmpfs_error| {
                    format!("loop-mounted ext4: {ext4_error}; tmpfs: {tmpfs_error}")
                })
            }
        }
    }

    /// Fills the file system with a ballast file, leaving `headroom` bytes free.
    fn fill(&self, headroom: u64) -> PathBuf {
        let path = self.mount.join("ballast");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xA5_u8; 64 * 1024];
        let mut len = 0_u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => len += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("ballast: {e}"),
            }
        }
        // Written blocks may still be in the page cache: make the fill real before cutting
        // the headroom back off.
        let _ = file.sync_all();
        file.set_len(len.saturating_sub(headroom)).unwrap();
        file.sync_all().unwrap();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        for _ in 0..20 {
            let ok = Command::new("umount")
                .arg(&self.mount)
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// Posts messages not yet acknowledged, one by one, until one is refused for lack of space;
/// asserts that refusal is a clean 507 STORAGE_FULL. Returns how many went in (were
/// acknowledged) first; messages answered 4xx (their movement not known yet) are not counted:
/// they stay pending, so a later call sends them again before reaching the disk.
async fn expect_storage_full(traffic: &Traffic, base: &str) -> usize {
    let mut went_in = 0;
    let pending: Vec<usize> = {
        let book = traffic.book.lock();
        (0..traffic.messages.len())
            .filter(|n| !book.acked[*n] && !book.refused_messages[*n])
            .collect()
    };
    let client = reqwest::Client::new();
    for n in pending {
        let m = &traffic.messages[n];
        let r = client
            .post(format!("{base}/v1/messages"))
            .bearer_auth(common::national_token(&m.country))
            .header("content-type", "application/json")
            .header(transit_auth::HTTP_HEADER, m.signature.as_str())
            .body(m.body.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap();
        match status {
            200 | 201 => {
                traffic.book.lock().acked[n] = true;
                went_in += 1;
            }
            // The order of the traffic is not kept here, so a message may find its movement
            // unknown: a definitive answer that says nothing about space.
            400..=499 => {}
            507 => {
                assert_eq!(body["error"]["code"], "STORAGE_FULL", "{body}");
                let message = body["error"]["message"].as_str().unwrap();
                assert!(
                    !message.contains("os error") && !message.contains('/'),
                    "internals leaked: {message}"
                );
                return went_in;
            }
            _ => panic!("a full disk answered {status}: {body}"),
        }
    }
    panic!("the disk never filled up: make FAULT_DISK_HEADROOM_KB smaller");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_cleanly_corrupts_nothing_and_recovers() {
    let started = Instant::now();
    let mb = env_u64("FAULT_DISK_MB", 16);
    let headroom = env_u64("FAULT_DISK_HEADROOM_KB", 192) * 1024;
    let movements = env_u64("FAULT_MOVEMENTS_DISK", 120);
    let seed = faults::seed("FAULT_SEED");
    let dir = tempfile::tempdir().unwrap();
    let disk = match SmallDisk::mount(dir.path(), mb) {
        Ok(disk) => disk,
        Err(reason) => {
            eprintln!(
                "SKIPPED disk-full test: cannot mount a size-limited file system (run as root): {reason}"
            );
            return;
        }
    };
    eprintln!("disk full: {mb} MiB {}", disk.kind);
    let data = disk.mount.join("data");
    let log = dir.path().join("serve.log");
    let traffic = Arc::new(Traffic::new(&faults::simulate(
        seed % 10_000,
        movements,
        &dir.path().join("sim"),
    )));
    let second = Arc::new(Traffic::new(&faults::simulate(
        seed % 10_000 + 10_000,
        movements / 4,
        &dir.path().join("sim2"),
    )));
    let client = reqwest::Client::new();
    let service = Service::start(&data, &log, &["--snapshot-every-events", "100"]).await;
    // Some traffic with room to spare, then the disk nearly full.
    let first = traffic.messages.len() / 4;
    for n in 0..first {
        let _ = traffic.post(&service.base, n).await;
    }
    let ballast = disk.fill(headroom);
    let went_in = expect_storage_full(&traffic, &service.base).await;
    eprintln!("disk full: {went_in} more messages went in before a 507 STORAGE_FULL");
    // Full: more submissions are refused the same way, reads are served, nothing is damaged.
    // Not necessarily at once: a views snapshot that failed for lack of space deletes its
    // temporary file, and the space it gives back can take a few more messages (seen: 58 with
    // FAULT_SEED=761967489; none with snapshots off). Each is acknowledged only once durable,
    // which the exactly-once check at the end holds to.
    for round in 0..3 {
        let went_in = expect_storage_full(&traffic, &service.base).await;
        eprintln!("disk full: round {round}: {went_in} went in before the next 507");
    }
    let r = client
        .get(format!("{}/v1/events?from=0&limit=10", service.base))
        .bearer_auth(common::auditor_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_intact(&data, "while full");
    // Room again: the same service records without a restart.
    std::fs::remove_file(&ballast).unwrap();
    assert!(
        traffic.send(&service.base, 4).await,
        "the service did not recover once space returned"
    );
    eprintln!(
        "disk full: recovered without a restart; {} acknowledged",
        traffic.acked_count()
    );
    // Full again (other traffic), and killed while full: it restarts on the full disk.
    let ballast = disk.fill(headroom);
    expect_storage_full(&second, &service.base).await;
    service.kill();
    assert_intact(&data, "killed while full");
    let service = Service::start(&data, &log, &["--snapshot-every-events", "100"]).await;
    let r = client
        .get(format!("{}/v1/events?from=0&limit=10", service.base))
        .bearer_auth(common::auditor_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "reads are served on a full disk");
    expect_storage_full(&second, &service.base).await;
    std::fs::remove_file(&ballast).unwrap();
    assert!(
        second.send(&service.base, 4).await,
        "the restarted service did not record once space returned"
    );
    let head = {
        let r = client
            .get(format!("{}/v1/events?from=0&limit=1", service.base))
            .bearer_auth(common::auditor_token())
            .send()
            .await
            .unwrap();
        r.json::<serde_json::Value>().await.unwrap()["head"]
            .as_u64()
            .unwrap()
    };
    let served = service.view_hashes_at(&client, head).await;
    service.terminate();
    assert_intact(&data, "at the end");
    assert_eq!(faults::replay(&data), served, "views != rebuild");
    let (recorded, _) = faults::recorded_messages(&data).await;
    let mut acked = traffic.acked_ids();
    acked.extend(second.acked_ids());
    assert_exactly_once(&recorded, &acked);
    assert_eq!(recorded.len(), acked.len(), "only acknowledged messages");
    eprintln!(
        "disk full: {} messages acknowledged and recorded once ({head} events); {:.1} s",
        acked.len(),
        started.elapsed().as_secs_f64()
    );
    drop(disk);
}
