//! Criterion benchmarks for trustpool (see `benches/`).
