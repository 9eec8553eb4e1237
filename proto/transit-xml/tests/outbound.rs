//! Outbound messages: every one round-trips, functional errors carry the decoder's code and
//! path, and the reason codes cover every rejection code of the domain rules.

#![allow(clippy::unwrap_used)]

use transit_xml::samples::samples;
use transit_xml::{
    decode_inbound, decode_outbound, encode_outbound, FunctionalError, Header, OutboundMessage,
    ReasonCode, XmlError,
};

fn outbound_samples() -> Vec<OutboundMessage> {
    samples()
        .into_iter()
        .filter(|s| s.file.starts_with("outbound/"))
        .map(|s| decode_outbound(&s.bytes).unwrap())
        .collect()
}

#[test]
fn every_outbound_message_round_trips() {
    let all = outbound_samples();
    assert_eq!(all.len(), 7);
    for m in all {
        let xml = encode_outbound(&m);
        assert_eq!(decode_outbound(&xml).unwrap(), m, "{}", m.kind());
        // An outbound message is not an inbound one, and the error says so.
        assert!(matches!(
            decode_inbound(&xml),
            Err(XmlError::UnknownMessage { .. })
        ));
    }
}

#[test]
fn a_functional_error_without_path_or_original_id_round_trips() {
    let header: Header = outbound_samples()[0].header().clone();
    let m: OutboundMessage =
        FunctionalError::for_xml_error(header, None, &XmlError::DoctypeRefused).into();
    match &m {
        OutboundMessage::FunctionalError(f) => {
            assert_eq!(f.code, ReasonCode::Malformed);
            assert_eq!(f.element_path, None);
            assert_eq!(f.reason, "DOCTYPE declarations are not allowed");
        }
        _ => unreachable!(),
    }
    assert_eq!(decode_outbound(&encode_outbound(&m)).unwrap(), m);
}

#[test]
fn reason_codes_cover_every_rejection_code_of_the_rules_and_every_signature_refusal() {
    for code in transit_rules::RejectionCode::ALL {
        let parsed: ReasonCode = code.as_str().parse().unwrap();
        assert_eq!(parsed.as_str(), code.as_str());
    }
    for code in transit_auth::SignatureError::CODES {
        let parsed: ReasonCode = code.parse().unwrap();
        assert_eq!(parsed.as_str(), code);
    }
    assert_eq!(
        ReasonCode::ALL.len(),
        transit_rules::RejectionCode::ALL.len() + 1 + transit_auth::SignatureError::CODES.len(),
        "the rules' codes, the signature refusals, and MALFORMED, the only code of the XML \
         layer's own"
    );
    assert_eq!(
        "MALFORMED".parse::<ReasonCode>().unwrap(),
        ReasonCode::Malformed
    );
    assert!("NOPE".parse::<ReasonCode>().is_err());
}
