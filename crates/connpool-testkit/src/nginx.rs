//! nginx for interop tests (being written).
