//! fraud-signals (in progress).
