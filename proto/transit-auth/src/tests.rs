//! Signing, verification, the header form, the registry and the committed development keys.
//! Files are read with `include_str!`, so the crate stays free of IO even in its tests.
#![allow(clippy::unwrap_used)]

use sha2::{Digest, Sha256};
use transit_contract::fixtures::{self, Journey};
use transit_contract::ids::Timestamp;
use transit_contract::messages::{InboundMessage, MessageBody};

use crate::*;

const DEV_REGISTRY: &str = include_str!("../../../ops/keys/registry.toml");
const KEYS_README: &str = include_str!("../../../ops/keys/README.md");
/// (id, country, committed secret key file).
const DEV_KEYS: [(&str, &str, &str); 4] = [
    (
        "tg-dev-1",
        "TG",
        include_str!("../../../ops/keys/dev/tg-dev-1.key"),
    ),
    (
        "bf-dev-1",
        "BF",
        include_str!("../../../ops/keys/dev/bf-dev-1.key"),
    ),
    (
        "ne-dev-1",
        "NE",
        include_str!("../../../ops/keys/dev/ne-dev-1.key"),
    ),
    (
        "ci-dev-1",
        "CI",
        include_str!("../../../ops/keys/dev/ci-dev-1.key"),
    ),
];
/// The journey's XML samples, in the order of `Journey::messages`.
const JOURNEY_XML: [&str; 8] = [
    include_str!("../../../schemas/xml/samples/journey/01-guarantee-registration.xml"),
    include_str!("../../../schemas/xml/samples/journey/02-transit-declaration.xml"),
    include_str!("../../../schemas/xml/samples/journey/03-release-for-transit.xml"),
    include_str!("../../../schemas/xml/samples/journey/04-border-crossing-exit-togo.xml"),
    include_str!("../../../schemas/xml/samples/journey/05-border-crossing-entry-burkina-faso.xml"),
    include_str!("../../../schemas/xml/samples/journey/06-arrival-notification.xml"),
    include_str!("../../../schemas/xml/samples/journey/07-control-results.xml"),
    include_str!("../../../schemas/xml/samples/journey/08-discharge.xml"),
];

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn base() -> Timestamp {
    ts("2024-03-01T08:00:00Z")
}

fn journey() -> Journey {
    fixtures::journey(base(), 1)
}

fn id(s: &str) -> KeyId {
    s.parse().unwrap()
}

/// The documented seed of a development key.
fn dev_seed(key_id: &str) -> [u8; 32] {
    Sha256::digest(format!("transit-ledger/dev-key/v1/{key_id}").as_bytes()).into()
}

fn dev_key(key_id: &str) -> SigningKey {
    generate_keypair(dev_seed(key_id)).0
}

fn dev_registry() -> KeyRegistry {
    KeyRegistry::from_toml_str(DEV_REGISTRY).unwrap()
}

/// The development key file of `key_id`, exactly as committed.
fn dev_key_file_text(key_id: &str) -> String {
    let file = SecretKeyFile {
        key_id: id(key_id),
        signing_key: dev_key(key_id),
    };
    format!(
        "# DEVELOPMENT ONLY. NEVER USE OUTSIDE DEVELOPMENT AND TESTS: this secret is committed to the\n\
         # repository and derived from a public seed, seed = SHA-256(\"transit-ledger/dev-key/v1/{key_id}\").\n{}",
        file.to_toml()
    )
}

/// A registry of one key built from `entry` fields over the TG development key.
fn one_key_registry(extra: &str) -> KeyRegistry {
    let public = public_key_base64(&dev_key("tg-dev-1").verifying_key());
    KeyRegistry::from_toml_str(&format!(
        "[[key]]\nid = \"k1\"\ncountry = \"TG\"\npublic_key = \"{public}\"\n{extra}\n"
    ))
    .unwrap()
}

fn tg_sign(msg: &InboundMessage) -> SubmissionSignature {
    sign(&dev_key("tg-dev-1"), id("k1"), msg)
}

// ---------------------------------------------------------------------------------------------
// The canonical form.

#[test]
fn signing_bytes_are_the_separator_then_the_canonical_json_of_the_content_digest() {
    for m in journey().messages() {
        let bytes = signing_bytes(&m);
        assert!(bytes.starts_with(b"transit-ledger/submission/v1\n"));
        let json = &bytes[DOMAIN_SEPARATOR.len()..];
        assert_eq!(json, canonical_json(&m).as_slice());
        let digest: [u8; 32] = Sha256::digest(json).into();
        assert_eq!(
            digest,
            m.content_digest(),
            "the digest and the signature cover one form"
        );
        let back: InboundMessage = serde_json::from_slice(json).unwrap();
        assert_eq!(back, m);
    }
}

#[test]
fn json_and_xml_of_the_same_message_have_the_same_signing_bytes_and_signature() {
    let key = dev_key("tg-dev-1");
    for (xml, fixture) in JOURNEY_XML.iter().zip(journey().messages()) {
        let from_xml = transit_xml::decode_inbound(xml.as_bytes()).unwrap();
        let pretty = serde_json::to_string_pretty(&fixture).unwrap();
        let from_json: InboundMessage = serde_json::from_str(&pretty).unwrap();
        assert_eq!(signing_bytes(&from_xml), signing_bytes(&from_json));
        let a = sign(&key, id("tg-dev-1"), &from_xml);
        let b = sign(&key, id("tg-dev-1"), &from_json);
        assert_eq!(a, b, "Ed25519 is deterministic: one message, one signature");
        assert!(verify_detached(
            key.verifying_key().as_bytes(),
            &from_json,
            &a
        ));
    }
}

#[test]
fn field_order_whitespace_and_time_offsets_do_not_change_the_canonical_form() {
    let j = journey();
    // The release, written by hand: fields shuffled, spaces, a +01:00 offset, no correlationId.
    let hand = r#"{
        "body": { "body": { "releasedAt": "2024-03-01T11:00:00+01:00",
                            "mrn": "24TGLOME0000000017" },
                  "type": "ReleaseForTransit" },
        "sentAt": "2024-03-01T10:01:00Z",
        "sender": { "office": "TG000101", "country": "TG" },
        "messageId": "FX-00000001-03-REL"
    }"#;
    let m: InboundMessage = serde_json::from_str(hand).unwrap();
    assert_eq!(m, j.release);
    assert_eq!(signing_bytes(&m), signing_bytes(&j.release));
    let xml = transit_xml::decode_inbound(JOURNEY_XML[2].as_bytes()).unwrap();
    let sig = sign(&dev_key("tg-dev-1"), id("tg-dev-1"), &xml);
    dev_registry().verify(&m, &sig, base()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Signing and verifying.

#[test]
fn every_journey_message_signed_by_its_country_verifies() {
    let registry = dev_registry();
    for m in journey().messages() {
        let key_id = format!("{}-dev-1", m.sender.country.as_str().to_ascii_lowercase());
        let sig = sign(&dev_key(&key_id), id(&key_id), &m);
        let verified = registry.verify(&m, &sig, base()).unwrap();
        assert_eq!(verified.key_id, id(&key_id));
        assert_eq!(verified.country, m.sender.country);
        assert_eq!(
            verified.public_key_base64(),
            public_key_base64(&dev_key(&key_id).verifying_key())
        );
        // The header text round-trips and verifies the same.
        let text = sig.to_string();
        let (parsed, again) = registry.verify_text(&m, Some(&text), base()).unwrap();
        assert_eq!(parsed, sig);
        assert_eq!(again, verified);
    }
}

#[test]
fn a_tampered_message_fails_with_bad_signature() {
    let registry = dev_registry();
    let j = journey();
    let sig = sign(&dev_key("bf-dev-1"), id("bf-dev-1"), &j.arrival);
    let mut tampered = j.arrival.clone();
    if let MessageBody::ArrivalNotification(a) = &mut tampered.body {
        a.arrived_at = ts("2024-03-02T19:00:00Z");
    }
    let err = registry.verify(&tampered, &sig, base()).unwrap_err();
    assert_eq!(err.as_str(), "BAD_SIGNATURE");
    assert!(!verify_detached(
        dev_key("bf-dev-1").verifying_key().as_bytes(),
        &tampered,
        &sig
    ));
}

#[test]
fn a_signature_over_different_bytes_fails_with_bad_signature() {
    let registry = dev_registry();
    let j = journey();
    // A valid signature of the first crossing, presented with the second one.
    let sig = sign(&dev_key("tg-dev-1"), id("tg-dev-1"), &j.crossings[0]);
    let mut other = j.crossings[1].clone();
    other.sender = j.crossings[0].sender.clone();
    let err = registry.verify(&other, &sig, base()).unwrap_err();
    assert_eq!(
        err,
        SignatureError::BadSignature {
            key_id: id("tg-dev-1")
        }
    );
    // Signed without the domain separator (bare canonical JSON): refused too.
    let bare = ed25519_dalek::Signer::sign(&dev_key("tg-dev-1"), &canonical_json(&j.release));
    let sig = SubmissionSignature {
        key_id: id("tg-dev-1"),
        signature: bare.to_bytes(),
    };
    assert_eq!(
        registry
            .verify(&j.release, &sig, base())
            .unwrap_err()
            .as_str(),
        "BAD_SIGNATURE"
    );
    // Signed by another key under the Togolese key's id.
    let sig = sign(&dev_key("bf-dev-1"), id("tg-dev-1"), &j.release);
    assert_eq!(
        registry
            .verify(&j.release, &sig, base())
            .unwrap_err()
            .as_str(),
        "BAD_SIGNATURE"
    );
}

#[test]
fn unknown_key() {
    let j = journey();
    let sig = sign(&dev_key("tg-dev-1"), id("tg-dev-9"), &j.release);
    let err = dev_registry().verify(&j.release, &sig, base()).unwrap_err();
    assert_eq!(err.as_str(), "UNKNOWN_KEY");
    assert_eq!(err.kind(), SignatureErrorKind::Unauthenticated);
    assert!(err.reason().contains("tg-dev-9"), "{err}");
}

#[test]
fn validity_period_is_half_open() {
    let registry = one_key_registry(
        "not_before = \"2024-01-01T00:00:00Z\"\nnot_after = \"2024-06-01T00:00:00Z\"",
    );
    let m = journey().release;
    let sig = tg_sign(&m);
    let code = |at: &str| registry.verify(&m, &sig, ts(at)).err().map(|e| e.as_str());
    assert_eq!(code("2023-12-31T23:59:59Z"), Some("KEY_NOT_YET_VALID"));
    assert_eq!(code("2024-01-01T00:00:00Z"), None);
    assert_eq!(code("2024-05-31T23:59:59Z"), None);
    assert_eq!(code("2024-06-01T00:00:00Z"), Some("KEY_EXPIRED"));
    let err = registry
        .verify(&m, &sig, ts("2025-01-01T00:00:00Z"))
        .unwrap_err();
    assert!(err.reason().contains("2024-06-01T00:00:00Z"), "{err}");
}

#[test]
fn revocation_applies_from_its_instant_on() {
    let registry = one_key_registry(
        "not_before = \"2024-01-01T00:00:00Z\"\nrevoked_at = \"2024-03-01T12:00:00Z\"",
    );
    let m = journey().release;
    let sig = tg_sign(&m);
    assert!(registry
        .verify(&m, &sig, ts("2024-03-01T11:59:59Z"))
        .is_ok());
    for at in ["2024-03-01T12:00:00Z", "2030-01-01T00:00:00Z"] {
        let err = registry.verify(&m, &sig, ts(at)).unwrap_err();
        assert_eq!(err.as_str(), "KEY_REVOKED");
        assert_eq!(err.kind(), SignatureErrorKind::Forbidden);
    }
}

#[test]
fn the_key_country_must_be_the_sender_country() {
    let registry = dev_registry();
    let j = journey();
    // Burkina Faso's key signing a message whose sender claims to be Lomé: refused.
    let sig = sign(&dev_key("bf-dev-1"), id("bf-dev-1"), &j.release);
    let err = registry.verify(&j.release, &sig, base()).unwrap_err();
    assert_eq!(
        err,
        SignatureError::KeyCountryMismatch {
            key_id: id("bf-dev-1"),
            key_country: "BF".parse().unwrap(),
            sender_country: "TG".parse().unwrap(),
        }
    );
    assert_eq!(err.as_str(), "KEY_COUNTRY_MISMATCH");
    assert_eq!(err.kind(), SignatureErrorKind::Forbidden);
}

#[test]
fn an_office_restricted_key_signs_only_for_its_offices() {
    let registry =
        one_key_registry("offices = [\"TGCIN001\"]\nnot_before = \"2024-01-01T00:00:00Z\"");
    let j = journey();
    let crossing = &j.crossings[0];
    assert_eq!(crossing.sender.office.as_str(), fixtures::CINKASSE_TG);
    registry
        .verify(crossing, &tg_sign(crossing), base())
        .unwrap();
    let err = registry
        .verify(&j.release, &tg_sign(&j.release), base())
        .unwrap_err();
    assert_eq!(err.as_str(), "KEY_OFFICE_NOT_ALLOWED");
    assert_eq!(err.kind(), SignatureErrorKind::Forbidden);
    assert!(err.reason().contains("TGCIN001") && err.reason().contains("TG000101"));
}

#[test]
fn the_signature_is_checked_before_the_key_policy() {
    // A bad signature by an expired key says BAD_SIGNATURE: a policy refusal always means the
    // key's holder really signed.
    let registry = one_key_registry(
        "not_before = \"2024-01-01T00:00:00Z\"\nnot_after = \"2024-02-01T00:00:00Z\"",
    );
    let j = journey();
    let sig = tg_sign(&j.declaration);
    let err = registry.verify(&j.release, &sig, base()).unwrap_err();
    assert_eq!(err.as_str(), "BAD_SIGNATURE");
}

#[test]
fn verify_text_reports_missing_and_malformed_signatures() {
    let registry = dev_registry();
    let m = journey().release;
    let err = registry.verify_text(&m, None, base()).unwrap_err();
    assert_eq!(err, SignatureError::Missing);
    assert_eq!(err.as_str(), "MISSING_SIGNATURE");
    let err = registry
        .verify_text(&m, Some("keyId=tg-dev-1; alg=RS256; sig=x"), base())
        .unwrap_err();
    assert_eq!(err.as_str(), "MALFORMED_SIGNATURE");
    assert!(err.reason().contains("RS256"), "{err}");
}

#[test]
fn verify_detached_needs_only_the_public_key() {
    let j = journey();
    let key = dev_key("ne-dev-1");
    let sig = sign(&key, id("anything"), &j.discharge);
    assert!(verify_detached(
        key.verifying_key().as_bytes(),
        &j.discharge,
        &sig
    ));
    assert!(!verify_detached(
        dev_key("ci-dev-1").verifying_key().as_bytes(),
        &j.discharge,
        &sig
    ));
    assert!(!verify_detached(&[0; 32], &j.discharge, &sig));
}

#[test]
fn error_codes_are_distinct_and_listed() {
    let j = journey();
    let k = id("k");
    let errors = [
        SignatureError::Missing,
        SignatureError::Malformed(SignatureParseError::EmptyParameter),
        SignatureError::UnknownKey { key_id: k.clone() },
        SignatureError::BadSignature { key_id: k.clone() },
        SignatureError::KeyNotYetValid {
            key_id: k.clone(),
            not_before: base(),
            at: base(),
        },
        SignatureError::KeyExpired {
            key_id: k.clone(),
            not_after: base(),
            at: base(),
        },
        SignatureError::KeyRevoked {
            key_id: k.clone(),
            revoked_at: base(),
            at: base(),
        },
        SignatureError::KeyCountryMismatch {
            key_id: k.clone(),
            key_country: "TG".parse().unwrap(),
            sender_country: "BF".parse().unwrap(),
        },
        SignatureError::KeyOfficeNotAllowed {
            key_id: k,
            office: j.release.sender.office.clone(),
            allowed: vec![fixtures::CINKASSE_TG.parse().unwrap()],
        },
    ];
    let codes: Vec<&str> = errors.iter().map(SignatureError::as_str).collect();
    assert_eq!(codes, SignatureError::CODES);
    let distinct: std::collections::BTreeSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), codes.len());
    for e in &errors {
        assert!(!e.reason().is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// The header form.

#[test]
fn signature_text_round_trips() {
    let sig = sign(&dev_key("tg-dev-1"), id("tg-dev-1"), &journey().release);
    let text = sig.to_string();
    assert!(text.starts_with("keyId=tg-dev-1; alg=Ed25519; sig="));
    assert_eq!(text.len(), "keyId=tg-dev-1; alg=Ed25519; sig=".len() + 88);
    assert_eq!(text.parse::<SubmissionSignature>().unwrap(), sig);
    // Spaces and tabs around the separators, and another order, are accepted.
    let b64 = sig.signature_base64();
    for variant in [
        format!("keyId=tg-dev-1;alg=Ed25519;sig={b64}"),
        format!("  sig={b64} ;\talg=Ed25519 ; keyId=tg-dev-1 "),
    ] {
        assert_eq!(variant.parse::<SubmissionSignature>().unwrap(), sig);
    }
    assert!(format!("{sig:?}").contains("tg-dev-1"));
}

#[test]
fn signature_text_parse_errors_are_precise() {
    use SignatureParseError as E;
    // 0xfb bytes encode with both '+' and '/'.
    let b64 = base64_of(&[0xfb; 64]);
    let parse = |s: &str| s.parse::<SubmissionSignature>().unwrap_err();
    assert!(matches!(
        parse(&format!("keyId=k; alg=Ed25519; sig={b64}; {}", "x".repeat(500))),
        E::TooLong(len) if len > SIGNATURE_TEXT_LEN_MAX
    ));
    assert_eq!(
        parse(&format!("keyId=clé; alg=Ed25519; sig={b64}")),
        E::NotPrintableAscii
    );
    assert_eq!(
        parse(&format!("keyId=k; alg=Ed25519; sig={b64}\n")),
        E::NotPrintableAscii
    );
    assert_eq!(parse(""), E::EmptyParameter);
    assert_eq!(
        parse(&format!("keyId=k; alg=Ed25519; sig={b64};")),
        E::EmptyParameter
    );
    assert_eq!(
        parse(&format!("keyId k; alg=Ed25519; sig={b64}")),
        E::NotNameValue("keyId k".to_owned())
    );
    assert_eq!(
        parse(&format!("keyid=k; alg=Ed25519; sig={b64}")),
        E::UnknownParameter("keyid".to_owned())
    );
    assert_eq!(
        parse(&format!("keyId=k; keyId=k; alg=Ed25519; sig={b64}")),
        E::DuplicateParameter("keyId")
    );
    assert_eq!(
        parse(&format!("alg=Ed25519; sig={b64}")),
        E::MissingParameter("keyId")
    );
    assert_eq!(
        parse(&format!("keyId=k; sig={b64}")),
        E::MissingParameter("alg")
    );
    assert_eq!(parse("keyId=k; alg=Ed25519"), E::MissingParameter("sig"));
    assert_eq!(
        parse(&format!("keyId=k; alg=ed25519; sig={b64}")),
        E::UnsupportedAlgorithm("ed25519".to_owned())
    );
    assert_eq!(
        parse(&format!("keyId=; alg=Ed25519; sig={b64}")),
        E::KeyId(KeyIdError::Empty)
    );
    assert_eq!(
        parse(&format!("keyId=a/b; alg=Ed25519; sig={b64}")),
        E::KeyId(KeyIdError::InvalidCharacter {
            position: 1,
            character: '/'
        })
    );
    // Wrong length (63 bytes), unpadded, URL-safe alphabet, non-canonical trailing bits.
    for bad in [
        base64_of(&[7; 63]),
        b64.trim_end_matches('=').to_owned(),
        b64.replace('+', "-").replace('/', "_"),
        format!("{}B==", &b64[..85]),
    ] {
        let err = parse(&format!("keyId=k; alg=Ed25519; sig={bad}"));
        assert!(matches!(err, E::Base64(_)), "{bad}: {err:?}");
    }
    // Every error reads as a sentence naming the problem.
    assert!(parse("keyId=k; alg=Ed25519").to_string().contains("sig"));
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn key_ids() {
    for ok in ["a", "tg-dev-1", "TG.central:2024_v1", &"x".repeat(64)] {
        assert_eq!(ok.parse::<KeyId>().unwrap().as_str(), ok);
    }
    assert_eq!("".parse::<KeyId>(), Err(KeyIdError::Empty));
    assert_eq!(
        "x".repeat(65).parse::<KeyId>(),
        Err(KeyIdError::TooLong(65))
    );
    assert!(matches!(
        "tg dev".parse::<KeyId>(),
        Err(KeyIdError::InvalidCharacter { position: 2, .. })
    ));
    assert!("tgé".parse::<KeyId>().is_err());
}

// ---------------------------------------------------------------------------------------------
// The registry.

fn registry_err(text: &str) -> RegistryError {
    KeyRegistry::from_toml_str(text).unwrap_err()
}

fn key_toml(id: &str, public: &str, extra: &str) -> String {
    format!(
        "[[key]]\nid = \"{id}\"\ncountry = \"TG\"\npublic_key = \"{public}\"\n\
         not_before = \"2024-01-01T00:00:00Z\"\n{extra}\n"
    )
}

fn tg_public() -> String {
    public_key_base64(&dev_key("tg-dev-1").verifying_key())
}

fn bf_public() -> String {
    public_key_base64(&dev_key("bf-dev-1").verifying_key())
}

#[test]
fn registry_refuses_duplicates() {
    let twice = format!(
        "{}{}",
        key_toml("k1", &tg_public(), ""),
        key_toml("k1", &bf_public(), "")
    );
    assert_eq!(registry_err(&twice), RegistryError::DuplicateId(id("k1")));
    let same_key = format!(
        "{}{}",
        key_toml("k1", &tg_public(), ""),
        key_toml("k2", &tg_public(), "")
    );
    assert_eq!(
        registry_err(&same_key),
        RegistryError::DuplicatePublicKey {
            first: id("k1"),
            second: id("k2")
        }
    );
}

#[test]
fn registry_refuses_bad_public_keys() {
    let field = |e: RegistryError| match e {
        RegistryError::Field { field, reason, .. } => (field, reason),
        other => panic!("expected a field error, got {other:?}"),
    };
    let (f, reason) = field(registry_err(&key_toml("k1", "not base64!", "")));
    assert_eq!(f, "public_key");
    assert!(reason.contains("44"), "{reason}");
    // 31 bytes also take 44 characters.
    let (_, reason) = field(registry_err(&key_toml("k1", &base64_of(&[1; 31]), "")));
    assert!(reason.contains("31 bytes"), "{reason}");
    // 44 characters that are not base64.
    let (f, _) = field(registry_err(&key_toml("k1", &"*".repeat(44), "")));
    assert_eq!(f, "public_key");
    // Not a point of the curve: some 32-byte strings do not decompress.
    let off_curve = (0..=255u8)
        .map(|b| [b; 32])
        .find(|bytes| VerifyingKey::from_bytes(bytes).is_err())
        .unwrap();
    let (f, reason) = field(registry_err(&key_toml("k1", &base64_of(&off_curve), "")));
    assert_eq!(f, "public_key");
    assert!(reason.contains("curve"), "{reason}");
    // A small-order (weak) key, such as the identity point.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let (_, reason) = field(registry_err(&key_toml("k1", &base64_of(&identity), "")));
    assert!(reason.contains("weak"), "{reason}");
}

#[test]
fn registry_refuses_an_empty_validity_period() {
    for not_after in ["2024-01-01T00:00:00Z", "2023-01-01T00:00:00Z"] {
        let err = registry_err(&key_toml(
            "k1",
            &tg_public(),
            &format!("not_after = \"{not_after}\""),
        ));
        assert!(matches!(err, RegistryError::EmptyPeriod { .. }), "{err:?}");
        assert!(err.to_string().contains("not_after"));
    }
}

#[test]
fn registry_checks_countries_offices_times_and_fields() {
    let public = tg_public();
    let field_of = |extra: &str| match registry_err(&key_toml("k1", &public, extra)) {
        RegistryError::Field { field, .. } => field,
        other => panic!("{extra}: expected a field error, got {other:?}"),
    };
    assert_eq!(field_of("offices = [\"BFCIN001\"]"), "offices");
    assert_eq!(field_of("offices = []"), "offices");
    assert_eq!(
        field_of("offices = [\"TGCIN001\", \"TGCIN001\"]"),
        "offices"
    );
    assert_eq!(field_of("offices = [\"TG\"]"), "offices");
    assert_eq!(field_of("not_after = \"tomorrow\""), "not_after");
    assert_eq!(field_of("revoked_at = 2024-05-01T00:00:00"), "revoked_at");
    assert_eq!(
        field_of(&format!("comment = \"{}\"", "é".repeat(513))),
        "comment"
    );
    let bad_country = format!(
        "[[key]]\nid = \"k1\"\ncountry = \"ZZ\"\npublic_key = \"{public}\"\n\
         not_before = \"2024-01-01T00:00:00Z\"\n"
    );
    assert!(matches!(
        registry_err(&bad_country),
        RegistryError::Field {
            field: "country",
            ..
        }
    ));
    let bad_id = key_toml("tg dev", &public, "");
    assert_eq!(
        registry_err(&bad_id),
        RegistryError::Field {
            key: "#1".to_owned(),
            field: "id",
            reason: KeyIdError::InvalidCharacter {
                position: 2,
                character: ' '
            }
            .to_string(),
        }
    );
    // A misspelt field is an error, not silently ignored.
    assert!(matches!(
        registry_err(&key_toml(
            "k1",
            &public,
            "not_afer = \"2030-01-01T00:00:00Z\""
        )),
        RegistryError::Toml(_)
    ));
    assert!(matches!(
        registry_err("[[key]]\nid = \"k1\"\n"),
        RegistryError::Toml(_)
    ));
    assert!(matches!(
        registry_err("this is not toml"),
        RegistryError::Toml(_)
    ));
    assert!(matches!(
        registry_err(&"#".repeat(REGISTRY_BYTES_MAX + 1)),
        RegistryError::TooLarge(_)
    ));
}

#[test]
fn registry_accepts_toml_date_times_and_an_empty_file() {
    let registry = KeyRegistry::from_toml_str(&format!(
        "[[key]]\nid = \"k1\"\ncountry = \"TG\"\npublic_key = \"{}\"\n\
         not_before = 2024-01-01T01:00:00+01:00\nnot_after = 2025-01-01T00:00:00Z\n",
        tg_public()
    ))
    .unwrap();
    let entry = registry.get(&id("k1")).unwrap();
    assert_eq!(entry.not_before, ts("2024-01-01T00:00:00Z"));
    assert_eq!(entry.not_after, Some(ts("2025-01-01T00:00:00Z")));
    assert_eq!(entry.offices, None);
    assert!(KeyRegistry::from_toml_str("").unwrap().is_empty());
    assert!(KeyRegistry::from_toml_str("# nothing yet\n")
        .unwrap()
        .is_empty());
}

#[test]
fn a_rendered_entry_parses_back_to_itself() {
    let entry = KeyEntry {
        id: id("tg-cinkasse-1"),
        country: "TG".parse().unwrap(),
        offices: Some(vec![
            fixtures::CINKASSE_TG.parse().unwrap(),
            fixtures::LOME_PORT.parse().unwrap(),
        ]),
        public_key: dev_key("tg-dev-1").verifying_key(),
        not_before: ts("2025-01-01T00:00:00Z"),
        not_after: Some(ts("2027-01-01T00:00:00Z")),
        revoked_at: Some(ts("2026-02-03T04:05:06Z")),
        comment: "Cinkassé \"TG side\"\\ second line\n\ttab \u{7}".to_owned(),
    };
    let text = entry.to_toml();
    assert!(
        text.starts_with("[[key]]\nid = \"tg-cinkasse-1\"\n"),
        "{text}"
    );
    let registry = KeyRegistry::from_toml_str(&text).unwrap();
    assert_eq!(registry.get(&entry.id), Some(&entry));
    // The minimal form: no offices, no end, no comment.
    let minimal = KeyEntry {
        offices: None,
        not_after: None,
        revoked_at: None,
        comment: String::new(),
        ..entry
    };
    let text = minimal.to_toml();
    assert!(
        !text.contains("offices") && !text.contains("comment"),
        "{text}"
    );
    let registry = KeyRegistry::from_toml_str(&text).unwrap();
    assert_eq!(registry.iter().next(), Some(&minimal));
}

// ---------------------------------------------------------------------------------------------
// Key files.

#[test]
fn key_files_round_trip_and_catch_damage() {
    let (signing_key, _) = generate_keypair([42; 32]);
    let file = SecretKeyFile {
        key_id: id("ci-abidjan-1"),
        signing_key,
    };
    let text = file.to_toml();
    let back = SecretKeyFile::from_toml_str(&text).unwrap();
    assert_eq!(back.key_id, file.key_id);
    assert_eq!(back.signing_key.to_bytes(), [42; 32]);
    let secret = base64_of(&[42; 32]);
    assert!(text.contains(&secret));
    assert!(
        !format!("{file:?}").contains(&secret),
        "Debug never prints the secret"
    );

    // Another key's public half.
    let mismatched = text.replace(
        &public_key_base64(&file.verifying_key()),
        &public_key_base64(&generate_keypair([43; 32]).1),
    );
    assert_eq!(
        SecretKeyFile::from_toml_str(&mismatched).unwrap_err(),
        KeyFileError::Mismatch
    );
    let wrong_format = text.replace("secret/v1", "secret/v2");
    assert!(matches!(
        SecretKeyFile::from_toml_str(&wrong_format),
        Err(KeyFileError::Format(_))
    ));
    let short = text.replace(&secret, &base64_of(&[42; 31]));
    assert!(matches!(
        SecretKeyFile::from_toml_str(&short),
        Err(KeyFileError::SecretKey(_))
    ));
    let extra = format!("{text}country = \"CI\"\n");
    assert!(matches!(
        SecretKeyFile::from_toml_str(&extra),
        Err(KeyFileError::Toml(_))
    ));
    let bad_id = text.replace("ci-abidjan-1", "ci abidjan");
    assert!(matches!(
        SecretKeyFile::from_toml_str(&bad_id),
        Err(KeyFileError::KeyId(_))
    ));
    assert!(matches!(
        SecretKeyFile::from_toml_str(&"#".repeat(KEY_FILE_BYTES_MAX + 1)),
        Err(KeyFileError::TooLarge(_))
    ));
}

#[test]
fn generate_keypair_is_deterministic_in_its_seed() {
    let (a, pa) = generate_keypair([1; 32]);
    let (b, pb) = generate_keypair([1; 32]);
    let (_, pc) = generate_keypair([2; 32]);
    assert_eq!(a.to_bytes(), b.to_bytes());
    assert_eq!(pa, pb);
    assert_ne!(pa, pc);
    assert_eq!(a.verifying_key(), pa);
    assert_eq!(public_key_base64(&pa).len(), 44);
}

// ---------------------------------------------------------------------------------------------
// The committed development keys and documentation.

#[test]
fn the_committed_dev_registry_and_dev_keys_match() {
    let registry = dev_registry();
    assert_eq!(registry.len(), DEV_KEYS.len());
    for (key_id, country, committed) in DEV_KEYS {
        assert_eq!(
            committed,
            dev_key_file_text(key_id),
            "ops/keys/dev/{key_id}.key differs from the key derived from its documented seed"
        );
        let file = SecretKeyFile::from_toml_str(committed).unwrap();
        assert_eq!(file.key_id, id(key_id));
        let entry = registry.get(&file.key_id).unwrap();
        assert_eq!(entry.public_key, file.verifying_key(), "{key_id}");
        assert_eq!(entry.country.as_str(), country);
        assert_eq!(entry.offices, None);
        assert_eq!(entry.not_before, ts("2024-01-01T00:00:00Z"));
        assert_eq!((entry.not_after, entry.revoked_at), (None, None));
        assert!(entry.comment.starts_with("DEVELOPMENT ONLY"));
        assert!(committed.starts_with("# DEVELOPMENT ONLY"));
    }
}

/// The worked example in ops/keys/README.md: the journey's release signed with tg-dev-1.
#[test]
fn the_readme_example_is_true() {
    let release = journey().release;
    let json = String::from_utf8(canonical_json(&release)).unwrap();
    assert!(
        KEYS_README.contains(&json),
        "README lacks the canonical JSON:\n{json}"
    );
    let sig = sign(&dev_key("tg-dev-1"), id("tg-dev-1"), &release);
    let header = format!("{HTTP_HEADER}: {sig}");
    assert!(
        KEYS_README.contains(&header),
        "README lacks the header:\n{header}"
    );
}
