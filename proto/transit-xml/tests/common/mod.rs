//! Helpers shared by the integration tests: where the schema lives and how to run xmllint.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// `schemas/xml/` at the root of the workspace.
pub(crate) fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/xml")
}

pub(crate) fn samples_dir() -> PathBuf {
    schema_dir().join("samples")
}

/// Runs `xmllint --noout --schema transit.xsd -` on `bytes`; returns (accepted, output).
/// Panics, never skips, when xmllint is missing: the schema check is part of the suite.
pub(crate) fn xmllint(bytes: &[u8]) -> (bool, String) {
    let xsd = schema_dir().join("transit.xsd");
    let child = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(&xsd)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!(
            "xmllint could not be started ({e}): install it with `apt-get install -y libxml2-utils` \
             (ops/test.sh does); the XSD check must run, it is never skipped"
        ),
    };
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(bytes)
        .expect("write to xmllint");
    let out = child.wait_with_output().expect("xmllint runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
