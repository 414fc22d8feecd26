//! The sublayer index equals the linear scan on a ClassBench rule set and its trace (moved here from
//! `wfp-core`'s index tests with the ClassBench loader). Data: `../shared/data/classbench/`
//! relative to the workspace root; the test prints a note and passes when it is absent.

use wfp_bench::classbench;
use wfp_core::index::bench_internals::{scan, sublayer_filters, Index};
use wfp_core::Engine;

fn classbench_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/classbench")
}

/// Loads `rules` into an engine in one transaction; the committed sublayer's filters (one
/// sublayer), in evaluation order.
fn load(rules: &[classbench::Rule]) -> Vec<std::sync::Arc<wfp_core::RtFilter>> {
    let engine = Engine::default();
    let mut tx = engine.begin();
    for (i, r) in rules.iter().enumerate() {
        tx.add_filter(classbench::filter_spec(r, i, rules.len()))
            .expect("filter is valid");
    }
    tx.commit();
    let mut subs = sublayer_filters(&engine, classbench::LAYER);
    assert_eq!(subs.len(), 1, "one sublayer");
    subs.swap_remove(0)
}

#[test]
fn classbench_acl1_1k_trace_equals_scan() {
    let dir = classbench_dir();
    let (Ok(rules), Ok(trace)) = (
        std::fs::read_to_string(dir.join("acl1_1k")),
        std::fs::read_to_string(dir.join("acl1_1k_trace")),
    ) else {
        eprintln!(
            "note: {} not found; skipping the ClassBench equivalence test",
            dir.display()
        );
        return;
    };
    let rules = classbench::parse_rules(&rules).expect("rules parse");
    let trace = classbench::parse_trace(&trace).expect("trace parses");
    assert_eq!(rules.len(), 878);
    let filters = &load(&rules);
    assert_eq!(filters.len(), rules.len());
    let index = Index::build(classbench::LAYER, filters).expect("layer");
    assert!(index.stats().tables > 0);
    for h in &trace {
        let v = classbench::header_values(h);
        let first = index.next_match(filters, &v, 0);
        assert_eq!(first, scan(filters, &v, 0), "{h:?}");
        // The header was generated from rule `h.rule`: the first match is at or before it.
        assert!(first.is_some_and(|i| i <= h.rule), "{h:?}");
        // The lazily continued sequence too (a callout returning CONTINUE).
        let mut from = first.map_or(filters.len(), |i| i + 1);
        for _ in 0..2 {
            let next = index.next_match(filters, &v, from);
            assert_eq!(next, scan(filters, &v, from), "{h:?} from {from}");
            from = next.map_or(filters.len(), |i| i + 1);
        }
    }
}

/// Every bundled rule set (fw1_100k in release builds only): its trace (or, without one, headers from rule corners), sampled so the
/// debug-build run stays short (about 1,500 headers per set, all of them at 1k), each answer of the
/// index compared with the tight linear scan over pre-decoded rules, and on a smaller sample with
/// the engine's reference scan (first answer and the continued ones).
#[test]
fn every_bundled_classbench_set_equals_the_scans() {
    use wfp_bench::{hard, linear::TightScan};
    let dir = classbench_dir();
    let sets = [
        "acl1_1k", "fw1_1k", "ipc1_1k", "acl1_10k", "fw1_10k", "ipc1_10k", "fw1_100k",
    ];
    let mut ran = 0;
    for name in sets {
        // Loading 92k filters takes about a minute in a debug build: release builds only.
        if name == "fw1_100k" && cfg!(debug_assertions) {
            eprintln!("note: {name} compared only in release builds (cargo test --release)");
            continue;
        }
        let Ok(text) = std::fs::read_to_string(dir.join(name)) else {
            eprintln!("note: {name} not found in {}; skipped", dir.display());
            continue;
        };
        let rules = classbench::parse_rules(&text).expect("rules parse");
        let headers = match std::fs::read_to_string(dir.join(format!("{name}_trace"))) {
            Ok(t) => classbench::parse_trace(&t).expect("trace parses"),
            Err(_) => hard::corner_headers(&rules, 1, 11),
        };
        let filters = &load(&rules);
        assert_eq!(filters.len(), rules.len(), "{name}");
        let index = Index::build(classbench::LAYER, filters).expect("layer");
        let tight = TightScan::new(&rules);
        let step = (headers.len() / 1_500).max(1);
        for (k, h) in headers.iter().step_by(step).enumerate() {
            let v = classbench::header_values(h);
            let got = index.next_match(filters, &v, 0);
            assert_eq!(got, tight.first_match(h), "{name}: {h:?}");
            // The reference scan costs milliseconds at 100k in a debug build: a sample.
            if k % (1 + rules.len() / 2_000) == 0 {
                assert_eq!(got, scan(filters, &v, 0), "{name}: {h:?}");
                let from = got.map_or(filters.len(), |i| i + 1);
                assert_eq!(
                    index.next_match(filters, &v, from),
                    scan(filters, &v, from),
                    "{name}: {h:?} from {from}"
                );
            }
        }
        ran += 1;
    }
    eprintln!("{ran} ClassBench sets compared");
}

/// A generated hard set (every rule its own shape): the index equals both scans.
#[test]
fn a_hard_set_equals_the_scans() {
    use wfp_bench::{hard, linear::TightScan};
    let rules = hard::generate(3_000, 5);
    let headers = hard::corner_headers(&rules, 1, 6);
    let filters = &load(&rules);
    let index = Index::build(classbench::LAYER, filters).expect("layer");
    let tight = TightScan::new(&rules);
    for (k, h) in headers.iter().enumerate() {
        let v = classbench::header_values(h);
        let got = index.next_match(filters, &v, 0);
        assert_eq!(got, tight.first_match(h), "{h:?}");
        assert!(got.is_some_and(|i| i <= h.rule), "{h:?}");
        if k % 10 == 0 {
            assert_eq!(got, scan(filters, &v, 0), "{h:?}");
        }
    }
}

/// The worst case the merged tables guard: a generated hard set large enough for several merge
/// epochs (4,096 boxes and more; see `tuple.rs`), with the first and the continued answers (as
/// for CONTINUE) compared with both scans.
#[test]
fn a_hard_set_over_several_merge_epochs_equals_the_scans() {
    use wfp_bench::{hard, linear::TightScan};
    let rules = hard::generate(8_500, 21);
    let headers = hard::corner_headers(&rules, 1, 22);
    let filters = &load(&rules);
    let index = Index::build(classbench::LAYER, filters).expect("layer");
    assert!(
        index.stats().tables > 64,
        "merged tables, one set per epoch"
    );
    let tight = TightScan::new(&rules);
    for (k, h) in headers.iter().enumerate().step_by(2) {
        let v = classbench::header_values(h);
        let got = index.next_match(filters, &v, 0);
        assert_eq!(got, tight.first_match(h), "{h:?}");
        if k % 20 == 0 {
            let mut from = 0;
            for _ in 0..4 {
                let next = index.next_match(filters, &v, from);
                assert_eq!(next, scan(filters, &v, from), "{h:?} from {from}");
                from = next.map_or(filters.len(), |i| i + 1);
            }
        }
    }
}
