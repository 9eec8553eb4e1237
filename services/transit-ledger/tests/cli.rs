//! The binary as an operator and an integrator run it: `serve` with its defaults (refusing to
//! start without a key registry), a clean stop on SIGTERM that signs a last checkpoint, and
//! `verify` naming the first bad position of a damaged folder or of a recorded submission whose
//! signature no longer matches; `keys generate`, `sign` and `canonical` as a national system's
//! integrator uses them against a served ledger.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{dev_key, dev_registry, dev_registry_path, dev_signature, signature_by};
use ledger_store::file::{FileStore, FileStoreConfig};
use ledger_store::{
    Clock, EventId, EventStore, ExpectedVersion, ManualClock, NewEvent, StreamAppend, StreamId,
};
use transit_contract::events::guarantee_stream;
use transit_contract::fixtures;
use transit_contract::ids::Timestamp;
use transit_ledger::ledger::{Ledger, RecordedSignature, RecordedSubmission};

const BIN: &str = env!("CARGO_BIN_EXE_transit-ledger");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn verify(dir: &Path) -> (i32, String) {
    verify_with(dir, &[])
}

fn verify_with(dir: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["verify", "--data-dir"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Runs the binary to completion; its exit code, stdout (bytes) and stderr.
fn run(args: &[&str], cwd: &Path) -> (i32, Vec<u8>, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("TRANSIT_LEDGER_KEY_REGISTRY")
        .env_remove("TRANSIT_LEDGER_AUTH_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A bearer token from `transit-ledger token` run at the repository root with its defaults
/// (the development issuer), as the README tells a newcomer to get one.
fn cli_token(args: &[&str]) -> String {
    let mut all = vec!["token"];
    all.extend_from_slice(args);
    let (code, out, err) = run(&all, &common::repo_root());
    assert_eq!(code, 0, "{err}");
    String::from_utf8(out).unwrap().trim().to_owned()
}

/// The development auth configuration, `ops/auth/issuers.toml`.
fn dev_auth_config() -> std::path::PathBuf {
    common::repo_root().join(transit_ledger::auth::DEV_ISSUERS_PATH)
}

/// Waits until the service on `port` answers its health check.
async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "service did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops a served child with SIGTERM and waits for its clean exit.
fn terminate(mut child: std::process::Child) {
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}

/// An hour ago, as the fixtures' base time for a ledger on the system clock.
fn an_hour_ago() -> Timestamp {
    Timestamp::from_unix_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            - 3_600_000,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_then_sigterm_then_verify_then_damage() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // No flags but where to listen and the key registry (the default, ops/keys/registry.toml,
    // is relative to the repository root): the data folder defaults to ./data under the cwd.
    let child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("TRANSIT_LEDGER_KEY_REGISTRY", dev_registry_path())
        .env("TRANSIT_LEDGER_AUTH_CONFIG", dev_auth_config())
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&client, &base).await;
    // Health is anonymous (wait_healthy); nothing else is.
    let journey = fixtures::journey(an_hour_ago(), 7);
    let r = client
        .post(format!("{base}/v1/messages"))
        .header(
            "Transit-Signature",
            dev_signature(&journey.guarantee_registration),
        )
        .json(&journey.guarantee_registration)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    // With the national systems' tokens from `transit-ledger token`, the journey goes in over
    // HTTP, signed: each message by the country that sends it.
    let tokens: std::collections::HashMap<String, String> = ["TG", "BF"]
        .iter()
        .map(|c| {
            let token = cli_token(&["--role", "national_system", "--country", c]);
            (c.to_string(), token)
        })
        .collect();
    for m in journey.messages() {
        let r = client
            .post(format!("{base}/v1/messages"))
            .bearer_auth(&tokens[m.sender.country.as_str()])
            .header("Transit-Signature", dev_signature(&m))
            .json(&m)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    // SIGTERM: graceful stop, last checkpoint signed.
    terminate(child);
    let data = dir.path().join("data");
    let (code, out) = verify(&data);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("INTACT"), "{out}");
    assert!(out.contains("the last covers 11 events"), "{out}");
    assert!(out.contains("8 checked: 8 signed, 0 unsigned"), "{out}");
    let registry = dev_registry_path();
    let (code, out) = verify_with(&data, &["--key-registry", registry.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("INTACT"), "{out}");
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

/// Runs `serve` in an empty folder with `env` and expects it to refuse to start: its stderr.
fn serve_refusing_to_start(env: &[(&str, &Path)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("TRANSIT_LEDGER_KEY_REGISTRY")
        .env_remove("TRANSIT_LEDGER_AUTH_CONFIG")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("serve kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(!dir.path().join("data").exists(), "nothing was created");
    stderr
}

#[test]
fn serve_without_a_key_registry_refuses_to_start_and_says_how_to_make_one() {
    // Outside the repository the default registry (ops/keys/registry.toml) is not there.
    let stderr = serve_refusing_to_start(&[]);
    assert!(
        stderr.contains("key registry ops/keys/registry.toml not found"),
        "{stderr}"
    );
    assert!(stderr.contains("--key-registry"), "{stderr}");
    assert!(stderr.contains("transit-ledger keys generate"), "{stderr}");
}

#[test]
fn serve_without_token_issuers_refuses_to_start_and_says_where_they_are() {
    let registry = dev_registry_path();
    let stderr = serve_refusing_to_start(&[("TRANSIT_LEDGER_KEY_REGISTRY", &registry)]);
    assert!(
        stderr.contains("auth config ops/auth/issuers.toml not found"),
        "{stderr}"
    );
    assert!(stderr.contains("--auth-config"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integrator_generates_a_key_signs_a_file_and_the_ledger_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    // A new key for Togo's national system.
    let (code, entry, err) = run(
        &[
            "keys",
            "generate",
            "--id",
            "tg-asycuda-1",
            "--country",
            "TG",
            "--office",
            "TG000101",
            "--office",
            "TGCIN001",
            "--out",
            "tg-asycuda-1.key",
        ],
        cwd,
    );
    assert_eq!(code, 0, "{err}");
    let entry = String::from_utf8(entry).unwrap();
    assert!(err.contains("mode 0600"), "{err}");
    assert!(
        entry.starts_with("[[key]]\nid = \"tg-asycuda-1\"\ncountry = \"TG\"\n"),
        "{entry}"
    );
    assert!(
        entry.contains("offices = [\"TG000101\", \"TGCIN001\"]"),
        "{entry}"
    );
    let key_file = cwd.join("tg-asycuda-1.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the secret key file is private");
    // A key file is never overwritten.
    let (code, _, err) = run(
        &[
            "keys",
            "generate",
            "--id",
            "tg-asycuda-1",
            "--country",
            "TG",
            "--out",
            "tg-asycuda-1.key",
        ],
        cwd,
    );
    assert_ne!(code, 0);
    assert!(err.contains("never overwritten"), "{err}");
    // The operator puts the printed entry in the ledger's registry (only it, here).
    std::fs::write(cwd.join("registry.toml"), &entry).unwrap();
    let registry = transit_auth::KeyRegistry::from_toml_str(&entry).unwrap();
    let public_key = registry
        .get(&"tg-asycuda-1".parse().unwrap())
        .unwrap()
        .public_key;
    // The integrator's message files: XML, and JSON laid out by hand.
    let j = fixtures::journey(an_hour_ago(), 41);
    std::fs::write(
        cwd.join("registration.xml"),
        transit_xml::encode_inbound(&j.guarantee_registration),
    )
    .unwrap();
    std::fs::write(
        cwd.join("declaration.json"),
        serde_json::to_string_pretty(&j.declaration).unwrap(),
    )
    .unwrap();
    let sign = |file: &str| {
        let (code, out, err) = run(&["sign", "--key", "tg-asycuda-1.key", file], cwd);
        assert_eq!(code, 0, "{err}");
        String::from_utf8(out).unwrap().trim_end().to_owned()
    };
    let registration_signature = sign("registration.xml");
    let declaration_signature = sign("declaration.json");
    assert!(
        registration_signature.starts_with("keyId=tg-asycuda-1; alg=Ed25519; sig="),
        "{registration_signature}"
    );
    // The canonical bytes are what the signature covers, whatever the encoding.
    let (code, canonical, err) = run(&["canonical", "registration.xml"], cwd);
    assert_eq!(code, 0, "{err}");
    assert!(canonical.starts_with(b"transit-ledger/submission/v1\n{\"messageId\":"));
    assert!(!canonical.ends_with(b"\n"));
    std::fs::write(
        cwd.join("registration.json"),
        serde_json::to_vec(&j.guarantee_registration).unwrap(),
    )
    .unwrap();
    assert_eq!(run(&["canonical", "registration.json"], cwd).1, canonical);
    let parsed: transit_auth::SubmissionSignature = registration_signature.parse().unwrap();
    public_key
        .verify_strict(
            &canonical,
            &ed25519_dalek::Signature::from_bytes(&parsed.signature),
        )
        .unwrap();
    // A ledger served with that registry records both messages.
    let port = free_port();
    let child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--key-registry",
            "registry.toml",
            "--auth-config",
            dev_auth_config().to_str().unwrap(),
        ])
        .env_remove("TRANSIT_LEDGER_KEY_REGISTRY")
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&client, &base).await;
    let token = cli_token(&["--role", "national_system", "--country", "TG"]);
    let post = |file: &str, content_type: &str, signature: String| {
        let body = std::fs::read(cwd.join(file)).unwrap();
        client
            .post(format!("{base}/v1/messages"))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .header("Transit-Signature", signature)
            .body(body)
            .send()
    };
    let r = post(
        "registration.xml",
        "application/xml",
        registration_signature,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // A development key is nobody in this registry.
    let r = post(
        "declaration.json",
        "application/json",
        dev_signature(&j.declaration),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNKNOWN_KEY", "{body}");
    let r = post(
        "declaration.json",
        "application/json",
        declaration_signature,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    terminate(child);
    let registry = cwd.join("registry.toml");
    let (code, out) = verify_with(
        &cwd.join("data"),
        &["--key-registry", registry.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 checked: 2 signed, 0 unsigned"), "{out}");
}

/// Records `j`'s registration and declaration through a ledger checking signatures, in a data
/// folder of its own; returns the folder.
async fn recorded_journey(j: &fixtures::Journey, clock_ms: i64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(clock_ms));
    let mut config = FileStoreConfig::new(dir.path());
    config.clock = clock.clone();
    let store = Arc::new(FileStore::open(config).unwrap());
    let dyn_store: Arc<dyn EventStore> = store.clone();
    let clock: Arc<dyn Clock> = clock;
    let ledger = Ledger::with_registry(dyn_store, clock, dev_registry());
    let registration = serde_json::to_vec(&j.guarantee_registration).unwrap();
    ledger
        .submit_json_signed(
            &registration,
            Some(&dev_signature(&j.guarantee_registration)),
        )
        .await
        .unwrap();
    let declaration = transit_xml::encode_inbound(&j.declaration);
    ledger
        .submit_xml_signed(&declaration, Some(&dev_signature(&j.declaration)))
        .await
        .unwrap();
    drop(ledger);
    Arc::try_unwrap(store).ok().unwrap().close().await.unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_detects_an_event_whose_stored_submission_signature_no_longer_matches() {
    let base_ms = 1_780_000_000_000;
    let base = Timestamp::from_unix_millis(base_ms).unwrap();
    let j = fixtures::journey(base, 42);
    let dir = recorded_journey(&j, base_ms + 60_000).await;
    let (code, out) = verify(dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 checked: 2 signed, 0 unsigned"), "{out}");
    // A third submission is recorded (here: appended to the store directly, as a faulty or
    // dishonest writer could) with a signature that is valid, by a registered key, but over
    // another message: Togo's signature of a different registration.
    let forged = fixtures::journey(base, 43).guarantee_registration;
    let other = fixtures::journey(base, 44).guarantee_registration;
    let tg = dev_key("tg-dev-1");
    let stolen: transit_auth::SubmissionSignature = signature_by(&tg, &other).parse().unwrap();
    let raw = serde_json::to_vec(&forged).unwrap();
    let submission = RecordedSubmission {
        message_id: forged.message_id.to_string(),
        content_type: "application/json".to_owned(),
        sha256: hex::encode(forged.content_digest()),
        body: base64::engine::general_purpose::STANDARD.encode(&raw),
        signature: Some(RecordedSignature {
            key_id: "tg-dev-1".to_owned(),
            algorithm: "Ed25519".to_owned(),
            public_key: transit_auth::public_key_base64(&tg.verifying_key()),
            signature: stolen.signature_base64(),
        }),
    };
    let ctx = transit_rules::Context {
        recorded_at: Timestamp::from_unix_millis(base_ms + 120_000).unwrap(),
    };
    let guarantee = transit_rules::GuaranteeState::default();
    let decision = transit_rules::decide(
        &forged,
        &transit_rules::MovementState::default(),
        Some(&guarantee),
        &ctx,
    )
    .unwrap();
    let transit_rules::Decision::Append {
        guarantee: events,
        meta,
        ..
    } = decision
    else {
        panic!("a new registration is appended");
    };
    let store = FileStore::open(FileStoreConfig::new(dir.path())).unwrap();
    let position = store.head();
    let e = &events[0];
    store
        .append(vec![StreamAppend {
            stream: StreamId::new(guarantee_stream(forged.grn().unwrap())).unwrap(),
            expected: ExpectedVersion::NoStream,
            events: vec![NewEvent {
                event_id: EventId(uuid::Uuid::new_v4()),
                event_type: e.event_type().to_owned(),
                schema_version: e.schema_version(),
                data: e.encode(&meta),
                metadata: serde_json::to_vec(&serde_json::json!({ "submission": submission }))
                    .unwrap(),
            }],
        }])
        .await
        .unwrap();
    store.close().await.unwrap();
    // The records, the Merkle tree and the checkpoints are all intact: only the signature
    // check can tell.
    let (code, out) = verify(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("checkpoints:"), "{out}");
    assert!(
        out.contains(&format!(
            "BAD SUBMISSION at position {position} (guarantee-"
        )),
        "{out}"
    );
    assert!(out.contains("does not verify"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_with_a_registry_checks_the_key_was_registered_for_the_sender_then() {
    let base_ms = 1_780_000_000_000;
    let j = fixtures::journey(Timestamp::from_unix_millis(base_ms).unwrap(), 45);
    let dir = recorded_journey(&j, base_ms + 60_000).await;
    // A registry in which Togo's development key was only valid from later on: the records
    // are authentic, but the key was not allowed to sign when they were recorded.
    let text = std::fs::read_to_string(dev_registry_path())
        .unwrap()
        .replace(
            "not_before = \"2024-01-01T00:00:00Z\"",
            "not_before = \"2030-01-01T00:00:00Z\"",
        );
    let registry = dir.path().join("later.toml");
    std::fs::write(&registry, text).unwrap();
    let (code, out) = verify(dir.path());
    assert_eq!(code, 0, "{out}");
    let (code, out) = verify_with(dir.path(), &["--key-registry", registry.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BAD SUBMISSION at position 0"), "{out}");
    assert!(out.contains("KEY_NOT_YET_VALID"), "{out}");
}
