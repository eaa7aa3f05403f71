//! Benchmarks of connpool beside its peers; see `benches/`. The library
//! part is empty: the crate exists so benchmarks build their dependencies
//! as users do (without connpool's test-only features).
