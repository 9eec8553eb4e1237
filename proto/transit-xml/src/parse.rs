//! The hostile-input reader: bytes -> a small element tree, enforcing every limit while parsing.
//!
//! The tree is built from quick-xml's event stream, never from a DOM library, so that nothing
//! is allocated beyond what the named limits allow: the input size is checked before parsing,
//! and depth, element count, attribute count and lengths, and text length are checked as each
//! event arrives. DTDs, entity declarations and processing instructions are refused before
//! they could be interpreted: quick-xml never expands entities itself, and this reader resolves
//! only the five predefined entities and numeric character references.

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;

use crate::error::XmlError;
use crate::{
    NAMESPACE, XML_ATTRIBUTES_PER_ELEMENT_MAX, XML_ATTRIBUTE_LEN_MAX, XML_BYTES_MAX, XML_DEPTH_MAX,
    XML_ELEMENTS_MAX, XML_NAMESPACE_BINDINGS_MAX, XML_NAME_LEN_MAX, XML_TEXT_LEN_MAX,
};

/// One element of a parsed message: local name (its namespace was checked), path from the root,
/// attributes (unprefixed, namespace declarations removed), text content and child elements.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) attributes: Vec<(String, String)>,
    pub(crate) text: String,
    pub(crate) children: Vec<Node>,
}

impl Node {
    fn new(name: String) -> Self {
        Node {
            name,
            path: String::new(),
            attributes: Vec::new(),
            text: String::new(),
            children: Vec::new(),
        }
    }
}

/// The path of an element still being parsed: the names on the stack, with a sibling index
/// when an earlier sibling had the same name (the final paths are assigned after parsing).
fn stack_path(stack: &[Node], name: Option<&str>) -> String {
    let mut path = String::new();
    let mut previous: Option<&Node> = None;
    let names = stack
        .iter()
        .map(|n| n.name.as_str())
        .chain(name)
        .collect::<Vec<_>>();
    for (i, n) in names.iter().enumerate() {
        path.push('/');
        path.push_str(n);
        if let Some(parent) = previous {
            let index = parent.children.iter().filter(|c| c.name == *n).count() + 1;
            if index > 1 {
                path.push_str(&format!("[{index}]"));
            }
        }
        previous = stack.get(i);
    }
    path
}

/// Assigns final paths: a sibling index appears when the parent has several children of that
/// name, so `/TransitDeclaration/GoodsItem[2]/CommodityCode` names exactly one element.
fn assign_paths(node: &mut Node, path: String) {
    // Counted once per parent, so a parent with thousands of children stays linear.
    let mut totals: BTreeMap<String, usize> = BTreeMap::new();
    for child in &node.children {
        *totals.entry(child.name.clone()).or_default() += 1;
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for child in &mut node.children {
        let index = seen.entry(child.name.clone()).or_default();
        *index += 1;
        let child_path = if totals.get(&child.name).copied().unwrap_or(0) > 1 {
            format!("{path}/{}[{index}]", child.name)
        } else {
            format!("{path}/{}", child.name)
        };
        assign_paths(child, child_path);
    }
    node.path = path;
}

/// XML 1.0 `Char`: tab, line feed, carriage return, and everything from U+0020 except the
/// surrogates (impossible in a Rust `char`) and U+FFFE / U+FFFF.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

fn check_chars(s: &str, path: impl Fn() -> String) -> Result<(), XmlError> {
    match s.chars().find(|c| !is_xml_char(*c)) {
        Some(c) => Err(XmlError::IllegalCharacter {
            code_point: u32::from(c),
            path: path(),
        }),
        None => Ok(()),
    }
}

fn is_xml_whitespace(s: &str) -> bool {
    s.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

fn syntax(reader: &NsReader<&[u8]>, e: &quick_xml::Error) -> XmlError {
    XmlError::Syntax {
        offset: reader.error_position(),
        reason: e.to_string(),
    }
}

fn limit(limit: &'static str, max: usize, path: String) -> XmlError {
    XmlError::LimitExceeded { limit, max, path }
}

/// Appends decoded character data to the element on top of the stack, within the text cap.
fn push_text(stack: &mut [Node], text: &str) -> Result<(), XmlError> {
    let path = || stack_path(stack, None);
    check_chars(text, path)?;
    let Some(top) = stack.last_mut() else {
        if is_xml_whitespace(text) {
            return Ok(());
        }
        return Err(XmlError::OutsideRoot {
            reason: "text outside the root element".to_owned(),
        });
    };
    if top.text.len() + text.len() > XML_TEXT_LEN_MAX {
        return Err(limit(
            "XML_TEXT_LEN_MAX",
            XML_TEXT_LEN_MAX,
            stack_path(stack, None),
        ));
    }
    top.text.push_str(text);
    Ok(())
}

/// Checks an opening tag (limits, namespace, attributes) and returns its node.
fn open_element(
    reader: &NsReader<&[u8]>,
    stack: &[Node],
    count: usize,
    start: &BytesStart<'_>,
) -> Result<Node, XmlError> {
    let (ns, local) = reader.resolver().resolve_element(start.name());
    let local = local.into_inner();
    if local.len() > XML_NAME_LEN_MAX {
        return Err(limit(
            "XML_NAME_LEN_MAX",
            XML_NAME_LEN_MAX,
            stack_path(stack, None),
        ));
    }
    // Built only when an error needs it: computing it scans the parent's children.
    let path = || stack_path(stack, Some(local));
    if stack.len() + 1 > XML_DEPTH_MAX {
        return Err(limit("XML_DEPTH_MAX", XML_DEPTH_MAX, path()));
    }
    if count + 1 > XML_ELEMENTS_MAX {
        return Err(limit("XML_ELEMENTS_MAX", XML_ELEMENTS_MAX, path()));
    }
    match ns {
        ResolveResult::Bound(Namespace(uri)) if uri == NAMESPACE => {}
        ResolveResult::Bound(Namespace(uri)) => {
            return Err(XmlError::WrongNamespace {
                path: path(),
                found: uri.to_owned(),
                expected: NAMESPACE,
            })
        }
        ResolveResult::Unbound => {
            return Err(XmlError::WrongNamespace {
                path: path(),
                found: String::new(),
                expected: NAMESPACE,
            })
        }
        ResolveResult::Unknown(prefix) => {
            return Err(XmlError::WrongNamespace {
                path: path(),
                found: format!("undeclared prefix {prefix}"),
                expected: NAMESPACE,
            })
        }
    }
    let mut node = Node::new(local.to_owned());
    let mut seen = 0;
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| XmlError::Syntax {
            offset: reader.buffer_position(),
            reason: e.to_string(),
        })?;
        seen += 1;
        if seen > XML_ATTRIBUTES_PER_ELEMENT_MAX {
            return Err(limit(
                "XML_ATTRIBUTES_PER_ELEMENT_MAX",
                XML_ATTRIBUTES_PER_ELEMENT_MAX,
                path(),
            ));
        }
        if attribute.value.len() > XML_ATTRIBUTE_LEN_MAX {
            return Err(limit(
                "XML_ATTRIBUTE_LEN_MAX",
                XML_ATTRIBUTE_LEN_MAX,
                path(),
            ));
        }
        // Namespace declarations were consumed by the resolver above.
        if attribute.key.as_namespace_binding().is_some() {
            continue;
        }
        let key = attribute.key.into_inner();
        // Prefixed attributes (xsi:type, xsi:schemaLocation...) could change how a schema
        // validator reads the message, so none is accepted.
        if key.contains(':') {
            return Err(XmlError::UnexpectedAttribute {
                name: key.to_owned(),
                path: path(),
            });
        }
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| match e {
                quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(
                    _,
                    name,
                )) => XmlError::EntityRefused {
                    name,
                    path: format!("{}/@{key}", path()),
                },
                other => XmlError::Syntax {
                    offset: reader.buffer_position(),
                    reason: other.to_string(),
                },
            })?;
        check_chars(&value, || format!("{}/@{key}", path()))?;
        node.attributes.push((key.to_owned(), value.into_owned()));
    }
    Ok(node)
}

/// Parses a whole message into its root element, enforcing every limit of the crate.
pub(crate) fn parse(bytes: &[u8]) -> Result<Node, XmlError> {
    if bytes.len() > XML_BYTES_MAX {
        return Err(XmlError::TooLarge {
            max: XML_BYTES_MAX,
            actual: bytes.len(),
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| XmlError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    // A byte order mark is allowed before the XML declaration; it carries no information here.
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);

    let mut reader = NsReader::from_str(text);
    {
        let config = reader.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        config.check_comments = true;
        config.allow_dangling_amp = false;
        config.allow_unmatched_ends = false;
        config.trim_text(false);
    }
    reader
        .resolver_mut()
        .set_max_namespace_bindings(XML_NAMESPACE_BINDINGS_MAX);

    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut count = 0_usize;
    let mut first_event = true;
    loop {
        let event = reader.read_event().map_err(|e| syntax(&reader, &e))?;
        let was_first = first_event;
        first_event = false;
        match event {
            Event::Decl(decl) => {
                if !was_first {
                    return Err(XmlError::BadDeclaration {
                        reason: "the XML declaration must come first".to_owned(),
                    });
                }
                let version = decl.version().map_err(|e| syntax(&reader, &e))?;
                if version.as_ref() != "1.0" {
                    return Err(XmlError::BadDeclaration {
                        reason: format!("version {version:?}, only \"1.0\" is accepted"),
                    });
                }
                if let Some(encoding) = decl.encoding() {
                    let encoding = encoding.map_err(|e| XmlError::BadDeclaration {
                        reason: e.to_string(),
                    })?;
                    if !encoding.eq_ignore_ascii_case("UTF-8") {
                        return Err(XmlError::BadDeclaration {
                            reason: format!("encoding {encoding:?}, only UTF-8 is accepted"),
                        });
                    }
                }
            }
            Event::DocType(_) => return Err(XmlError::DoctypeRefused),
            Event::PI(pi) => {
                return Err(XmlError::ProcessingInstructionRefused {
                    target: pi.target().chars().take(XML_NAME_LEN_MAX).collect(),
                })
            }
            Event::Comment(_) => {}
            Event::Start(start) => {
                if root.is_some() {
                    return Err(XmlError::OutsideRoot {
                        reason: "a second root element".to_owned(),
                    });
                }
                let node = open_element(&reader, &stack, count, &start)?;
                count += 1;
                stack.push(node);
            }
            Event::Empty(start) => {
                // Not produced with expand_empty_elements, handled anyway for robustness.
                if root.is_some() {
                    return Err(XmlError::OutsideRoot {
                        reason: "a second root element".to_owned(),
                    });
                }
                let node = open_element(&reader, &stack, count, &start)?;
                count += 1;
                close(&mut stack, &mut root, node);
            }
            Event::End(_) => {
                // quick-xml checked that the name matches the opening tag.
                let Some(node) = stack.pop() else {
                    return Err(XmlError::OutsideRoot {
                        reason: "a closing tag without an opening tag".to_owned(),
                    });
                };
                close(&mut stack, &mut root, node);
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content())?,
            Event::CData(c) => {
                if stack.is_empty() {
                    return Err(XmlError::OutsideRoot {
                        reason: "CDATA outside the root element".to_owned(),
                    });
                }
                push_text(&mut stack, &c.xml10_content())?;
            }
            Event::GeneralRef(r) => {
                if stack.is_empty() {
                    return Err(XmlError::OutsideRoot {
                        reason: "a reference outside the root element".to_owned(),
                    });
                }
                let resolved = if r.is_char_ref() {
                    let c = r
                        .resolve_char_ref()
                        .map_err(|e| syntax(&reader, &e))?
                        .ok_or_else(|| XmlError::Syntax {
                            offset: reader.buffer_position(),
                            reason: "bad character reference".to_owned(),
                        })?;
                    c.to_string()
                } else {
                    match r.as_ref() {
                        "lt" => "<",
                        "gt" => ">",
                        "amp" => "&",
                        "apos" => "'",
                        "quot" => "\"",
                        other => {
                            return Err(XmlError::EntityRefused {
                                name: other.chars().take(XML_NAME_LEN_MAX).collect(),
                                path: stack_path(&stack, None),
                            })
                        }
                    }
                    .to_owned()
                };
                push_text(&mut stack, &resolved)?;
            }
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Syntax {
            offset: reader.buffer_position(),
            reason: format!("unclosed element {}", stack_path(&stack, None)),
        });
    }
    let mut root = root.ok_or(XmlError::NoRoot)?;
    let path = format!("/{}", root.name);
    assign_paths(&mut root, path);
    Ok(root)
}

fn close(stack: &mut [Node], root: &mut Option<Node>, node: Node) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None => *root = Some(node),
    }
}
