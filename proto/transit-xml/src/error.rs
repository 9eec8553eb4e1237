//! The one error type of the codec: what was wrong, where (an element path when known), and
//! which stable rejection code it maps to (`MALFORMED` or `VALIDATION`).

use transit_contract::IdError;

/// Why an XML message was refused.
///
/// Syntax and limit problems (the bytes are not a well-formed, reasonably sized XML document we
/// are willing to read) have [`XmlError::code`] `MALFORMED`; a well-formed document that does
/// not follow the schema (wrong namespace, unknown, missing or repeated elements, invalid
/// values) has `VALIDATION`, like a JSON message that fails to parse into the contract types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The message is larger than [`crate::XML_BYTES_MAX`].
    #[error("message is {actual} bytes, at most {max} allowed")]
    TooLarge { max: usize, actual: usize },
    /// The bytes are not UTF-8, the only encoding the message set uses.
    #[error("invalid UTF-8 at byte offset {offset}")]
    InvalidUtf8 { offset: usize },
    /// The XML parser refused the document.
    #[error("XML syntax error at byte offset {offset}: {reason}")]
    Syntax { offset: u64, reason: String },
    /// A document type declaration: refused outright, since DTDs are how external entities
    /// (XXE) and entity expansion bombs get in.
    #[error("DOCTYPE declarations are not allowed")]
    DoctypeRefused,
    /// A processing instruction other than the XML declaration at the very start.
    #[error("processing instruction {target:?} is not allowed")]
    ProcessingInstructionRefused { target: String },
    /// The XML declaration is misplaced or names another version or encoding.
    #[error("bad XML declaration: {reason}")]
    BadDeclaration { reason: String },
    /// An entity reference other than the 5 predefined ones and numeric character references.
    #[error("entity reference &{name}; is not allowed (only &lt; &gt; &amp; &apos; &quot; and numeric references) at {path}")]
    EntityRefused { name: String, path: String },
    /// A character that XML 1.0 does not allow (e.g. a control character).
    #[error("character U+{code_point:04X} is not allowed in XML 1.0 at {path}")]
    IllegalCharacter { code_point: u32, path: String },
    /// A named limit on the document's shape was exceeded.
    #[error("limit {limit} ({max}) exceeded at {path}")]
    LimitExceeded {
        limit: &'static str,
        max: usize,
        path: String,
    },
    /// Text or markup where the document has already ended, or before it began.
    #[error("content outside the root element: {reason}")]
    OutsideRoot { reason: String },
    /// The document has no root element.
    #[error("the document has no root element")]
    NoRoot,

    /// An element outside the message set's namespace (or in none).
    #[error("element {path} is in namespace {found:?}, expected {expected:?}")]
    WrongNamespace {
        path: String,
        found: String,
        expected: &'static str,
    },
    /// The root element is not a message of the expected direction.
    #[error("root element {name:?} is not {expected}")]
    UnknownMessage {
        name: String,
        expected: &'static str,
    },
    /// An element that the schema does not allow here (unknown, or out of order).
    #[error("unexpected element {path} (unknown here or out of order)")]
    UnexpectedElement { path: String },
    /// A required element is absent.
    #[error("missing required element {path}{}", found.as_ref().map(|f| format!(" (found {f} instead)")).unwrap_or_default())]
    MissingElement { path: String, found: Option<String> },
    /// An element that may appear once appears again.
    #[error("element {path} appears more than once")]
    DuplicateElement { path: String },
    /// Non-whitespace text inside an element that only holds elements.
    #[error("unexpected text in {path}")]
    UnexpectedText { path: String },
    /// An attribute the schema does not define on this element.
    #[error("unexpected attribute {name:?} on {path}")]
    UnexpectedAttribute { name: String, path: String },
    /// A required attribute is absent.
    #[error("missing attribute {name:?} on {path}")]
    MissingAttribute { name: &'static str, path: String },
    /// An element or attribute whose value is not valid for its type.
    #[error("invalid value at {path}: {reason}")]
    InvalidValue { path: String, reason: String },
}

impl XmlError {
    /// The ledger's stable rejection code: `MALFORMED` for syntax and limits, `VALIDATION` for
    /// schema-level problems.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. }
            | Self::InvalidUtf8 { .. }
            | Self::Syntax { .. }
            | Self::DoctypeRefused
            | Self::ProcessingInstructionRefused { .. }
            | Self::BadDeclaration { .. }
            | Self::EntityRefused { .. }
            | Self::IllegalCharacter { .. }
            | Self::LimitExceeded { .. }
            | Self::OutsideRoot { .. }
            | Self::NoRoot => "MALFORMED",
            Self::WrongNamespace { .. }
            | Self::UnknownMessage { .. }
            | Self::UnexpectedElement { .. }
            | Self::MissingElement { .. }
            | Self::DuplicateElement { .. }
            | Self::UnexpectedText { .. }
            | Self::UnexpectedAttribute { .. }
            | Self::MissingAttribute { .. }
            | Self::InvalidValue { .. } => "VALIDATION",
        }
    }

    /// The path of the offending element (or attribute, as `.../@name`), when known.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::EntityRefused { path, .. }
            | Self::IllegalCharacter { path, .. }
            | Self::LimitExceeded { path, .. }
            | Self::WrongNamespace { path, .. }
            | Self::UnexpectedElement { path }
            | Self::MissingElement { path, .. }
            | Self::DuplicateElement { path }
            | Self::UnexpectedText { path }
            | Self::UnexpectedAttribute { path, .. }
            | Self::MissingAttribute { path, .. }
            | Self::InvalidValue { path, .. } => Some(path),
            _ => None,
        }
    }

    pub(crate) fn invalid_id(path: &str, e: &IdError) -> Self {
        Self::InvalidValue {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    }

    pub(crate) fn invalid(path: &str, reason: impl Into<String>) -> Self {
        Self::InvalidValue {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}
