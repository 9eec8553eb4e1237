//! Whole-system tests live in `tests/`; `src/bin/crash-appender.rs` is the child process the
//! crash loop kills.
