//! A child process for the crash loop: appends under concurrent load to a data folder and
//! prints one line per acknowledged append (`ack <pair> <movement-id> <guarantee-id>`), after
//! the store returned, so a line the parent has read is an acknowledged append. Runs until
//! killed.

use std::io::Write;
use std::sync::Arc;

use ledger_store::file::{FileStore, FileStoreConfig};
use ledger_store::{
    EventId, EventStore, ExpectedVersion, LedgerKey, NewEvent, StreamAppend, StreamId,
};
use uuid::Uuid;

fn event(event_type: &str, pair: Uuid, bytes: usize) -> NewEvent {
    let mut data = format!("{{\"pair\":\"{pair}\",\"pad\":\"").into_bytes();
    data.resize(bytes, b'x');
    data.extend_from_slice(b"\"}");
    NewEvent {
        event_id: EventId(Uuid::new_v4()),
        event_type: event_type.to_owned(),
        schema_version: 1,
        data,
        metadata: b"{}".to_vec(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: crash-appender DIR [TASKS]"))?;
    let tasks: usize = args.next().map(|t| t.parse()).transpose()?.unwrap_or(32);
    let mut config = FileStoreConfig::new(dir);
    config.key = Some(LedgerKey::from_secret([5; 32]));
    // Small segments so that crashes also land around segment rollover.
    config.segment_bytes_max = 256 * 1024;
    config.checkpoint_interval = std::time::Duration::from_millis(50);
    let store = Arc::new(FileStore::open(config)?);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(1024);
    for t in 0..tasks {
        let store = store.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let movement = StreamId::new(format!("movement-crash-{t}")).expect("valid name");
            let guarantee =
                StreamId::new(format!("guarantee-crash-{}", t % 4)).expect("valid name");
            loop {
                let pair = Uuid::new_v4();
                let m = event("TransitReleased", pair, 600);
                let g = event("GuaranteeExposureReserved", pair, 300);
                let (mid, gid) = (m.event_id, g.event_id);
                let appended = store
                    .append(vec![
                        StreamAppend {
                            stream: movement.clone(),
                            expected: ExpectedVersion::Any,
                            events: vec![m],
                        },
                        StreamAppend {
                            stream: guarantee.clone(),
                            expected: ExpectedVersion::Any,
                            events: vec![g],
                        },
                    ])
                    .await;
                match appended {
                    Ok(_) => {
                        if tx.send(format!("ack {pair} {mid} {gid}\n")).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        eprintln!("append failed: {e}");
                        return;
                    }
                }
            }
        });
    }
    drop(tx);
    let mut out = std::io::stdout().lock();
    while let Some(line) = rx.recv().await {
        out.write_all(line.as_bytes())?;
        out.flush()?;
    }
    Ok(())
}
