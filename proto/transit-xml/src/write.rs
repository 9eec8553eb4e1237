//! The indented XML writer the encoders share: UTF-8, two-space indentation, the message set's
//! namespace on the root, so that samples stay readable and diffs stay small.

use transit_contract::{Money, Timestamp};

use crate::parse::is_xml_char;
use crate::NAMESPACE;

/// Escapes character data. Hand-written rather than `quick_xml::escape` because two more
/// things are needed: a carriage return is written as `&#13;` so that it survives the parser's
/// line-end normalisation, and a character XML 1.0 cannot carry at all (a control character
/// that came in through JSON) becomes U+FFFD, so the output is always well formed.
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            c if !is_xml_char(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// Builds one message document.
pub(crate) struct XmlWriter {
    out: String,
    stack: Vec<&'static str>,
}

impl XmlWriter {
    /// Starts a document whose root element is `root`.
    pub(crate) fn new(root: &'static str) -> Self {
        let mut out = String::with_capacity(4096);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push('<');
        out.push_str(root);
        out.push_str(" xmlns=\"");
        out.push_str(NAMESPACE);
        out.push_str("\">\n");
        XmlWriter {
            out,
            stack: vec![root],
        }
    }

    fn indent(&mut self) {
        for _ in 0..self.stack.len() {
            self.out.push_str("  ");
        }
    }

    /// Opens a complex element; [`Self::close`] ends it.
    pub(crate) fn open(&mut self, name: &'static str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str(">\n");
        self.stack.push(name);
    }

    /// Closes the innermost open element.
    pub(crate) fn close(&mut self) {
        if let Some(name) = self.stack.pop() {
            self.indent();
            self.out.push_str("</");
            self.out.push_str(name);
            self.out.push_str(">\n");
        }
    }

    /// A complex element with no content, e.g. a choice marker `<GoodsNotArrived/>`.
    pub(crate) fn empty(&mut self, name: &'static str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str("/>\n");
    }

    fn leaf_with(&mut self, name: &str, attribute: Option<(&str, &str)>, value: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        if let Some((key, v)) = attribute {
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("=\"");
            escape_into(&mut self.out, v);
            self.out.push('"');
        }
        self.out.push('>');
        escape_into(&mut self.out, value);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// A simple element with text content.
    pub(crate) fn leaf(&mut self, name: &str, value: impl AsRef<str>) {
        self.leaf_with(name, None, value.as_ref());
    }

    pub(crate) fn leaf_opt<T: AsRef<str>>(&mut self, name: &str, value: Option<T>) {
        if let Some(v) = value {
            self.leaf(name, v);
        }
    }

    /// Free text that may be empty: an empty value is left out (it reads back as empty).
    pub(crate) fn text_or_empty(&mut self, name: &str, value: &str) {
        if !value.is_empty() {
            self.leaf(name, value);
        }
    }

    pub(crate) fn timestamp(&mut self, name: &str, t: &Timestamp) {
        self.leaf(name, t.to_rfc3339());
    }

    pub(crate) fn timestamp_opt(&mut self, name: &str, t: Option<&Timestamp>) {
        if let Some(t) = t {
            self.timestamp(name, t);
        }
    }

    pub(crate) fn boolean(&mut self, name: &str, b: bool) {
        self.leaf(name, if b { "true" } else { "false" });
    }

    pub(crate) fn number(&mut self, name: &str, n: impl ToString) {
        self.leaf(name, n.to_string());
    }

    pub(crate) fn money(&mut self, name: &str, m: &Money) {
        self.leaf_with(
            name,
            Some(("currency", m.currency().as_str())),
            &m.amount_minor().to_string(),
        );
    }

    /// Degrees * 10^7 as an exact decimal with 7 places (no float on the way).
    pub(crate) fn degrees_e7(&mut self, name: &str, value: i32) {
        let v = i64::from(value);
        let sign = if v < 0 { "-" } else { "" };
        let a = v.abs();
        self.leaf(
            name,
            format!("{sign}{}.{:07}", a / 10_000_000, a % 10_000_000),
        );
    }

    /// Closes the root and returns the document.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        while !self.stack.is_empty() {
            self.close();
        }
        self.out.into_bytes()
    }
}
