//! The properties the fuzz targets check, shared so that the XML and JSON targets hold a
//! message to exactly the same round trips.
//!
//! A message that decodes is re-encoded and decoded again; the result must be the same value
//! with the same canonical signing bytes, whichever wire format it went through. The one
//! documented loss is XML's: it cannot carry a character outside XML 1.0's `Char` production
//! (the writer puts U+FFFD instead) and it trims the whitespace around leaf text, so a JSON
//! message with such strings only has to reach a fixed point after one XML round trip.

use serde_json::Value;
use transit_auth::{canonical_json, signing_bytes};
use transit_contract::InboundMessage;
use transit_xml::{decode_inbound, decode_outbound, encode_inbound, encode_outbound};

/// XML 1.0's `Char` production, as the XML writer applies it (`transit_xml::parse`).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn strings_fit_xml(value: &Value) -> bool {
    match value {
        Value::String(s) => {
            s.chars().all(is_xml_char) && !s.starts_with(is_xml_space) && !s.ends_with(is_xml_space)
        }
        Value::Array(items) => items.iter().all(strings_fit_xml),
        Value::Object(fields) => fields.values().all(strings_fit_xml),
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
    }
}

/// Whether XML can carry every string of `msg` unchanged (see the module docs).
pub fn xml_representable(msg: &InboundMessage) -> bool {
    let value = serde_json::to_value(msg).expect("invariant: an inbound message serialises");
    strings_fit_xml(&value)
}

/// `msg` written as XML and read back; the encoder's output must always decode.
pub fn via_xml(msg: &InboundMessage) -> InboundMessage {
    let xml = encode_inbound(msg);
    decode_inbound(&xml).unwrap_or_else(|e| {
        panic!(
            "the encoder's XML does not decode: {e}\nmessage: {msg:?}\nxml:\n{}",
            String::from_utf8_lossy(&xml)
        )
    })
}

/// `msg` written as canonical JSON and read back; the canonical JSON must always decode.
pub fn via_json(msg: &InboundMessage) -> InboundMessage {
    let json = canonical_json(msg);
    serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "the canonical JSON does not decode: {e}\nmessage: {msg:?}\njson: {}",
            String::from_utf8_lossy(&json)
        )
    })
}

/// The JSON round trip is exact, and the canonical bytes are a fixed point.
pub fn assert_json_round_trip(msg: &InboundMessage) {
    let again = via_json(msg);
    assert_eq!(&again, msg, "decode(encode(m)) != m through JSON");
    assert_eq!(
        canonical_json(&again),
        canonical_json(msg),
        "the canonical JSON is not stable"
    );
}

/// The XML round trip is exact: same value, same XML, same signing bytes.
pub fn assert_xml_round_trip(msg: &InboundMessage) {
    let again = via_xml(msg);
    assert_eq!(&again, msg, "decode(encode(m)) != m through XML");
    assert_eq!(
        encode_inbound(&again),
        encode_inbound(msg),
        "the XML encoding is not stable"
    );
    assert_eq!(
        signing_bytes(&again),
        signing_bytes(msg),
        "the signing bytes differ after an XML round trip"
    );
}

/// Every property of a message that decoded from XML: it round-trips exactly through both
/// formats (it came from XML, so XML can carry it, valid or not).
pub fn check_from_xml(msg: &InboundMessage) {
    // Validation is what the ledger runs next; it must not panic on anything that decodes.
    let _ = msg.validate();
    assert_json_round_trip(msg);
    assert_xml_round_trip(msg);
}

/// Every property of a message that decoded from JSON: it round-trips exactly through JSON.
/// If it is valid (only valid messages are recorded and ever re-sent), its XML must decode,
/// to the same value when XML can carry its strings and otherwise to a fixed point. An
/// invalid one may exceed the XML reader's limits (a 10 KiB remark), so is not sent there.
pub fn check_from_json(msg: &InboundMessage) {
    assert_json_round_trip(msg);
    if msg.validate().is_err() {
        return;
    }
    if xml_representable(msg) {
        assert_xml_round_trip(msg);
    } else {
        assert_xml_round_trip(&via_xml(msg));
    }
}

/// Decodes `bytes` as an outbound XML message and, if it decodes, checks its round trip.
pub fn check_outbound_xml(bytes: &[u8]) {
    if let Ok(msg) = decode_outbound(bytes) {
        let xml = encode_outbound(&msg);
        let again = decode_outbound(&xml).unwrap_or_else(|e| {
            panic!(
                "the outbound encoder's XML does not decode: {e}\nmessage: {msg:?}\nxml:\n{}",
                String::from_utf8_lossy(&xml)
            )
        });
        assert_eq!(again, msg, "decode(encode(m)) != m for an outbound message");
        assert_eq!(
            encode_outbound(&again),
            xml,
            "the outbound XML is not stable"
        );
    }
}
