//! Typed reading of a parsed element tree: children in schema order (unknown, missing,
//! duplicated and out-of-order elements are errors naming the path) and leaf values parsed
//! into the contract's checked types.

use std::str::FromStr;

use transit_contract::{Currency, IdError, Money, Timestamp};

use crate::error::XmlError;
use crate::parse::Node;

/// Trims XML whitespace, as the `xs:token`-based schema types do.
fn trim_xml(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

fn no_attributes(node: &Node) -> Result<(), XmlError> {
    match node.attributes.first() {
        Some((name, _)) => Err(XmlError::UnexpectedAttribute {
            name: name.clone(),
            path: node.path.clone(),
        }),
        None => Ok(()),
    }
}

fn no_children(node: &Node) -> Result<(), XmlError> {
    match node.children.first() {
        Some(child) => Err(XmlError::UnexpectedElement {
            path: child.path.clone(),
        }),
        None => Ok(()),
    }
}

/// The children of a complex element, consumed in the order the schema's `xs:sequence` gives.
pub(crate) struct Children<'a> {
    parent: &'a Node,
    next: usize,
}

impl<'a> Children<'a> {
    /// Starts reading an element that holds only elements (no attributes, no text).
    pub(crate) fn of(parent: &'a Node) -> Result<Self, XmlError> {
        no_attributes(parent)?;
        if !trim_xml(&parent.text).is_empty() {
            return Err(XmlError::UnexpectedText {
                path: parent.path.clone(),
            });
        }
        Ok(Children { parent, next: 0 })
    }

    fn peek(&self) -> Option<&'a Node> {
        self.parent.children.get(self.next)
    }

    /// The next child if it has this name; an error if a second one follows.
    pub(crate) fn optional(&mut self, name: &str) -> Result<Option<&'a Node>, XmlError> {
        match self.peek() {
            Some(node) if node.name == name => {
                self.next += 1;
                if let Some(again) = self.peek().filter(|n| n.name == name) {
                    return Err(XmlError::DuplicateElement {
                        path: again.path.clone(),
                    });
                }
                Ok(Some(node))
            }
            _ => Ok(None),
        }
    }

    /// The next child, which must have this name.
    pub(crate) fn required(&mut self, name: &str) -> Result<&'a Node, XmlError> {
        match self.optional(name)? {
            Some(node) => Ok(node),
            None => Err(XmlError::MissingElement {
                path: format!("{}/{}", self.parent.path, name),
                found: self.peek().map(|n| n.path.clone()),
            }),
        }
    }

    /// Every consecutive child with this name (possibly none). Counts are left to the
    /// contract's `validate()`, as for JSON; the element limit bounds them meanwhile.
    pub(crate) fn many(&mut self, name: &str) -> Vec<&'a Node> {
        let mut out = Vec::new();
        while let Some(node) = self.peek().filter(|n| n.name == name) {
            out.push(node);
            self.next += 1;
        }
        out
    }

    /// Ends the element: anything left is unknown or out of order.
    pub(crate) fn finish(self) -> Result<(), XmlError> {
        match self.peek() {
            Some(node) => Err(XmlError::UnexpectedElement {
                path: node.path.clone(),
            }),
            None => Ok(()),
        }
    }

    /// `required(name)` then a leaf value of it.
    pub(crate) fn id<T: FromStr<Err = IdError>>(&mut self, name: &str) -> Result<T, XmlError> {
        id(self.required(name)?)
    }

    /// `optional(name)` then a leaf value of it.
    pub(crate) fn id_opt<T: FromStr<Err = IdError>>(
        &mut self,
        name: &str,
    ) -> Result<Option<T>, XmlError> {
        self.optional(name)?.map(id).transpose()
    }

    pub(crate) fn timestamp(&mut self, name: &str) -> Result<Timestamp, XmlError> {
        timestamp(self.required(name)?)
    }

    pub(crate) fn timestamp_opt(&mut self, name: &str) -> Result<Option<Timestamp>, XmlError> {
        self.optional(name)?.map(timestamp).transpose()
    }

    pub(crate) fn boolean(&mut self, name: &str) -> Result<bool, XmlError> {
        boolean(self.required(name)?)
    }

    pub(crate) fn money(&mut self, name: &str) -> Result<Money, XmlError> {
        money(self.required(name)?)
    }

    /// Free text that may be empty: an absent element reads as the empty string.
    pub(crate) fn text_or_empty(&mut self, name: &str) -> Result<String, XmlError> {
        Ok(self
            .optional(name)?
            .map(free_text)
            .transpose()?
            .unwrap_or_default())
    }

    pub(crate) fn text(&mut self, name: &str) -> Result<String, XmlError> {
        free_text(self.required(name)?)
    }
}

/// The text of a leaf element, verbatim (free text keeps its spaces).
pub(crate) fn free_text(node: &Node) -> Result<String, XmlError> {
    no_attributes(node)?;
    no_children(node)?;
    Ok(node.text.clone())
}

/// The whitespace-trimmed text of a leaf element.
pub(crate) fn token(node: &Node) -> Result<&str, XmlError> {
    no_attributes(node)?;
    no_children(node)?;
    Ok(trim_xml(&node.text))
}

/// A checked contract identifier.
pub(crate) fn id<T: FromStr<Err = IdError>>(node: &Node) -> Result<T, XmlError> {
    token(node)?
        .parse()
        .map_err(|e| XmlError::invalid_id(&node.path, &e))
}

/// An `xs:dateTime` in UTC (`Z` suffix required, as the schema's pattern says).
pub(crate) fn timestamp(node: &Node) -> Result<Timestamp, XmlError> {
    let s = token(node)?;
    if !s.ends_with('Z') || s.as_bytes().get(10) != Some(&b'T') {
        return Err(XmlError::invalid(
            &node.path,
            format!("{s:?} is not a UTC date and time like 2024-03-01T08:00:00Z"),
        ));
    }
    s.parse()
        .map_err(|e: IdError| XmlError::invalid_id(&node.path, &e))
}

/// An `xs:boolean`: `true`, `false`, `1` or `0`.
pub(crate) fn boolean(node: &Node) -> Result<bool, XmlError> {
    match token(node)? {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(XmlError::invalid(
            &node.path,
            format!("{other:?} is not a boolean (true, false, 1, 0)"),
        )),
    }
}

/// Digits only, as the schema's integer patterns say (no sign, no decimal point).
fn digits<T: FromStr>(path: &str, s: &str) -> Result<T, XmlError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(XmlError::invalid(
            path,
            format!("{s:?} is not a non-negative integer"),
        ));
    }
    s.parse()
        .map_err(|_| XmlError::invalid(path, format!("{s} is out of range")))
}

pub(crate) fn unsigned<T: FromStr>(node: &Node) -> Result<T, XmlError> {
    digits(&node.path, token(node)?)
}

/// An amount in minor units with its `currency` attribute: `<X currency="XOF">100</X>`.
pub(crate) fn money(node: &Node) -> Result<Money, XmlError> {
    no_children(node)?;
    let mut currency = None;
    for (name, value) in &node.attributes {
        if name == "currency" {
            currency = Some(value);
        } else {
            return Err(XmlError::UnexpectedAttribute {
                name: name.clone(),
                path: node.path.clone(),
            });
        }
    }
    let currency = currency.ok_or_else(|| XmlError::MissingAttribute {
        name: "currency",
        path: node.path.clone(),
    })?;
    let currency: Currency = trim_xml(currency)
        .parse()
        .map_err(|e| XmlError::invalid_id(&format!("{}/@currency", node.path), &e))?;
    let amount: i64 = digits(&node.path, trim_xml(&node.text))?;
    Money::new(amount, currency).map_err(|e| XmlError::invalid(&node.path, e.to_string()))
}

/// A decimal number of degrees with at most 7 decimals, as an integer of 10^-7 degrees.
pub(crate) fn degrees_e7(node: &Node) -> Result<i32, XmlError> {
    let s = token(node)?;
    let bad = || {
        XmlError::invalid(
            &node.path,
            format!("{s:?} is not a decimal number of degrees with at most 7 decimals"),
        )
    };
    let (negative, unsigned) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if int.is_empty()
        || int.len() > 3
        || frac.len() > 7
        || (unsigned.contains('.') && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let int: i64 = int.parse().map_err(|_| bad())?;
    let frac_value: i64 = if frac.is_empty() {
        0
    } else {
        let scale = 10_i64.pow(7 - frac.len() as u32);
        frac.parse::<i64>().map_err(|_| bad())? * scale
    };
    let magnitude = int * 10_000_000 + frac_value;
    let value = if negative { -magnitude } else { magnitude };
    i32::try_from(value).map_err(|_| bad())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn leaf(text: &str) -> Node {
        Node {
            name: "Latitude".to_owned(),
            path: "/Incident/Location/Latitude".to_owned(),
            attributes: Vec::new(),
            text: text.to_owned(),
            children: Vec::new(),
        }
    }

    #[test]
    fn degrees_are_exact_decimals() {
        for (text, e7) in [
            ("6.4261000", 64_261_000),
            ("6.4261", 64_261_000),
            ("-0.0000001", -1),
            ("90", 900_000_000),
            ("-180.0000000", -1_800_000_000),
            (" 12.5 ", 125_000_000),
        ] {
            assert_eq!(degrees_e7(&leaf(text)).unwrap(), e7, "{text}");
        }
        for bad in [
            "",
            "-",
            "1.",
            ".5",
            "1.12345678",
            "1e3",
            "+1",
            "1234",
            "999.9999999x",
        ] {
            assert!(degrees_e7(&leaf(bad)).is_err(), "{bad:?}");
        }
        // Three integer digits can exceed an i32 of 10^-7 degrees: refused, never wrapped.
        assert!(degrees_e7(&leaf("999.9999999")).is_err());
    }

    #[test]
    fn integers_and_booleans_follow_the_schema_lexical_forms() {
        assert_eq!(unsigned::<u32>(&leaf(" 440 ")).unwrap(), 440);
        for bad in ["-1", "+1", "1.0", "", "4294967296"] {
            assert!(unsigned::<u32>(&leaf(bad)).is_err(), "{bad:?}");
        }
        assert!(boolean(&leaf("1")).unwrap());
        assert!(!boolean(&leaf("false")).unwrap());
        assert!(boolean(&leaf("TRUE")).is_err());
        assert!(timestamp(&leaf("2024-03-01T08:00:00Z")).is_ok());
        assert!(timestamp(&leaf("2024-03-01T09:00:00+01:00")).is_err());
        assert!(timestamp(&leaf("2024-03-01 08:00:00Z")).is_err());
    }
}
