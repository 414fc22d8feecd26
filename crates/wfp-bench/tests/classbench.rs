//! The sublayer index equals the linear scan on a ClassBench rule set and its trace (moved here from
//! `wfp-core`'s index tests with the ClassBench loader). Data: `../shared/data/classbench/`
//! relative to the workspace root; the test prints a note and passes when it is absent.

use wfp_bench::classbench;
use wfp_core::index::bench_internals::{scan, sublayer_filters, Index};
use wfp_core::Engine;

fn classbench_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/classbench")
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
    let engine = Engine::default();
    let mut tx = engine.begin();
    for (i, r) in rules.iter().enumerate() {
        tx.add_filter(classbench::filter_spec(r, i, rules.len()))
            .expect("filter is valid");
    }
    tx.commit();
    let subs = sublayer_filters(&engine, classbench::LAYER);
    assert_eq!(subs.len(), 1);
    let filters = &subs[0];
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
