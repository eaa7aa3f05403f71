//! An HTTP/1.1 client whose keep-alive pool never surfaces a
//! stale-connection error for a request that is safe to send again.

pub(crate) mod wire;
