//! Criterion benchmarks for trustpool (see `benches/`), and [`fleet`]: a simulated fleet of
//! Keylime agents for load-testing an attestation server (binary `fleet`).

pub mod fleet;
