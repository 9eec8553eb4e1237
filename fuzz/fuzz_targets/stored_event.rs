//! Stored bytes -> `MovementEvent::decode` / `GuaranteeEvent::decode`, as a store reads an
//! event back (type name and schema version come from the record, the bytes are the
//! `{"meta", "data"}` JSON). Input layout: byte 0 picks the event type (or an unknown one),
//! byte 1 the schema version (0, current, or a future one), the rest is the stored JSON.
//! Decoding must never panic; what decodes has the requested type and re-encodes to bytes
//! that decode to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use transit_contract::{GuaranteeEvent, MovementEvent};

fuzz_target!(|data: &[u8]| {
    let [selector, version, stored @ ..] = data else {
        return;
    };
    let movement: Vec<&str> = MovementEvent::event_types().collect();
    let guarantee: Vec<&str> = GuaranteeEvent::event_types().collect();
    let index = usize::from(*selector) % (movement.len() + guarantee.len() + 1);
    let version = u16::from(*version % 3);
    if let Some(event_type) = movement.get(index) {
        if let Ok((meta, event)) = MovementEvent::decode(event_type, version, stored) {
            assert_eq!(event.event_type(), *event_type, "decoded as another type");
            let bytes = event.encode(&meta);
            let again = MovementEvent::decode(event.event_type(), event.schema_version(), &bytes)
                .unwrap_or_else(|e| panic!("re-encoded event does not decode: {e}"));
            assert_eq!(again, (meta, event), "decode(encode(e)) != e");
        }
    } else if let Some(event_type) = guarantee.get(index - movement.len()) {
        if let Ok((meta, event)) = GuaranteeEvent::decode(event_type, version, stored) {
            assert_eq!(event.event_type(), *event_type, "decoded as another type");
            let bytes = event.encode(&meta);
            let again = GuaranteeEvent::decode(event.event_type(), event.schema_version(), &bytes)
                .unwrap_or_else(|e| panic!("re-encoded event does not decode: {e}"));
            assert_eq!(again, (meta, event), "decode(encode(e)) != e");
        }
    } else {
        // An unknown type name must be refused, by both codecs.
        assert!(MovementEvent::decode("NoSuchEvent", version, stored).is_err());
        assert!(GuaranteeEvent::decode("NoSuchEvent", version, stored).is_err());
    }
});
