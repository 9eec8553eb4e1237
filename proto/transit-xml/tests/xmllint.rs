//! The outside validator: libxml2's xmllint accepts every sample against `transit.xsd` and
//! rejects invalid messages, so the schema is neither out of step with the encoder nor vacuous.
//! xmllint comes from Debian's `libxml2-utils`; without it these tests fail, never skip.

#![allow(clippy::unwrap_used)]

mod common;

use transit_xml::samples::samples;
use transit_xml::{decode_inbound, decode_outbound};

#[test]
fn xmllint_accepts_every_checked_in_sample() {
    let dir = common::samples_dir();
    for s in samples() {
        let bytes = std::fs::read(dir.join(&s.file)).unwrap();
        let (ok, output) = common::xmllint(&bytes);
        assert!(ok, "xmllint refused {}: {output}", s.file);
    }
}

fn declaration_sample() -> String {
    let s = samples();
    let d = s
        .iter()
        .find(|s| s.file == "journey/02-transit-declaration.xml")
        .unwrap();
    String::from_utf8(d.bytes.clone()).unwrap()
}

/// Each case breaks one rule of the schema; xmllint and the crate's decoder must both refuse.
#[test]
fn xmllint_and_the_decoder_reject_invalid_messages() {
    let good = declaration_sample();
    assert!(common::xmllint(good.as_bytes()).0);
    let cases: Vec<(&str, String)> = vec![
        (
            "HS code of a reserved chapter",
            good.replace("<CommodityCode>271019<", "<CommodityCode>771019<"),
        ),
        (
            "HS code with 5 digits",
            good.replace("<CommodityCode>271019<", "<CommodityCode>27101<"),
        ),
        (
            "MRN with a letter as check character",
            good.replace("<MRN>24TGLOME0000000017<", "<MRN>24TGLOME000000001A<"),
        ),
        (
            "missing MRN",
            good.replace("  <MRN>24TGLOME0000000017</MRN>\n", ""),
        ),
        (
            "wrong namespace",
            good.replace("urn:ecowas:transit-ledger:v1", "urn:example:other"),
        ),
        (
            "decimal amount",
            good.replace(">85000000<", ">85000000.5<"),
        ),
        (
            "missing currency attribute",
            good.replace("<CustomsValue currency=\"XOF\">", "<CustomsValue>"),
        ),
        (
            "local time instead of UTC",
            good.replace("<TimeLimit>2024-03-09T08:00:00Z<", "<TimeLimit>2024-03-09T09:00:00+01:00<"),
        ),
        (
            "elements out of order",
            good.replace(
                "  <DeclarationType>ISRT</DeclarationType>\n  <MRN>",
                "  <MRN>",
            )
            .replace(
                "  <MRN>24TGLOME0000000017</MRN>\n  <DeclarationType>ISRT</DeclarationType>\n",
                "  <DeclarationType>ISRT</DeclarationType>\n  <MRN>24TGLOME0000000017</MRN>\n",
            ),
        ),
        (
            "unknown element",
            good.replace("  <BindingItinerary>", "  <Surprise>1</Surprise>\n  <BindingItinerary>"),
        ),
        (
            "duplicated single element",
            good.replace(
                "  <TimeLimit>2024-03-09T08:00:00Z</TimeLimit>\n",
                "  <TimeLimit>2024-03-09T08:00:00Z</TimeLimit>\n  <TimeLimit>2024-03-09T08:00:00Z</TimeLimit>\n",
            ),
        ),
        (
            "unknown mode of transport",
            good.replace("<ModeOfTransport>3<", "<ModeOfTransport>5<"),
        ),
    ];
    for (what, bad) in cases {
        assert_ne!(bad, good, "case {what:?} did not change the message");
        let (ok, output) = common::xmllint(bad.as_bytes());
        assert!(!ok, "xmllint accepted a message with {what}");
        assert!(output.contains("fails to validate"), "{what}: {output}");
        let err = decode_inbound(bad.as_bytes()).expect_err(what);
        assert_eq!(err.code(), "VALIDATION", "{what}: {err}");
    }
}

#[test]
fn xmllint_rejects_invalid_outbound_messages() {
    let s = samples();
    let fe = s
        .iter()
        .find(|s| s.file == "outbound/functional-error.xml")
        .unwrap();
    let bad = String::from_utf8(fe.bytes.clone())
        .unwrap()
        .replace("<ErrorCode>VALIDATION<", "<ErrorCode>OOPS<");
    assert!(!common::xmllint(bad.as_bytes()).0);
    assert_eq!(
        decode_outbound(bad.as_bytes()).unwrap_err().code(),
        "VALIDATION"
    );
}

#[test]
fn the_schema_lists_exactly_the_crate_reason_codes() {
    let xsd = std::fs::read_to_string(common::schema_dir().join("transit-outbound.xsd")).unwrap();
    let start = xsd.find("<xs:simpleType name=\"ReasonCodeType\">").unwrap();
    let end = start + xsd[start..].find("</xs:simpleType>").unwrap();
    let listed: Vec<&str> = xsd[start..end]
        .split("<xs:enumeration value=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    let codes: Vec<&str> = transit_xml::ReasonCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    assert_eq!(listed, codes);
}
