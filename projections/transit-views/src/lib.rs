//! transit-views (in progress).
