//! Benchmark B1 (classify vs linear scan) — being written.

fn main() {}
