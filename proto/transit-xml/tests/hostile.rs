//! Hostile and broken input: every case is refused with a clear, typed error, within the
//! named limits, and nothing outside the document is ever read.

#![allow(clippy::unwrap_used)]

use transit_contract::fixtures::journey;
use transit_contract::Timestamp;
use transit_xml::{
    decode_inbound, encode_inbound, XmlError, NAMESPACE, XML_BYTES_MAX, XML_DEPTH_MAX,
    XML_ELEMENTS_MAX, XML_TEXT_LEN_MAX,
};

fn base() -> Timestamp {
    "2024-03-01T08:00:00Z".parse().unwrap()
}

fn declaration() -> String {
    String::from_utf8(encode_inbound(&journey(base(), 1).declaration)).unwrap()
}

fn release() -> String {
    String::from_utf8(encode_inbound(&journey(base(), 1).release)).unwrap()
}

fn refused(xml: &str) -> XmlError {
    decode_inbound(xml.as_bytes()).expect_err("must be refused")
}

#[test]
fn xxe_external_entity_is_refused_before_anything_is_read() {
    let xml = format!(
        r#"<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Discharge xmlns="{NAMESPACE}"><MessageIdentification>&xxe;</MessageIdentification></Discharge>"#
    );
    let e = refused(&xml);
    assert_eq!(e, XmlError::DoctypeRefused);
    assert_eq!(e.code(), "MALFORMED");
    assert_eq!(e.to_string(), "DOCTYPE declarations are not allowed");
}

#[test]
fn billion_laughs_is_refused() {
    let mut dtd = String::from("<!ENTITY lol0 \"lol\">");
    for i in 1..10 {
        let p = i - 1;
        dtd.push_str(&format!(
            "<!ENTITY lol{i} \"&lol{p};&lol{p};&lol{p};&lol{p};&lol{p};&lol{p};&lol{p};&lol{p};&lol{p};&lol{p};\">"
        ));
    }
    let xml = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [{dtd}]><Discharge xmlns=\"{NAMESPACE}\">&lol9;</Discharge>"
    );
    assert_eq!(refused(&xml), XmlError::DoctypeRefused);
    // Without a DTD an undeclared entity is refused by name, with its place.
    let xml = format!("<Discharge xmlns=\"{NAMESPACE}\">&lol9;</Discharge>");
    let e = refused(&xml);
    assert_eq!(
        e,
        XmlError::EntityRefused {
            name: "lol9".to_owned(),
            path: "/Discharge".to_owned()
        }
    );
    assert_eq!(e.code(), "MALFORMED");
}

#[test]
fn processing_instructions_are_refused() {
    let xml = release().replacen(
        "<ReleaseForTransit",
        "<?xml-stylesheet href=\"http://evil.example/x.xsl\"?>\n<ReleaseForTransit",
        1,
    );
    let e = refused(&xml);
    assert!(
        matches!(e, XmlError::ProcessingInstructionRefused { ref target } if target == "xml-stylesheet"),
        "{e}"
    );
    // A second XML declaration, or one not at the very start, is refused too.
    let e = refused(&format!("\n{}", release()));
    assert!(matches!(e, XmlError::BadDeclaration { .. }), "{e}");
}

#[test]
fn only_predefined_entities_and_character_references_are_resolved() {
    let j = journey(base(), 1);
    let xml = declaration().replace(
        "Riz blanchi, sacs de 50 kg",
        "Riz &amp; ma&#xEF;s &lt;50 kg&gt; &quot;sacs&quot; &apos;B&apos; &#233;",
    );
    let m = decode_inbound(xml.as_bytes()).unwrap();
    let d = match &m.body {
        transit_contract::MessageBody::TransitDeclaration(d) => d,
        _ => unreachable!(),
    };
    assert_eq!(d.goods[0].description, "Riz & maïs <50 kg> \"sacs\" 'B' é");
    assert_eq!(d.mrn, j.mrn);
    let e = refused(&declaration().replace("Riz blanchi", "Riz &nbsp;blanchi"));
    assert!(
        matches!(e, XmlError::EntityRefused { ref name, .. } if name == "nbsp"),
        "{e}"
    );
    assert_eq!(
        e.path(),
        Some("/TransitDeclaration/GoodsItem/DescriptionOfGoods")
    );
    // A character reference to a character XML forbids is refused.
    let e = refused(&declaration().replace("Riz blanchi", "Riz &#1;blanchi"));
    assert!(
        matches!(e, XmlError::IllegalCharacter { code_point: 1, .. }),
        "{e}"
    );
}

#[test]
fn nesting_10000_deep_stops_at_the_depth_limit() {
    let depth = 10_000;
    let mut xml = format!("<Discharge xmlns=\"{NAMESPACE}\">");
    for _ in 1..depth {
        xml.push_str("<Discharge>");
    }
    for _ in 0..depth {
        xml.push_str("</Discharge>");
    }
    assert!(xml.len() < XML_BYTES_MAX);
    let e = refused(&xml);
    match &e {
        XmlError::LimitExceeded { limit, max, path } => {
            assert_eq!(*limit, "XML_DEPTH_MAX");
            assert_eq!(*max, XML_DEPTH_MAX);
            assert_eq!(path.matches("/Discharge").count(), XML_DEPTH_MAX + 1);
        }
        other => panic!("{other}"),
    }
    assert_eq!(e.code(), "MALFORMED");
}

#[test]
fn too_many_elements_stop_at_the_element_limit() {
    let mut xml = format!("<TransitDeclaration xmlns=\"{NAMESPACE}\">");
    for _ in 0..XML_ELEMENTS_MAX {
        xml.push_str("<a/>");
    }
    xml.push_str("</TransitDeclaration>");
    assert!(xml.len() < XML_BYTES_MAX);
    let e = refused(&xml);
    assert!(
        matches!(
            e,
            XmlError::LimitExceeded {
                limit: "XML_ELEMENTS_MAX",
                max: XML_ELEMENTS_MAX,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.code(), "MALFORMED");
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let padding = " ".repeat(XML_BYTES_MAX);
    let xml = release().replace(
        "</ReleaseForTransit>",
        &format!("{padding}</ReleaseForTransit>"),
    );
    let e = refused(&xml);
    assert_eq!(
        e,
        XmlError::TooLarge {
            max: XML_BYTES_MAX,
            actual: xml.len()
        }
    );
    assert_eq!(e.code(), "MALFORMED");
    // Text longer than the per-element cap is refused even within the size limit.
    let xml = declaration().replace("Riz blanchi", &"é".repeat(XML_TEXT_LEN_MAX));
    assert!(matches!(
        refused(&xml),
        XmlError::LimitExceeded {
            limit: "XML_TEXT_LEN_MAX",
            ..
        }
    ));
}

#[test]
fn invalid_utf8_is_refused_with_its_offset() {
    let mut bytes = release().into_bytes();
    let at = bytes.len() - 30;
    bytes[at] = 0xFF;
    let e = decode_inbound(&bytes).unwrap_err();
    assert_eq!(e, XmlError::InvalidUtf8 { offset: at });
    assert_eq!(e.code(), "MALFORMED");
    // Latin-1 declared: refused, the message set is UTF-8 only.
    let e = refused(&release().replace("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\""));
    assert!(matches!(e, XmlError::BadDeclaration { .. }), "{e}");
}

#[test]
fn wrong_or_missing_namespace_is_refused() {
    let e = refused(&release().replace(NAMESPACE, "urn:ecowas:transit-ledger:v2"));
    assert_eq!(
        e,
        XmlError::WrongNamespace {
            path: "/ReleaseForTransit".to_owned(),
            found: "urn:ecowas:transit-ledger:v2".to_owned(),
            expected: NAMESPACE,
        }
    );
    assert_eq!(e.code(), "VALIDATION");
    let e = refused(&release().replace(&format!(" xmlns=\"{NAMESPACE}\""), ""));
    assert!(
        matches!(e, XmlError::WrongNamespace { ref found, .. } if found.is_empty()),
        "{e}"
    );
    // A prefixed root in the right namespace is the same document and is accepted.
    let prefixed = release()
        .replace(
            &format!(" xmlns=\"{NAMESPACE}\""),
            &format!(" xmlns:tl=\"{NAMESPACE}\""),
        )
        .replace("<", "<tl:")
        .replace("<tl:/", "</tl:")
        .replace("<tl:?xml", "<?xml");
    assert_eq!(
        decode_inbound(prefixed.as_bytes()).unwrap(),
        journey(base(), 1).release
    );
    // A child in another namespace is refused by its path.
    let e = refused(&release().replace(
        "  <MRN>",
        "  <x:MRN xmlns:x=\"urn:example:x\">24TGLOME0000000017</x:MRN>\n  <MRN>",
    ));
    assert!(
        matches!(e, XmlError::WrongNamespace { ref path, .. } if path == "/ReleaseForTransit/MRN"),
        "{e}"
    );
}

#[test]
fn a_bad_mrn_check_character_names_the_element() {
    let e = refused(&release().replace("24TGLOME0000000017", "24TGLOME0000000016"));
    assert_eq!(e.code(), "VALIDATION");
    assert_eq!(e.path(), Some("/ReleaseForTransit/MRN"));
    assert_eq!(
        e.to_string(),
        "invalid value at /ReleaseForTransit/MRN: invalid MRN: check character is '6', expected '7'"
    );
}

#[test]
fn missing_duplicated_unknown_and_misplaced_elements_name_their_path() {
    let e = refused(&release().replace("  <MRN>24TGLOME0000000017</MRN>\n", ""));
    assert_eq!(
        e.to_string(),
        "missing required element /ReleaseForTransit/MRN (found /ReleaseForTransit/ReleaseDateAndTime instead)"
    );
    assert_eq!(e.code(), "VALIDATION");

    let e = refused(&release().replace(
        "  <MRN>24TGLOME0000000017</MRN>\n",
        "  <MRN>24TGLOME0000000017</MRN>\n  <MRN>24TGLOME0000000017</MRN>\n",
    ));
    assert_eq!(
        e,
        XmlError::DuplicateElement {
            path: "/ReleaseForTransit/MRN[2]".to_owned()
        }
    );

    let e = refused(&declaration().replace(
        "<NetMass>6400000</NetMass>",
        "<NetMass>6400000</NetMass><Colour>red</Colour>",
    ));
    assert_eq!(
        e,
        XmlError::UnexpectedElement {
            path: "/TransitDeclaration/GoodsItem[2]/Colour".to_owned()
        }
    );

    let e = refused(&declaration().replace("<CommodityCode>271019<", "<CommodityCode>2710AB<"));
    assert_eq!(
        e.path(),
        Some("/TransitDeclaration/GoodsItem[2]/CommodityCode")
    );

    let e = refused(&declaration().replace("<SealsNumber>2<", "<SealsNumber>3<"));
    assert_eq!(
        e.path(),
        Some("/TransitDeclaration/TransportEquipment/SealsNumber")
    );

    let e = refused(&declaration().replace(" currency=\"XOF\">85000000", ">85000000"));
    assert_eq!(
        e,
        XmlError::MissingAttribute {
            name: "currency",
            path: "/TransitDeclaration/CustomsValue".to_owned()
        }
    );
    let e =
        refused(&declaration().replace(" currency=\"XOF\">85000000", " currency=\"XXX\">85000000"));
    assert_eq!(e.path(), Some("/TransitDeclaration/CustomsValue/@currency"));

    let e = refused(&release().replace("<MRN>", "<MRN kind=\"x\">"));
    assert!(
        matches!(e, XmlError::UnexpectedAttribute { ref name, .. } if name == "kind"),
        "{e}"
    );

    let e = refused(&release().replace("<Sender>", "<Sender>stray text"));
    assert_eq!(
        e,
        XmlError::UnexpectedText {
            path: "/ReleaseForTransit/Sender".to_owned()
        }
    );
}

#[test]
fn outbound_and_unknown_roots_are_not_inbound_messages() {
    let e = refused(&release().replace("ReleaseForTransit", "Acknowledgement"));
    assert!(
        matches!(e, XmlError::UnknownMessage { ref name, .. } if name == "Acknowledgement"),
        "{e}"
    );
    assert_eq!(e.code(), "VALIDATION");
}

#[test]
fn syntax_errors_are_malformed() {
    for (what, xml) in [
        ("unclosed", release().replace("</ReleaseForTransit>", "")),
        ("mismatched end", release().replace("</MRN>", "</MRX>")),
        (
            "two roots",
            format!("{}{}", release(), "<ReleaseForTransit/>"),
        ),
        ("empty", String::new()),
        ("text after root", format!("{}trailing", release())),
        (
            "attribute twice",
            release().replace("<MRN>", "<MRN a=\"1\" a=\"2\">"),
        ),
    ] {
        let e = refused(&xml);
        assert_eq!(e.code(), "MALFORMED", "{what}: {e}");
    }
}

#[test]
fn text_survives_escaping_and_control_characters_become_replacement_characters() {
    let mut m = journey(base(), 1).declaration;
    if let transit_contract::MessageBody::TransitDeclaration(d) = &mut m.body {
        d.goods[0].description = "  a<b>&c \"d\" 'e'\r\n\tfin ".to_owned();
    }
    assert_eq!(decode_inbound(&encode_inbound(&m)).unwrap(), m);
    if let transit_contract::MessageBody::TransitDeclaration(d) = &mut m.body {
        d.goods[0].description = "bell\u{7}".to_owned();
    }
    let back = decode_inbound(&encode_inbound(&m)).unwrap();
    match back.body {
        transit_contract::MessageBody::TransitDeclaration(d) => {
            assert_eq!(d.goods[0].description, "bell\u{FFFD}")
        }
        _ => unreachable!(),
    }
}
