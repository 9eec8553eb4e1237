//! Text -> `SubmissionSignature` (the `Transit-Signature` header and `transitSignature`
//! broker property): parsing must never panic, and a parsed signature's text form must parse
//! back to the same signature and be a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use transit_auth::{KeyId, SubmissionSignature};

fuzz_target!(|data: &[u8]| {
    // Header values reach the parser as text; the edge refuses non-UTF-8 bytes before it.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(sig) = text.parse::<SubmissionSignature>() {
        let shown = sig.to_string();
        let again: SubmissionSignature = shown
            .parse()
            .unwrap_or_else(|e| panic!("the text form {shown:?} does not parse: {e}"));
        assert_eq!(again, sig, "parse(display(s)) != s");
        assert_eq!(again.to_string(), shown, "the text form is not stable");
    }
    if let Ok(key_id) = text.parse::<KeyId>() {
        let again: KeyId = key_id
            .as_str()
            .parse()
            .unwrap_or_else(|e| panic!("the key id {key_id} does not parse again: {e}"));
        assert_eq!(again, key_id);
    }
});
