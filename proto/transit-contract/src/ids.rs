//! Checked identifiers, money and time: a value of these types that exists has passed its checks.
//!
//! Every identifier parses with `FromStr`, prints with `Display`, and (de)serialises as a plain
//! JSON string that is validated again on the way in, so an invalid code can never enter the
//! ledger through a message or an event read back from storage.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// The length of an office code (an8).
const OFFICE_LEN: usize = 8;
/// The length of an MRN, check character included.
const MRN_LEN: usize = 18;
/// The longest guarantee reference.
const GRN_LEN_MAX: usize = 24;
/// The longest seal identifier (WCO an..35).
const SEAL_LEN_MAX: usize = 35;
/// The length of an HS subheading.
const HS_LEN: usize = 6;
/// The length of a UN/LOCODE.
const LOCODE_LEN: usize = 5;
/// The length of a package kind code.
const PACKAGE_KIND_LEN: usize = 2;
/// The longest message id.
const MESSAGE_ID_LEN_MAX: usize = 64;
/// The longest trader id (an..35).
const TRADER_LEN_MAX: usize = 35;
/// The longest vehicle identity.
const VEHICLE_LEN_MAX: usize = 20;
/// The length of an ISO 4217 alphabetic code.
const CURRENCY_LEN: usize = 3;

/// Why a value was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdErrorKind {
    /// The value was empty.
    Empty,
    /// The value is longer than the field allows.
    TooLong { max: usize, actual: usize },
    /// The value has a fixed length and this is not it.
    WrongLength { expected: usize, actual: usize },
    /// A character is not allowed at this position.
    InvalidCharacter { position: usize, character: char },
    /// The two letters are not an assigned ISO 3166-1 alpha-2 code.
    UnknownCountry(String),
    /// The three letters are not a currency this ledger knows.
    UnknownCurrency(String),
    /// An MRN whose last character is not the ISO 6346 check character of the first 17.
    CheckCharacterMismatch { expected: char, found: char },
    /// A number that is outside its range (HS chapter, timestamp year...).
    OutOfRange(String),
}

impl fmt::Display for IdErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "must not be empty"),
            Self::TooLong { max, actual } => {
                write!(f, "is {actual} characters long, at most {max} allowed")
            }
            Self::WrongLength { expected, actual } => {
                write!(
                    f,
                    "is {actual} characters long, exactly {expected} required"
                )
            }
            Self::InvalidCharacter {
                position,
                character,
            } => write!(
                f,
                "character {character:?} not allowed at position {position}"
            ),
            Self::UnknownCountry(c) => {
                write!(f, "{c:?} is not an assigned ISO 3166-1 alpha-2 code")
            }
            Self::UnknownCurrency(c) => write!(f, "{c:?} is not a supported ISO 4217 currency"),
            Self::CheckCharacterMismatch { expected, found } => {
                write!(f, "check character is {found:?}, expected {expected:?}")
            }
            Self::OutOfRange(why) => write!(f, "out of range: {why}"),
        }
    }
}

/// A value refused for an identifier field: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {kind}")]
pub struct IdError {
    /// The name of the identifier type (e.g. "MRN", "office code").
    pub field: &'static str,
    /// Why the value was refused.
    pub kind: IdErrorKind,
}

impl IdError {
    fn new(field: &'static str, kind: IdErrorKind) -> Self {
        Self { field, kind }
    }
}

/// Declares a string newtype with the shared boilerplate: the only way in is `check`.
///
/// `$check` validates (and, where the type says so, normalises) any text and explains a refusal;
/// `$fast` is a byte-level test that only answers "already valid and normalised", so that the
/// common case (every id read back from storage) costs one pass over the bytes and at most one
/// allocation. Anything `$fast` does not accept goes through `$check`, which decides, so `$fast`
/// must never accept a value that `$check` would refuse or change (tested below).
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $check:path, $fast:path) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The field name used in errors.
            pub const FIELD: &'static str = $field;

            /// The validated (and, where the type says so, normalised) text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                if $fast(s.as_bytes()) {
                    return Ok(Self(s.to_owned()));
                }
                $check(s)
                    .map(Self)
                    .map_err(|kind| IdError::new($field, kind))
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                if $fast(s.as_bytes()) {
                    return Ok(Self(s));
                }
                s.parse()
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_string(CheckedStringVisitor::<$name>::new())
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Character-class helpers shared by the checks below.

fn check_len_exact(s: &str, expected: usize) -> Result<(), IdErrorKind> {
    let actual = s.chars().count();
    if actual != expected {
        return Err(IdErrorKind::WrongLength { expected, actual });
    }
    Ok(())
}

fn check_len_range(s: &str, max: usize) -> Result<(), IdErrorKind> {
    let actual = s.chars().count();
    if actual == 0 {
        return Err(IdErrorKind::Empty);
    }
    if actual > max {
        return Err(IdErrorKind::TooLong { max, actual });
    }
    Ok(())
}

/// Checks every character of `s` (starting at `offset` for error positions) against `allowed`.
fn check_chars(s: &str, offset: usize, allowed: impl Fn(char) -> bool) -> Result<(), IdErrorKind> {
    match s.chars().enumerate().find(|(_, c)| !allowed(*c)) {
        Some((i, character)) => Err(IdErrorKind::InvalidCharacter {
            position: offset + i,
            character,
        }),
        None => Ok(()),
    }
}

fn is_upper_alnum(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit()
}

/// Splits at a char boundary known to be valid because the prefix was checked as ASCII first.
fn split_ascii(s: &str, at: usize) -> (&str, &str) {
    if s.is_char_boundary(at) {
        s.split_at(at)
    } else {
        (s, "")
    }
}

/// Deserialises a checked value from a JSON string without an intermediate `String`: it
/// accepts what serde's `String` accepts (a string, or bytes that are UTF-8) and refuses with
/// the value's own error, exactly as `#[serde(try_from = "String")]` would, but a borrowed
/// string is checked in place and copied once.
struct CheckedStringVisitor<T>(std::marker::PhantomData<fn() -> T>);

impl<T> CheckedStringVisitor<T> {
    fn new() -> Self {
        CheckedStringVisitor(std::marker::PhantomData)
    }
}

impl<T> Visitor<'_> for CheckedStringVisitor<T>
where
    T: FromStr<Err = IdError> + TryFrom<String, Error = IdError>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<T, E> {
        T::try_from(v).map_err(E::custom)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<T, E> {
        match std::str::from_utf8(v) {
            Ok(s) => self.visit_str(s),
            Err(_) => Err(E::invalid_value(Unexpected::Bytes(v), &self)),
        }
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<T, E> {
        match String::from_utf8(v) {
            Ok(s) => self.visit_string(s),
            Err(e) => Err(E::invalid_value(Unexpected::Bytes(&e.into_bytes()), &self)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Byte-level fast checks: each accepts only values its full check accepts unchanged.

fn is_upper_alnum_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

/// Two bytes that form an assigned ISO 3166-1 alpha-2 code.
fn is_country_bytes(a: u8, b: u8) -> bool {
    if !a.is_ascii_uppercase() || !b.is_ascii_uppercase() {
        return false;
    }
    COUNTRY_BITS
        .get(usize::from(a - b'A'))
        .is_some_and(|row| row & (1 << (b - b'A')) != 0)
}

fn fast_country(s: &[u8]) -> bool {
    matches!(s, [a, b] if is_country_bytes(*a, *b))
}

fn fast_office(s: &[u8]) -> bool {
    match s {
        [a, b, rest @ ..] => {
            s.len() == OFFICE_LEN
                && is_country_bytes(*a, *b)
                && rest.iter().all(|c| is_upper_alnum_byte(*c))
        }
        _ => false,
    }
}

fn fast_mrn(s: &[u8]) -> bool {
    let [y1, y2, c1, c2, ..] = s else {
        return false;
    };
    let (Some(body), Some(found)) = (s.get(..MRN_LEN - 1), s.get(MRN_LEN - 1)) else {
        return false;
    };
    s.len() == MRN_LEN
        && y1.is_ascii_digit()
        && y2.is_ascii_digit()
        && is_country_bytes(*c1, *c2)
        && iso6346_check_bytes(body) == Some(*found)
}

fn fast_grn(s: &[u8]) -> bool {
    match s {
        [y1, y2, c1, c2, rest @ ..] => {
            s.len() <= GRN_LEN_MAX
                && !rest.is_empty()
                && y1.is_ascii_digit()
                && y2.is_ascii_digit()
                && is_country_bytes(*c1, *c2)
                && rest.iter().all(|c| is_upper_alnum_byte(*c))
        }
        _ => false,
    }
}

fn fast_seal(s: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= SEAL_LEN_MAX
        && s.iter()
            .all(|c| is_upper_alnum_byte(*c) || *c == b'-' || *c == b'/')
}

fn fast_hs(s: &[u8]) -> bool {
    match s {
        [a, b, ..] => {
            s.len() == HS_LEN
                && s.iter().all(u8::is_ascii_digit)
                && matches!((a - b'0') * 10 + (b - b'0'), 1..=76 | 78..=97)
        }
        _ => false,
    }
}

fn fast_locode(s: &[u8]) -> bool {
    match s {
        [a, b, rest @ ..] => {
            s.len() == LOCODE_LEN
                && is_country_bytes(*a, *b)
                && rest
                    .iter()
                    .all(|c| c.is_ascii_uppercase() || (b'2'..=b'9').contains(c))
        }
        _ => false,
    }
}

fn fast_package_kind(s: &[u8]) -> bool {
    s.len() == PACKAGE_KIND_LEN && s.iter().all(|c| is_upper_alnum_byte(*c))
}

fn fast_message_id(s: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= MESSAGE_ID_LEN_MAX
        && s.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
}

fn fast_trader(s: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= TRADER_LEN_MAX
        && s.iter().all(|c| is_upper_alnum_byte(*c) || *c == b'-')
}

fn fast_vehicle(s: &[u8]) -> bool {
    // Already trimmed: no leading or trailing space (and so not empty).
    match (s.first(), s.last()) {
        (Some(first), Some(last)) => {
            *first != b' '
                && *last != b' '
                && s.len() <= VEHICLE_LEN_MAX
                && s.iter()
                    .all(|c| is_upper_alnum_byte(*c) || *c == b'-' || *c == b' ')
        }
        _ => false,
    }
}

fn fast_currency(s: &[u8]) -> bool {
    s.len() == CURRENCY_LEN && CURRENCIES.iter().any(|(code, _)| code.as_bytes() == s)
}

// ---------------------------------------------------------------------------------------------
// Countries.

/// The 249 officially assigned ISO 3166-1 alpha-2 codes, sorted for binary search.
/// User-assigned codes such as XK (used for Kosovo) and EU customs extras such as XI are
/// deliberately absent: a national customs system of the corridor never sends them.
const ISO_3166_ALPHA2: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// The assigned codes as a bitmap: bit `second - 'A'` of row `first - 'A'`.
const COUNTRY_BITS: [u32; 26] = country_bits();

const fn country_bits() -> [u32; 26] {
    let mut bits = [0_u32; 26];
    let mut i = 0;
    while i < ISO_3166_ALPHA2.len() {
        let code = ISO_3166_ALPHA2[i].as_bytes();
        bits[(code[0] - b'A') as usize] |= 1 << (code[1] - b'A');
        i += 1;
    }
    bits
}

fn check_country(s: &str) -> Result<String, IdErrorKind> {
    check_len_exact(s, 2)?;
    check_chars(s, 0, |c| c.is_ascii_uppercase())?;
    if !fast_country(s.as_bytes()) {
        return Err(IdErrorKind::UnknownCountry(s.to_owned()));
    }
    Ok(s.to_owned())
}

string_id!(
    /// An ISO 3166-1 alpha-2 country code, checked against the list of assigned codes.
    CountryCode,
    "country code",
    check_country,
    fast_country
);

impl CountryCode {
    /// Every assigned code, for callers that need to enumerate (e.g. a simulator).
    pub fn all() -> impl Iterator<Item = CountryCode> {
        ISO_3166_ALPHA2.iter().map(|c| CountryCode((*c).to_owned()))
    }
}

// ---------------------------------------------------------------------------------------------
// Offices, MRN, GRN.

fn check_office(s: &str) -> Result<String, IdErrorKind> {
    check_len_exact(s, OFFICE_LEN)?;
    check_chars(s, 0, |c| c.is_ascii())?;
    let (country, rest) = split_ascii(s, 2);
    check_chars(country, 0, |c| c.is_ascii_uppercase())?;
    check_country(country)?;
    check_chars(rest, 2, is_upper_alnum)?;
    Ok(s.to_owned())
}

string_id!(
    /// A customs office code (an8: the country's alpha-2 code then 6 upper-case alphanumerics),
    /// e.g. `TG000101` for the port of Lomé in this project's fixtures.
    OfficeCode,
    "office code",
    check_office,
    fast_office
);

impl OfficeCode {
    /// The country the office belongs to (its first two letters).
    pub fn country(&self) -> CountryCode {
        CountryCode(self.0[..2].to_owned())
    }
}

/// ISO 6346 value of a character: digits are themselves, letters start at A=10 and skip the
/// multiples of 11 so that no letter's value is congruent to 0 mod 11 by itself.
fn iso6346_value(c: char) -> Option<u32> {
    if let Some(d) = c.to_digit(10) {
        return Some(d);
    }
    if !c.is_ascii_uppercase() {
        return None;
    }
    let mut value = 10;
    for letter in 'A'..='Z' {
        if value % 11 == 0 {
            value += 1;
        }
        if letter == c {
            return Some(value);
        }
        value += 1;
    }
    None
}

/// ISO 6346 values of the bytes `'0'..='Z'` (0 where the byte has none), from `iso6346_value`'s
/// rule; a test compares the two.
const ISO6346_VALUES: [u8; 43] = iso6346_values();

const fn iso6346_values() -> [u8; 43] {
    let mut values = [0_u8; 43];
    let mut d = 0;
    while d < 10 {
        values[d] = d as u8;
        d += 1;
    }
    let mut value = 10;
    let mut letter = 0;
    while letter < 26 {
        if value % 11 == 0 {
            value += 1;
        }
        values[(b'A' - b'0') as usize + letter] = value;
        value += 1;
        letter += 1;
    }
    values
}

/// The ISO 6346 check character (an ASCII digit) of upper-case alphanumeric bytes, `None` if
/// a byte is not one (or there are more than 32 of them).
fn iso6346_check_bytes(s: &[u8]) -> Option<u8> {
    if s.len() > 32 {
        return None;
    }
    let mut sum: u64 = 0;
    for (i, c) in s.iter().enumerate() {
        if !is_upper_alnum_byte(*c) {
            return None;
        }
        let value = ISO6346_VALUES.get(usize::from(c - b'0'))?;
        sum += u64::from(*value) << i;
    }
    // `sum % 11 % 10` is below 10, so this is one ASCII digit.
    Some(b'0' + (sum % 11 % 10) as u8)
}

/// ISO 6346 check digit over `s`: sum of value * 2^position, mod 11, then mod 10.
fn iso6346_check(s: &str) -> Result<char, IdErrorKind> {
    let mut sum: u64 = 0;
    for (i, c) in s.chars().enumerate() {
        let value = iso6346_value(c).ok_or(IdErrorKind::InvalidCharacter {
            position: i,
            character: c,
        })?;
        // Positions are at most 17, so 2^i * 38 * 18 fits easily in a u64.
        sum += u64::from(value) << i;
    }
    let digit = (sum % 11 % 10) as u32;
    char::from_digit(digit, 10).ok_or(IdErrorKind::OutOfRange("check digit".to_owned()))
}

fn check_mrn_body(s: &str) -> Result<(), IdErrorKind> {
    check_len_exact(s, MRN_LEN - 1)?;
    check_chars(s, 0, |c| c.is_ascii())?;
    let (year, rest) = split_ascii(s, 2);
    check_chars(year, 0, |c| c.is_ascii_digit())?;
    let (country, serial) = split_ascii(rest, 2);
    check_chars(country, 2, |c| c.is_ascii_uppercase())?;
    check_country(country)?;
    check_chars(serial, 4, is_upper_alnum)?;
    Ok(())
}

fn check_mrn(s: &str) -> Result<String, IdErrorKind> {
    check_len_exact(s, MRN_LEN)?;
    check_chars(s, 0, |c| c.is_ascii())?;
    let (body, found) = split_ascii(s, MRN_LEN - 1);
    check_mrn_body(body)?;
    check_chars(found, 17, is_upper_alnum)?;
    let expected = iso6346_check(body)?;
    let found = found.chars().next().unwrap_or(' ');
    if expected != found {
        return Err(IdErrorKind::CheckCharacterMismatch { expected, found });
    }
    Ok(s.to_owned())
}

string_id!(
    /// A Movement Reference Number: 2-digit year, country of departure, 13 upper-case
    /// alphanumerics and an ISO 6346 check character, as the EU's NCTS computes it.
    Mrn,
    "MRN",
    check_mrn,
    fast_mrn
);

impl Mrn {
    /// The check character of the first 17 characters of an MRN.
    pub fn check_character(first17: &str) -> Result<char, IdError> {
        check_mrn_body(first17).map_err(|kind| IdError::new(Self::FIELD, kind))?;
        iso6346_check(first17).map_err(|kind| IdError::new(Self::FIELD, kind))
    }

    /// Builds an MRN from its parts, computing the check character.
    /// `year` is the two-digit year (0..=99); `serial13` is 13 upper-case alphanumerics.
    pub fn from_parts(year: u8, country: CountryCode, serial13: &str) -> Result<Mrn, IdError> {
        if year > 99 {
            return Err(IdError::new(
                Self::FIELD,
                IdErrorKind::OutOfRange(format!("year {year} has more than two digits")),
            ));
        }
        let body = format!("{year:02}{country}{serial13}");
        let check = Self::check_character(&body)?;
        format!("{body}{check}").parse()
    }

    /// The country of departure (characters 3 and 4).
    pub fn country(&self) -> CountryCode {
        CountryCode(self.0[2..4].to_owned())
    }

    /// The two-digit year of acceptance (0..=99).
    pub fn year(&self) -> u8 {
        self.0
            .bytes()
            .take(2)
            .fold(0, |acc, b| acc * 10 + (b - b'0'))
    }
}

fn check_grn(s: &str) -> Result<String, IdErrorKind> {
    check_len_range(s, GRN_LEN_MAX)?;
    check_chars(s, 0, |c| c.is_ascii())?;
    if s.len() < 5 {
        return Err(IdErrorKind::OutOfRange(
            "needs a 2-digit year, a country code and 1 to 20 alphanumerics".to_owned(),
        ));
    }
    let (year, rest) = split_ascii(s, 2);
    check_chars(year, 0, |c| c.is_ascii_digit())?;
    let (country, serial) = split_ascii(rest, 2);
    check_chars(country, 2, |c| c.is_ascii_uppercase())?;
    check_country(country)?;
    check_chars(serial, 4, is_upper_alnum)?;
    Ok(s.to_owned())
}

string_id!(
    /// A Guarantee Reference Number: 2-digit year, country code, then 1 to 20 upper-case
    /// alphanumerics (24 characters at most).
    GuaranteeReference,
    "guarantee reference",
    check_grn,
    fast_grn
);

impl GuaranteeReference {
    /// The country where the guarantee was accepted.
    pub fn country(&self) -> CountryCode {
        CountryCode(self.0[2..4].to_owned())
    }
}

// ---------------------------------------------------------------------------------------------
// Seals, goods, places, parties.

fn check_seal(s: &str) -> Result<String, IdErrorKind> {
    let s = s.trim().to_ascii_uppercase();
    check_len_range(&s, SEAL_LEN_MAX)?;
    check_chars(&s, 0, |c| is_upper_alnum(c) || c == '-' || c == '/')?;
    Ok(s)
}

string_id!(
    /// A seal identifier (WCO an..35), normalised to upper case so that the same seal read at
    /// departure, at the border and at destination compares equal.
    SealId,
    "seal id",
    check_seal,
    fast_seal
);

fn check_hs(s: &str) -> Result<String, IdErrorKind> {
    check_len_exact(s, HS_LEN)?;
    check_chars(s, 0, |c| c.is_ascii_digit())?;
    let chapter: u8 = s[..2]
        .parse()
        .map_err(|_| IdErrorKind::OutOfRange(s.to_owned()))?;
    // Chapter 77 is reserved for future use in the Harmonized System; 98 and 99 are national.
    if !(1..=97).contains(&chapter) || chapter == 77 {
        return Err(IdErrorKind::OutOfRange(format!(
            "HS chapter {chapter:02} does not exist"
        )));
    }
    Ok(s.to_owned())
}

string_id!(
    /// A 6-digit Harmonized System subheading, e.g. `100630` (semi-milled or wholly milled rice).
    HsCode,
    "HS code",
    check_hs,
    fast_hs
);

impl HsCode {
    /// The HS chapter (first two digits), 1..=97.
    pub fn chapter(&self) -> u8 {
        self.0
            .bytes()
            .take(2)
            .fold(0, |acc, b| acc * 10 + (b - b'0'))
    }

    /// The HS heading (first four digits), e.g. 1006 for rice.
    pub fn heading(&self) -> u16 {
        self.0
            .bytes()
            .take(4)
            .fold(0, |acc, b| acc * 10 + u16::from(b - b'0'))
    }
}

fn check_locode(s: &str) -> Result<String, IdErrorKind> {
    check_len_exact(s, LOCODE_LEN)?;
    check_chars(s, 0, |c| c.is_ascii())?;
    let (country, place) = split_ascii(s, 2);
    check_chars(country, 0, |c| c.is_ascii_uppercase())?;
    check_country(country)?;
    // UN/LOCODE place codes use letters and the digits 2-9 (0 and 1 are avoided as they read
    // like O and I).
    check_chars(place, 2, |c| {
        c.is_ascii_uppercase() || ('2'..='9').contains(&c)
    })?;
    Ok(s.to_owned())
}

string_id!(
    /// A UN/LOCODE: the country's alpha-2 code then 3 characters from A-Z and 2-9.
    UnLocode,
    "UN/LOCODE",
    check_locode,
    fast_locode
);

impl UnLocode {
    /// The country of the location.
    pub fn country(&self) -> CountryCode {
        CountryCode(self.0[..2].to_owned())
    }
}

fn check_package_kind(s: &str) -> Result<String, IdErrorKind> {
    check_len_exact(s, PACKAGE_KIND_LEN)?;
    check_chars(s, 0, is_upper_alnum)?;
    Ok(s.to_owned())
}

string_id!(
    /// A kind of package from UN/ECE Recommendation 21 (2 upper-case alphanumerics, e.g. `BG`
    /// for bag).
    PackageKindCode,
    "package kind code",
    check_package_kind,
    fast_package_kind
);

fn check_message_id(s: &str) -> Result<String, IdErrorKind> {
    check_len_range(s, MESSAGE_ID_LEN_MAX)?;
    check_chars(s, 0, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')
    })?;
    Ok(s.to_owned())
}

string_id!(
    /// The sender's identifier of one message: the idempotency key of the ledger.
    MessageId,
    "message id",
    check_message_id,
    fast_message_id
);

fn check_trader(s: &str) -> Result<String, IdErrorKind> {
    check_len_range(s, TRADER_LEN_MAX)?;
    check_chars(s, 0, |c| is_upper_alnum(c) || c == '-')?;
    Ok(s.to_owned())
}

string_id!(
    /// A trader identifier (a TIN or EORI-like number, an..35).
    TraderId,
    "trader id",
    check_trader,
    fast_trader
);

fn check_vehicle(s: &str) -> Result<String, IdErrorKind> {
    let s = s.trim().to_ascii_uppercase();
    check_len_range(&s, VEHICLE_LEN_MAX)?;
    check_chars(&s, 0, |c| is_upper_alnum(c) || c == '-' || c == ' ')?;
    Ok(s)
}

string_id!(
    /// A vehicle identity (a registration plate), normalised to upper case and trimmed, so that
    /// the same truck seen by two administrations compares equal.
    VehicleId,
    "vehicle id",
    check_vehicle,
    fast_vehicle
);

// ---------------------------------------------------------------------------------------------
// Currency and money.

/// The currencies this ledger accepts, with their ISO 4217 minor units. Short on purpose: the
/// ECOWAS currencies and the usual invoicing ones. Sorted for binary search.
const CURRENCIES: [(&str, u8); 16] = [
    ("CHF", 2),
    ("CNY", 2),
    ("CVE", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("GHS", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("LRD", 2),
    ("MRU", 2),
    ("NGN", 2),
    ("SLE", 2),
    ("USD", 2),
    ("XAF", 0),
    ("XOF", 0),
    ("XPF", 0),
];

fn currency_index(s: &str) -> Option<usize> {
    CURRENCIES.binary_search_by(|(code, _)| (*code).cmp(s)).ok()
}

fn check_currency(s: &str) -> Result<String, IdErrorKind> {
    check_len_exact(s, CURRENCY_LEN)?;
    check_chars(s, 0, |c| c.is_ascii_uppercase())?;
    if currency_index(s).is_none() {
        return Err(IdErrorKind::UnknownCurrency(s.to_owned()));
    }
    Ok(s.to_owned())
}

string_id!(
    /// An ISO 4217 alphabetic currency code from the ledger's list (XOF, XAF, GHS, NGN, EUR...).
    Currency,
    "currency",
    check_currency,
    fast_currency
);

impl Currency {
    /// The West African CFA franc, the currency of both Togo and Burkina Faso.
    pub fn xof() -> Currency {
        Currency("XOF".to_owned())
    }

    /// The number of decimal places of the minor unit (XOF: 0, EUR: 2).
    pub fn minor_units(&self) -> u8 {
        currency_index(&self.0)
            .and_then(|i| CURRENCIES.get(i))
            .map_or(2, |(_, units)| *units)
    }
}

/// Why a money value or operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Amounts carried by messages and events are never negative.
    #[error("amount {amount_minor} is negative")]
    Negative { amount_minor: i64 },
    /// Two amounts in different currencies were combined.
    #[error("currency mismatch: {left} and {right}")]
    CurrencyMismatch { left: Currency, right: Currency },
    /// The result does not fit in an i64 of minor units.
    #[error("amount overflow")]
    Overflow,
}

/// A non-negative amount in minor units of a currency. Never a float.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawMoney", into = "RawMoney")]
pub struct Money {
    amount_minor: i64,
    currency: Currency,
}

/// The wire form of [`Money`]; it only exists to route deserialisation through `Money::new`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawMoney {
    amount_minor: i64,
    currency: Currency,
}

impl TryFrom<RawMoney> for Money {
    type Error = MoneyError;
    fn try_from(raw: RawMoney) -> Result<Self, MoneyError> {
        Money::new(raw.amount_minor, raw.currency)
    }
}

impl From<Money> for RawMoney {
    fn from(m: Money) -> Self {
        RawMoney {
            amount_minor: m.amount_minor,
            currency: m.currency,
        }
    }
}

impl Money {
    /// A validated amount: refuses negative amounts.
    pub fn new(amount_minor: i64, currency: Currency) -> Result<Money, MoneyError> {
        if amount_minor < 0 {
            return Err(MoneyError::Negative { amount_minor });
        }
        Ok(Money {
            amount_minor,
            currency,
        })
    }

    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Money {
        Money {
            amount_minor: 0,
            currency,
        }
    }

    /// The amount in minor units (always >= 0).
    pub fn amount_minor(&self) -> i64 {
        self.amount_minor
    }

    /// The currency.
    pub fn currency(&self) -> &Currency {
        &self.currency
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.amount_minor == 0
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch {
                left: self.currency.clone(),
                right: other.currency.clone(),
            });
        }
        Ok(())
    }

    /// `self + other`, refusing mixed currencies and overflow.
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let amount_minor = self
            .amount_minor
            .checked_add(other.amount_minor)
            .ok_or(MoneyError::Overflow)?;
        Money::new(amount_minor, self.currency.clone())
    }

    /// `self - other`, refusing mixed currencies and a negative result.
    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let amount_minor = self
            .amount_minor
            .checked_sub(other.amount_minor)
            .ok_or(MoneyError::Overflow)?;
        Money::new(amount_minor, self.currency.clone())
    }
}

impl fmt::Display for Money {
    /// Prints the amount in major units without ever going through a float:
    /// `1500000 XOF`, `12.50 EUR`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = u32::from(self.currency.minor_units());
        if units == 0 {
            return write!(f, "{} {}", self.amount_minor, self.currency);
        }
        let scale = 10_i64.pow(units);
        write!(
            f,
            "{}.{:0width$} {}",
            self.amount_minor / scale,
            self.amount_minor % scale,
            self.currency,
            width = units as usize
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Time.

/// A point in time, always in UTC, serialised as an RFC 3339 string. Its year is kept within
/// 0000..=9999 so that it can always be printed as RFC 3339.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct Timestamp(OffsetDateTime);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_string(CheckedStringVisitor::<Timestamp>::new())
    }
}

impl Timestamp {
    /// The field name used in errors.
    pub const FIELD: &'static str = "timestamp";

    /// From a date-time with any offset; converted to UTC.
    pub fn from_offset_date_time(t: OffsetDateTime) -> Result<Timestamp, IdError> {
        let t = t.to_offset(UtcOffset::UTC);
        if !(0..=9999).contains(&t.year()) {
            return Err(IdError::new(
                Self::FIELD,
                IdErrorKind::OutOfRange(format!("year {} outside 0000..=9999", t.year())),
            ));
        }
        Ok(Timestamp(t))
    }

    /// From milliseconds since the Unix epoch.
    pub fn from_unix_millis(millis: i64) -> Result<Timestamp, IdError> {
        let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
            .map_err(|e| IdError::new(Self::FIELD, IdErrorKind::OutOfRange(e.to_string())))?;
        Self::from_offset_date_time(t)
    }

    /// Milliseconds since the Unix epoch (sub-millisecond precision is truncated).
    pub fn unix_millis(&self) -> i64 {
        // The year range 0..=9999 keeps this well inside i64.
        (self.0.unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// The underlying UTC date-time.
    pub fn as_offset_date_time(&self) -> OffsetDateTime {
        self.0
    }

    /// `self + d`, or `None` when it would leave the supported range.
    pub fn checked_add(&self, d: time::Duration) -> Option<Timestamp> {
        self.0
            .checked_add(d)
            .and_then(|t| Self::from_offset_date_time(t).ok())
    }

    /// The RFC 3339 text, e.g. `2024-03-01T08:00:00Z`.
    pub fn to_rfc3339(&self) -> String {
        self.0
            .format(&Rfc3339)
            .expect("invariant: a UTC timestamp with a year in 0..=9999 formats as RFC 3339")
    }
}

impl FromStr for Timestamp {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let t = OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| IdError::new(Self::FIELD, IdErrorKind::OutOfRange(e.to_string())))?;
        Self::from_offset_date_time(t)
    }
}

impl TryFrom<String> for Timestamp {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<Timestamp> for String {
    fn from(t: Timestamp) -> String {
        t.to_rfc3339()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn country_list_is_sorted_complete_and_checked() {
        assert_eq!(ISO_3166_ALPHA2.len(), 249);
        assert!(ISO_3166_ALPHA2.windows(2).all(|w| w[0] < w[1]));
        for ok in ["TG", "BF", "NE", "BJ", "CI", "ML", "GH", "NG"] {
            assert_eq!(ok.parse::<CountryCode>().unwrap().as_str(), ok);
        }
        for bad in ["XK", "ZZ", "tg", "T", "TGO", "", "UK"] {
            let e = bad.parse::<CountryCode>().unwrap_err();
            assert_eq!(e.field, "country code");
        }
    }

    #[test]
    fn country_bitmap_is_the_table() {
        for a in b'A'..=b'Z' {
            for b in b'A'..=b'Z' {
                let code = String::from_utf8(vec![a, b]).unwrap();
                assert_eq!(
                    is_country_bytes(a, b),
                    ISO_3166_ALPHA2.contains(&code.as_str()),
                    "{code}"
                );
            }
        }
        assert!(!is_country_bytes(b't', b'g'));
        assert!(!is_country_bytes(b'@', b'['));
    }

    #[test]
    fn iso6346_table_is_the_rule() {
        for c in ('0'..='9').chain('A'..='Z') {
            let byte = c as u8;
            assert_eq!(
                u32::from(ISO6346_VALUES[usize::from(byte - b'0')]),
                iso6346_value(c).unwrap()
            );
        }
        assert_eq!(iso6346_check_bytes(b"CSQU305438"), Some(b'3'));
        assert_eq!(iso6346_check_bytes(b"24TGLOME000000001"), Some(b'7'));
        assert_eq!(iso6346_check_bytes(b"24tg"), None);
    }

    /// Every single-character change of `valid` (from an alphabet with lower case, spaces,
    /// punctuation and a non-ASCII letter), every truncation and some extensions.
    fn neighbours(valid: &str) -> Vec<String> {
        let alphabet: Vec<char> = ('0'..='9')
            .chain('A'..='Z')
            .chain(['a', 'z', '-', '/', ' ', '\t', '.', '_', ':', '@', '[', 'é'])
            .collect();
        let chars: Vec<char> = valid.chars().collect();
        let mut out = vec![valid.to_owned(), String::new()];
        for pos in 0..chars.len() {
            for c in &alphabet {
                let mut changed = chars.clone();
                changed[pos] = *c;
                out.push(changed.iter().collect());
            }
            out.push(chars[..pos].iter().collect());
            let mut removed = chars.clone();
            removed.remove(pos);
            out.push(removed.iter().collect());
        }
        for c in &alphabet {
            out.push(format!("{valid}{c}"));
            out.push(format!("{c}{valid}"));
        }
        out.push(valid.repeat(3));
        out
    }

    /// The fast check never accepts what the full check refuses or would change, and accepts
    /// the valid samples (so the fast path is the one taken in practice).
    fn fast_is_a_subset_of_check(
        fast: fn(&[u8]) -> bool,
        check: fn(&str) -> Result<String, IdErrorKind>,
        valid: &[&str],
    ) {
        let mut fast_accepted = 0;
        for sample in valid {
            assert!(fast(sample.as_bytes()), "{sample}");
            for s in neighbours(sample) {
                if fast(s.as_bytes()) {
                    assert_eq!(check(&s), Ok(s.clone()), "{s:?}");
                    fast_accepted += 1;
                }
            }
        }
        assert!(fast_accepted >= valid.len());
    }

    #[test]
    fn fast_checks_only_accept_what_the_full_checks_accept_unchanged() {
        fast_is_a_subset_of_check(fast_country, check_country, &["TG", "BF", "ZW", "AD"]);
        fast_is_a_subset_of_check(fast_office, check_office, &["TG000101", "BFCIN001"]);
        fast_is_a_subset_of_check(
            fast_mrn,
            check_mrn,
            &["24TG00000000000006", "24TGLOME0000000017"],
        );
        fast_is_a_subset_of_check(
            fast_grn,
            check_grn,
            &["24TGGAR00000001", "24TG1", "24TG12345678901234567890"],
        );
        fast_is_a_subset_of_check(fast_seal, check_seal, &["TG-2024/0001", "S1", "A"]);
        fast_is_a_subset_of_check(fast_hs, check_hs, &["100630", "271019", "010101", "970000"]);
        fast_is_a_subset_of_check(fast_locode, check_locode, &["BFOUA", "TGLFW", "BF2A9"]);
        fast_is_a_subset_of_check(fast_package_kind, check_package_kind, &["BG", "1A"]);
        fast_is_a_subset_of_check(
            fast_message_id,
            check_message_id,
            &["msg-1:2_a.b", "m", &"x".repeat(64)],
        );
        fast_is_a_subset_of_check(fast_trader, check_trader, &["TG-1000123A", "T"]);
        fast_is_a_subset_of_check(fast_vehicle, check_vehicle, &["TG 1234 AB", "A-1"]);
        fast_is_a_subset_of_check(fast_currency, check_currency, &["XOF", "EUR", "CHF", "XPF"]);
        // The normalising types still normalise what the fast check passes over.
        assert_eq!(" tg 1 ".parse::<VehicleId>().unwrap().as_str(), "TG 1");
        assert_eq!("s1".parse::<SealId>().unwrap().as_str(), "S1");
        assert_eq!(
            VehicleId::try_from(" tg 1 ".to_owned()).unwrap().as_str(),
            "TG 1"
        );
    }

    #[test]
    fn ids_deserialise_like_a_checked_string() {
        // The same errors as `#[serde(try_from = "String")]`: the value's own, or serde's
        // "expected a string".
        let e = serde_json::from_str::<Mrn>(r#""24TG00000000000005""#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid MRN: check character is '5', expected '6' at line 1 column 20"
        );
        let e = serde_json::from_str::<OfficeCode>("12").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid type: integer `12`, expected a string at line 1 column 2"
        );
        let e = serde_json::from_str::<Timestamp>(r#""yesterday""#).unwrap_err();
        assert!(e.to_string().starts_with("invalid timestamp: "), "{e}");
        // Escaped strings (handed over as owned or scratch text) are checked the same way.
        let o: OfficeCode = serde_json::from_str(r#""TG\u0030001\u00301""#).unwrap();
        assert_eq!(o.as_str(), "TG000101");
        assert!(serde_json::from_str::<OfficeCode>(r#""TG00010\u0061""#).is_err());
        let v: VehicleId = serde_json::from_value(serde_json::json!(" tg 1 ")).unwrap();
        assert_eq!(v.as_str(), "TG 1");
        let m: Mrn = serde_json::from_value(serde_json::json!("24TG00000000000006")).unwrap();
        assert_eq!(m.as_str(), "24TG00000000000006");
        assert!(serde_json::from_value::<Mrn>(serde_json::json!("24TG00000000000005")).is_err());
        let t: Timestamp =
            serde_json::from_value(serde_json::json!("2024-03-01T08:00:00Z")).unwrap();
        assert_eq!(t.unix_millis(), 1_709_280_000_000);
        // Serialising writes the text as it is.
        assert_eq!(
            serde_json::to_string(&"tg-1".parse::<SealId>().unwrap()).unwrap(),
            r#""TG-1""#
        );
    }

    #[test]
    fn office_codes() {
        for ok in ["TG000101", "TGCIN001", "BFCIN001", "BFOUA001"] {
            let o: OfficeCode = ok.parse().unwrap();
            assert_eq!(o.country().as_str(), &ok[..2]);
        }
        for bad in [
            "ZZ000101",
            "TG00010",
            "TG0001011",
            "tg000101",
            "TG00010a",
            "TGé00101",
        ] {
            assert!(bad.parse::<OfficeCode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn iso6346_matches_the_standard_container_example() {
        // CSQU305438-3 is the worked example of ISO 6346.
        assert_eq!(iso6346_check("CSQU305438").unwrap(), '3');
        assert_eq!(iso6346_value('A'), Some(10));
        assert_eq!(iso6346_value('K'), Some(21));
        assert_eq!(iso6346_value('L'), Some(23));
        assert_eq!(iso6346_value('V'), Some(34));
        assert_eq!(iso6346_value('Z'), Some(38));
    }

    #[test]
    fn mrn_check_character_derived_by_hand() {
        // "24TG0000000000000": 2*1 + 4*2 + T(31)*4 + G(17)*8 = 2 + 8 + 124 + 136 = 270;
        // 270 mod 11 = 6; 6 mod 10 = 6.
        assert_eq!(Mrn::check_character("24TG0000000000000").unwrap(), '6');
        let mrn: Mrn = "24TG00000000000006".parse().unwrap();
        assert_eq!(mrn.year(), 24);
        assert_eq!(mrn.country().as_str(), "TG");
        // "24TGLOME000000001": the digits 2,4 then T=31, G=17, L=23, O=26, M=24, E=15 at
        // positions 2..=7 and a 1 at position 16: 2 + 8 + 124 + 136 + 368 + 832 + 1536 +
        // 1920 + 65536 = 70462; 70462 mod 11 = 7.
        assert_eq!(Mrn::check_character("24TGLOME000000001").unwrap(), '7');
        let built = Mrn::from_parts(24, "TG".parse().unwrap(), "LOME000000001").unwrap();
        assert_eq!(built.as_str(), "24TGLOME0000000017");
    }

    #[test]
    fn every_single_character_corruption_of_an_mrn_is_rejected() {
        // ISO 6346 works mod 11 over character values, so a substitution is invisible to it
        // exactly when the two characters' values are congruent mod 11 (e.g. '1', 'B' = 12 and
        // 'L' = 23). That is a property of the algorithm NCTS uses, not of this code: this test
        // enumerates every single-character corruption, requires all others to be rejected,
        // and requires the accepted ones to be exactly that documented class. The chosen MRN
        // has a sum residue of 7, so the final "mod 10" folding (10 -> 0) adds no collision.
        let valid = "24TGLOME0000000017";
        assert!(valid.parse::<Mrn>().is_ok());
        let alphabet: Vec<char> = ('0'..='9')
            .chain('A'..='Z')
            .chain(['a', '-', ' '])
            .collect();
        let mut rejected = 0;
        for (pos, original) in valid.chars().enumerate() {
            for c in &alphabet {
                if original == *c {
                    continue;
                }
                let mut chars: Vec<char> = valid.chars().collect();
                chars[pos] = *c;
                let corrupted: String = chars.into_iter().collect();
                let invisible_to_iso6346 = pos < 17
                    && match (iso6346_value(original), iso6346_value(*c)) {
                        (Some(a), Some(b)) => a % 11 == b % 11,
                        _ => false,
                    };
                // A letter in the year or an unassigned country is a format error anyway.
                let format_error = check_mrn_body(&corrupted[..17]).is_err();
                let accepted = corrupted.parse::<Mrn>().is_ok();
                if invisible_to_iso6346 && !format_error {
                    assert!(
                        accepted,
                        "expected the known ISO 6346 blind spot: {corrupted}"
                    );
                } else {
                    assert!(!accepted, "corruption accepted: {corrupted}");
                    rejected += 1;
                }
            }
        }
        assert!(rejected > 600, "{rejected}");
        // Every digit-for-digit substitution and every change of the check character is caught.
        for (pos, original) in valid.chars().enumerate() {
            for c in '0'..='9' {
                if c != original && (original.is_ascii_digit() || pos == 17) {
                    let mut chars: Vec<char> = valid.chars().collect();
                    chars[pos] = c;
                    let corrupted: String = chars.into_iter().collect();
                    assert!(corrupted.parse::<Mrn>().is_err(), "{corrupted}");
                }
            }
        }
    }

    #[test]
    fn mrn_shape_errors_name_the_field() {
        let e = "24TG0000000000000".parse::<Mrn>().unwrap_err();
        assert_eq!(e.field, "MRN");
        assert!(matches!(
            e.kind,
            IdErrorKind::WrongLength { expected: 18, .. }
        ));
        let e = "24TG00000000000005".parse::<Mrn>().unwrap_err();
        assert_eq!(
            e.kind,
            IdErrorKind::CheckCharacterMismatch {
                expected: '6',
                found: '5'
            }
        );
        assert!("24ZZ00000000000006".parse::<Mrn>().is_err());
        assert!(Mrn::from_parts(100, "TG".parse().unwrap(), "LOME000000001").is_err());
        assert!(Mrn::from_parts(24, "TG".parse().unwrap(), "LOME00000001").is_err());
    }

    #[test]
    fn guarantee_references() {
        let g: GuaranteeReference = "24TGGAR00000001".parse().unwrap();
        assert_eq!(g.country().as_str(), "TG");
        assert!("24TG".parse::<GuaranteeReference>().is_err());
        assert!("24TG123456789012345678901"
            .parse::<GuaranteeReference>()
            .is_err());
        assert!("24TG12345678901234567890"
            .parse::<GuaranteeReference>()
            .is_ok());
        assert!("2XTG1".parse::<GuaranteeReference>().is_err());
    }

    #[test]
    fn seals_and_vehicles_are_normalised() {
        let s: SealId = "tg-2024/0001".parse().unwrap();
        assert_eq!(s.as_str(), "TG-2024/0001");
        assert!("".parse::<SealId>().is_err());
        assert!("A".repeat(36).parse::<SealId>().is_err());
        assert!("AB_1".parse::<SealId>().is_err());
        let v: VehicleId = " tg 1234 ab ".parse().unwrap();
        assert_eq!(v.as_str(), "TG 1234 AB");
        assert!("A".repeat(21).parse::<VehicleId>().is_err());
    }

    #[test]
    fn hs_codes() {
        let h: HsCode = "100630".parse().unwrap();
        assert_eq!(h.chapter(), 10);
        assert_eq!(h.heading(), 1006);
        assert!("271019".parse::<HsCode>().is_ok());
        for bad in ["770000", "000000", "980000", "10063", "10063A"] {
            assert!(bad.parse::<HsCode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn locodes_and_small_codes() {
        assert_eq!(
            "BFOUA".parse::<UnLocode>().unwrap().country().as_str(),
            "BF"
        );
        assert!("BFOU1".parse::<UnLocode>().is_err());
        assert!("ZZOUA".parse::<UnLocode>().is_err());
        assert!("BG".parse::<PackageKindCode>().is_ok());
        assert!("B".parse::<PackageKindCode>().is_err());
        assert!("msg-1:2_a.b".parse::<MessageId>().is_ok());
        assert!("msg 1".parse::<MessageId>().is_err());
        assert!("x".repeat(65).parse::<MessageId>().is_err());
        assert!("TG-1000123A".parse::<TraderId>().is_ok());
        assert!("tg1".parse::<TraderId>().is_err());
    }

    #[test]
    fn currencies_and_money() {
        let xof = Currency::xof();
        assert_eq!(xof.minor_units(), 0);
        assert_eq!("EUR".parse::<Currency>().unwrap().minor_units(), 2);
        assert_eq!("GNF".parse::<Currency>().unwrap().minor_units(), 0);
        assert!("ABC".parse::<Currency>().is_err());
        assert!(CURRENCIES.windows(2).all(|w| w[0].0 < w[1].0));

        let a = Money::new(1_500_000, xof.clone()).unwrap();
        let b = Money::new(500_000, xof.clone()).unwrap();
        assert_eq!(a.checked_add(&b).unwrap().amount_minor(), 2_000_000);
        assert_eq!(a.checked_sub(&b).unwrap().amount_minor(), 1_000_000);
        assert!(matches!(
            b.checked_sub(&a),
            Err(MoneyError::Negative { .. })
        ));
        let max = Money::new(i64::MAX, xof.clone()).unwrap();
        assert_eq!(max.checked_add(&b), Err(MoneyError::Overflow));
        let eur = Money::new(1250, "EUR".parse().unwrap()).unwrap();
        assert!(matches!(
            a.checked_add(&eur),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        assert!(Money::new(-1, xof).is_err());
        assert_eq!(a.to_string(), "1500000 XOF");
        assert_eq!(eur.to_string(), "12.50 EUR");
    }

    #[test]
    fn money_serde_shape_and_validation() {
        let a = Money::new(1_500_000, Currency::xof()).unwrap();
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"{"amountMinor":1500000,"currency":"XOF"}"#);
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), a);
        assert!(serde_json::from_str::<Money>(r#"{"amountMinor":-1,"currency":"XOF"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amountMinor":1,"currency":"XXX"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amountMinor":1.5,"currency":"XOF"}"#).is_err());
    }

    #[test]
    fn ids_serde_validate_on_the_way_in() {
        assert_eq!(
            serde_json::to_string(&"TG000101".parse::<OfficeCode>().unwrap()).unwrap(),
            r#""TG000101""#
        );
        assert!(serde_json::from_str::<OfficeCode>(r#""ZZ000101""#).is_err());
        assert!(serde_json::from_str::<Mrn>(r#""24TG00000000000005""#).is_err());
        let v: VehicleId = serde_json::from_str(r#""tg 1234 ab""#).unwrap();
        assert_eq!(v.as_str(), "TG 1234 AB");
    }

    #[test]
    fn timestamps() {
        let t = Timestamp::from_unix_millis(1_709_280_000_123).unwrap();
        assert_eq!(t.to_string(), "2024-03-01T08:00:00.123Z");
        assert_eq!(t.unix_millis(), 1_709_280_000_123);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        // An offset is converted to UTC, so equal instants are equal values.
        let p: Timestamp = "2024-03-01T09:00:00.123+01:00".parse().unwrap();
        assert_eq!(p, t);
        assert!(Timestamp::from_unix_millis(1).unwrap() < t);
        assert!(Timestamp::from_unix_millis(i64::MAX).is_err());
        assert!("yesterday".parse::<Timestamp>().is_err());
        let later = t.checked_add(time::Duration::hours(1)).unwrap();
        assert_eq!(later.unix_millis() - t.unix_millis(), 3_600_000);
    }
}
