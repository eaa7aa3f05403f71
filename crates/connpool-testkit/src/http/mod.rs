//! An HTTP/1.1 fault server (being written).
