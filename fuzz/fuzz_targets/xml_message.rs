//! Bytes -> `transit_xml::decode_inbound` (and `decode_outbound`): the hostile-input reader
//! must never panic, and whatever decodes must round-trip exactly (`transit_fuzz::check_from_xml`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = transit_xml::decode_inbound(data) {
        transit_fuzz::check_from_xml(&msg);
    }
    // The same reader under the outbound message set (what offices receive from the ledger).
    transit_fuzz::check_outbound_xml(data);
});
