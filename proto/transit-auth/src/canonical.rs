//! The bytes a submission signature covers.

use transit_contract::messages::InboundMessage;

/// Prefixed to the canonical JSON before signing, so that a signature over a submission can
/// never be replayed as a signature over anything else signed with the same key (and the
/// version names the canonical form).
pub const DOMAIN_SEPARATOR: &[u8] = b"transit-ledger/submission/v1\n";

/// The canonical JSON of a message: the typed value serialised with `serde_json` (fields in
/// schema order, no whitespace, `null` for absent optional fields, normalised identifiers).
/// Its SHA-256 is `InboundMessage::content_digest`.
pub fn canonical_json(msg: &InboundMessage) -> Vec<u8> {
    serde_json::to_vec(msg).expect("invariant: an inbound message always serialises to JSON")
}

/// What a submission signature signs: [`DOMAIN_SEPARATOR`] then [`canonical_json`].
pub fn signing_bytes(msg: &InboundMessage) -> Vec<u8> {
    let json = canonical_json(msg);
    let mut out = Vec::with_capacity(DOMAIN_SEPARATOR.len() + json.len());
    out.extend_from_slice(DOMAIN_SEPARATOR);
    out.extend_from_slice(&json);
    out
}
