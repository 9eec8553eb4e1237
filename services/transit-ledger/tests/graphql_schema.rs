//! The checked-in SDL (`schemas/graphql/schema.graphql`) must match the schema the code
//! builds, so a change of the API shows up in review. `UPDATE_SCHEMA=1` rewrites the file.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

fn sdl_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/graphql/schema.graphql")
}

#[test]
fn checked_in_sdl_matches_the_code() {
    let actual = transit_ledger::graphql::sdl();
    let path = sdl_path();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} differs from the schema the code builds; rerun with UPDATE_SCHEMA=1 and review the diff",
        path.display()
    );
}

#[test]
fn sdl_names_every_entry_point() {
    let sdl = transit_ledger::graphql::sdl();
    for name in [
        "movement(",
        "movements(",
        "guarantee(",
        "exposureByGuarantor",
        "fraudSignals(",
        "riskScore(",
        "corridorStats(",
        "checkpoint:",
        "movementUpdated(",
        "fraudSignalRaised:",
    ] {
        assert!(sdl.contains(name), "{name} missing from the SDL");
    }
}
