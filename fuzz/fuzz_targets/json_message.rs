//! Bytes -> `InboundMessage` through serde_json, as the HTTP API reads a JSON submission:
//! decoding must never panic, and whatever decodes must round-trip through JSON and, if
//! valid, through XML (`transit_fuzz::check_from_json`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use transit_contract::InboundMessage;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = serde_json::from_slice::<InboundMessage>(data) {
        transit_fuzz::check_from_json(&msg);
    }
});
