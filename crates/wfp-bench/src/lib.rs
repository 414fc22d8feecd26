//! # wfp-bench — classifier benchmarks and their rule-set loaders
//!
//! The home of the filter-index benchmarks: loaders that turn public packet-classification rule
//! sets (ClassBench) into WFP filters and incoming values, and the benchmark targets that time the
//! engine's per-sublayer index against a tight linear scan in the same process, checking every
//! answer equal.
//!
//! It is never linked into a production crate (`publish = false`): it is the only crate that
//! enables `wfp-core`'s hidden `bench-internals` feature. The library performs no I/O (callers
//! read the rule files and pass their text); only the bench targets and tests read
//! `../shared/data/classbench` and a clock.
//!
//! ```text
//!  rule file ─► classbench::parse_rules ─► Rule ─► classbench::filter_spec ─► FilterSpec
//!                                                        │ Engine::begin / add_filter / commit
//!                                                        ▼
//!  trace file ─► classbench::parse_trace ─► Header   committed sublayer (bench_internals::
//!                    │ classbench::header_values          sublayer_filters)
//!                    ▼                                    │
//!               incoming values ──► Index::next_match  vs  scan  (benches/classify.rs: B1)
//! ```
//!
//! Module map:
//! - [`classbench`] — ClassBench rule and trace files, as WFP filters and incoming values.
//! - [`fallback`] — the same rules with an application-id condition on every other filter.
//! - [`hard`] — the generator of hard sets (nearly every rule its own prefix-length/range shape).
//! - [`linear`] — the benchmark baseline: a tight linear scan over pre-decoded rules.
//!
//! The `wfp-bench` binary (`src/bin/wfp-bench/`) measures one rule set end to end: lookups,
//! build, memory, single-filter commits, a 1,000-filter transaction and a reader under a
//! committing writer (`cargo run --release -p wfp-bench -- classbench RULES [TRACE] [--json]`).

pub mod classbench;
pub mod fallback;
pub mod hard;
pub mod linear;
