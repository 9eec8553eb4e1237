//! Signed submissions at the command line: `keys generate` (a key pair for a national system),
//! `sign` (the `Transit-Signature` value of a message file), `canonical` (the exact bytes a
//! signature covers), loading the key registry for `serve`, and the offline re-check of every
//! recorded submission's signature that `verify` runs once the records themselves check out.
//! The rules live in `transit_auth`; this module only reads and writes files.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use clap::{Args, Subcommand};
use ledger_store::record::{decode_payload, Frame, RecordFields, SegmentScanner};
use transit_auth::{
    KeyEntry, KeyId, KeyRegistry, SecretKeyFile, SubmissionSignature, KEY_FILE_BYTES_MAX,
    REGISTRY_BYTES_MAX,
};
use transit_contract::events::{EventMeta, GuaranteeEvent, MovementEvent};
use transit_contract::ids::{CountryCode, OfficeCode, Timestamp};
use transit_contract::messages::InboundMessage;

use crate::ledger::{decode_message, RecordedSubmission, MESSAGE_BYTES_MAX};

/// The development key registry, relative to the repository root: `serve`'s default, so that
/// `cargo run -p transit-ledger -- serve` from the root runs with the development keys.
pub const DEV_REGISTRY_PATH: &str = "ops/keys/registry.toml";

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new Ed25519 key pair: writes the secret key file (mode 0600, never overwritten)
    /// and prints the `[[key]]` entry to add to the ledger's key registry.
    Generate(KeysGenerateArgs),
}

/// `keys generate` flags.
#[derive(Debug, Args)]
pub struct KeysGenerateArgs {
    /// The key's id in the registry: 1 to 64 of `A-Z a-z 0-9 . _ : -`, e.g. `tg-asycuda-1`.
    #[arg(long)]
    pub id: String,
    /// The country the key signs for (ISO 3166-1 alpha-2): the messages' `sender.country`.
    #[arg(long)]
    pub country: CountryCode,
    /// Restrict the key to these sender offices (repeat the flag or separate with commas);
    /// without, it signs for every office of the country.
    #[arg(long = "office", value_delimiter = ',')]
    pub offices: Vec<OfficeCode>,
    /// The secret key file to write; default `<ID>.key` in the current folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// First instant the key is valid (RFC 3339); default now.
    #[arg(long)]
    pub not_before: Option<String>,
    /// First instant the key is no longer valid (RFC 3339); default never.
    #[arg(long)]
    pub not_after: Option<String>,
    /// A comment for the registry entry (who holds the key).
    #[arg(long)]
    pub comment: Option<String>,
}

/// `sign` flags.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The secret key file (from `keys generate`).
    #[arg(long)]
    pub key: PathBuf,
    /// The message file: JSON or XML, told apart by its first character.
    pub message: PathBuf,
}

/// `canonical` flags.
#[derive(Debug, Args)]
pub struct CanonicalArgs {
    /// The message file: JSON or XML, told apart by its first character.
    pub message: PathBuf,
}

/// Reads at most `max + 1` bytes of a file, so a size check never reads a huge file whole.
fn read_bounded(path: &Path, max: usize) -> anyhow::Result<Vec<u8>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(bytes)
}

/// Reads and checks a key registry file.
pub fn load_registry(path: &Path) -> anyhow::Result<KeyRegistry> {
    let bytes = read_bounded(path, REGISTRY_BYTES_MAX)
        .with_context(|| format!("key registry {}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow!("key registry {}: not UTF-8 text", path.display()))?;
    KeyRegistry::from_toml_str(&text)
        .with_context(|| format!("key registry {} refused", path.display()))
}

/// [`load_registry`] for `serve`, saying how to get one when the file is missing.
pub fn load_registry_for_serve(path: &Path) -> anyhow::Result<KeyRegistry> {
    if !path.exists() {
        bail!(
            "key registry {} not found: the ledger only records submissions signed by a key \
             listed there. Run from the repository root to use the development registry \
             ({DEV_REGISTRY_PATH}), or pass --key-registry PATH (or set \
             TRANSIT_LEDGER_KEY_REGISTRY). To make a key and its registry entry: \
             `transit-ledger keys generate --id ID --country CC`; see ops/keys/README.md",
            path.display()
        );
    }
    load_registry(path)
}

fn now() -> anyhow::Result<Timestamp> {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_millis();
    // Whole seconds: the registry entry reads better, and the key is valid from then on.
    let seconds = i64::try_from(millis / 1000).context("the system clock is out of range")?;
    Timestamp::from_unix_millis(seconds * 1000).map_err(|e| anyhow!("the system clock: {e}"))
}

fn parse_time(flag: &str, text: &str) -> anyhow::Result<Timestamp> {
    text.parse()
        .map_err(|e| anyhow!("--{flag} {text:?} is not an RFC 3339 date-time: {e}"))
}

/// `transit-ledger keys generate`.
pub fn generate(args: KeysGenerateArgs) -> anyhow::Result<()> {
    let key_id: KeyId = args
        .id
        .parse()
        .map_err(|e| anyhow!("--id {:?}: {e}", args.id))?;
    let not_before = match &args.not_before {
        Some(text) => parse_time("not-before", text)?,
        None => now()?,
    };
    let not_after = match &args.not_after {
        Some(text) => Some(parse_time("not-after", text)?),
        None => None,
    };
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)
        .map_err(|e| anyhow!("no randomness from the operating system: {e}"))?;
    let (signing_key, public_key) = transit_auth::generate_keypair(seed);
    let entry = KeyEntry {
        id: key_id.clone(),
        country: args.country,
        offices: (!args.offices.is_empty()).then_some(args.offices),
        public_key,
        not_before,
        not_after,
        revoked_at: None,
        comment: args.comment.unwrap_or_default(),
    };
    // The same checks the registry will make, before a secret is written for nothing.
    entry.validate()?;
    let secret = SecretKeyFile {
        key_id,
        signing_key,
    };
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}.key", secret.key_id)));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&out)
        .with_context(|| {
            format!(
                "cannot create {} (an existing key file is never overwritten)",
                out.display()
            )
        })?;
    file.write_all(secret.to_toml().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "secret key written to {} (mode 0600): keep it with the national system only.\n\
         Send this entry to the ledger's operator for the key registry:\n",
        out.display()
    );
    print!("{}", entry.to_toml());
    Ok(())
}

/// Reads a message file, JSON or XML by its first character (after a byte order mark and
/// white space), through the ledger's own parsers and limits.
pub fn read_message_file(path: &Path) -> anyhow::Result<InboundMessage> {
    let bytes = read_bounded(path, MESSAGE_BYTES_MAX)?;
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let content_type = match text.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => "application/json",
        Some(b'<') => "application/xml",
        _ => bail!(
            "{}: neither JSON (starting with '{{') nor XML (starting with '<')",
            path.display()
        ),
    };
    decode_message(content_type, &bytes).with_context(|| format!("{}", path.display()))
}

/// `transit-ledger sign`.
pub fn sign(args: SignArgs) -> anyhow::Result<()> {
    let bytes = read_bounded(&args.key, KEY_FILE_BYTES_MAX)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow!("{}: not a key file (not UTF-8)", args.key.display()))?;
    let key = SecretKeyFile::from_toml_str(&text)
        .with_context(|| format!("key file {}", args.key.display()))?;
    let message = read_message_file(&args.message)?;
    let signature = transit_auth::sign(&key.signing_key, key.key_id.clone(), &message);
    println!("{signature}");
    Ok(())
}

/// `transit-ledger canonical`.
pub fn canonical(args: CanonicalArgs) -> anyhow::Result<()> {
    let message = read_message_file(&args.message)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&transit_auth::signing_bytes(&message))?;
    out.flush()?;
    Ok(())
}

/// What the offline re-check of recorded submissions found.
#[derive(Debug, Default)]
pub struct SubmissionAudit {
    /// Events holding a submission (the first event of each append).
    pub submissions: u64,
    /// Of those, submissions recorded with a signature, each of which verified.
    pub signed: u64,
    /// Submissions recorded by a ledger that ran without a key registry.
    pub unsigned: u64,
    /// The first submission that does not check out.
    pub problem: Option<SubmissionProblem>,
}

/// A recorded submission that does not check out.
#[derive(Debug)]
pub struct SubmissionProblem {
    /// The event's global position.
    pub position: u64,
    /// Its stream.
    pub stream: String,
    /// Its version in the stream.
    pub version: u64,
    /// What is wrong.
    pub reason: String,
}

/// Re-checks every submission recorded in the first `events` records of the data folder `dir`,
/// read offline and in place (no lock, nothing written, so also on a live folder or a copy
/// without the ledger's secret key): the recorded bytes parse again, their content digest is
/// the recorded one and the event's `messageDigest`, and the recorded signature verifies with
/// the recorded public key. With a registry, also that the key is registered with that public
/// key and was allowed to sign for the sender when the event was recorded (its `recordedAt`).
/// `events` is the count `ledger_store::verify::verify_dir` found intact; records are read with
/// the store's own scanner.
pub fn audit_submissions(
    dir: &Path,
    events: u64,
    registry: Option<&KeyRegistry>,
) -> anyhow::Result<SubmissionAudit> {
    let mut audit = SubmissionAudit::default();
    let log_dir = dir.join(ledger_store::file::LOG_DIR);
    let mut segments: Vec<PathBuf> = match std::fs::read_dir(&log_dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect(),
        Err(_) if events == 0 => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", log_dir.display())),
    };
    // Named by their first position, zero-padded: name order is log order.
    segments.sort();
    let mut read = 0u64;
    for path in segments {
        if read == events {
            break;
        }
        let (mut scanner, first) = SegmentScanner::open(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        first.map_err(|e| anyhow!("{}: {e}", path.display()))?;
        while read < events {
            let Frame::Record { payload, .. } = scanner
                .next_frame()
                .with_context(|| format!("cannot read {}", path.display()))?
            else {
                break;
            };
            let fields = decode_payload(&payload)
                .map_err(|e| anyhow!("{} at record {read}: {e}", path.display()))?;
            read += 1;
            if let Err(reason) = check_record(&fields, registry, &mut audit) {
                audit.problem = Some(SubmissionProblem {
                    position: fields.position,
                    stream: fields.stream.to_owned(),
                    version: fields.version,
                    reason,
                });
                return Ok(audit);
            }
        }
    }
    if read < events {
        bail!("only {read} of {events} events could be read again: did the log change meanwhile?");
    }
    Ok(audit)
}

/// The event's meta (`recordedAt`, `messageDigest`), decoded as the service decodes it.
fn event_meta(fields: &RecordFields<'_>) -> Result<EventMeta, String> {
    let decoded = if fields.stream.starts_with("movement-") {
        MovementEvent::decode(fields.event_type, fields.schema_version, fields.data).map(|d| d.0)
    } else if fields.stream.starts_with("guarantee-") {
        GuaranteeEvent::decode(fields.event_type, fields.schema_version, fields.data).map(|d| d.0)
    } else {
        return Err(format!(
            "stream {} is neither a movement's nor a guarantee's",
            fields.stream
        ));
    };
    decoded.map_err(|e| format!("the event does not decode: {e}"))
}

fn check_record(
    fields: &RecordFields<'_>,
    registry: Option<&KeyRegistry>,
    audit: &mut SubmissionAudit,
) -> Result<(), String> {
    let Some(recorded) = RecordedSubmission::from_metadata(fields.metadata)? else {
        return Ok(());
    };
    audit.submissions += 1;
    let checked = recorded.check()?;
    let meta = event_meta(fields)?;
    if meta.message_digest != recorded.sha256 {
        return Err(format!(
            "the event was recorded for content {}, but the submission kept with it is {}",
            meta.message_digest, recorded.sha256
        ));
    }
    let Some((signature, public_key)) = checked.signature else {
        audit.unsigned += 1;
        return Ok(());
    };
    audit.signed += 1;
    if let Some(registry) = registry {
        check_registered(
            registry,
            &checked.message,
            &signature,
            &public_key,
            meta.recorded_at,
        )?;
    }
    Ok(())
}

/// Whether the registry agrees that this key could sign this message at `recorded_at`.
fn check_registered(
    registry: &KeyRegistry,
    message: &InboundMessage,
    signature: &SubmissionSignature,
    public_key: &[u8; 32],
    recorded_at: Timestamp,
) -> Result<(), String> {
    let entry = registry
        .get(&signature.key_id)
        .ok_or_else(|| format!("key {} is not in the given key registry", signature.key_id))?;
    if entry.public_key.as_bytes() != public_key {
        return Err(format!(
            "key {}'s public key in the registry is not the one recorded with the submission",
            signature.key_id
        ));
    }
    registry
        .verify(message, signature, recorded_at)
        .map(|_| ())
        .map_err(|e| format!("{}: {}", e.as_str(), e.reason()))
}
