//! The binary as an operator runs it: `serve` with its defaults, a clean stop on SIGTERM that
//! signs a last checkpoint, and `verify` naming the first bad position of a damaged folder.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use transit_contract::fixtures;
use transit_contract::ids::Timestamp;

const BIN: &str = env!("CARGO_BIN_EXE_transit-ledger");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn verify(dir: &std::path::Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["verify", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_then_sigterm_then_verify_then_damage() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // No flags but where to listen: the data folder defaults to ./data under the cwd.
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "service did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Anonymous reads of health are fine; here, the journey goes in over HTTP.
    let now = Timestamp::from_unix_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            - 3_600_000,
    )
    .unwrap();
    for m in fixtures::journey(now, 7).messages() {
        let r = client
            .post(format!("{base}/v1/messages"))
            .json(&m)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    // SIGTERM: graceful stop, last checkpoint signed.
    let pid = child.id();
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let data = dir.path().join("data");
    let (code, out) = verify(&data);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("INTACT"), "{out}");
    assert!(out.contains("the last covers 11 events"), "{out}");
    // Flip one byte in the middle of the log: verify names the position and fails.
    let seg = std::fs::read_dir(data.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let (code, out) = verify(&data);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DAMAGED at position"), "{out}");
}
