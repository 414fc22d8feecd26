//! Bad input gets an error, never a panic: random text and random mutations of real policy files.

use proptest::prelude::*;
use wfp_policy::Policy;

const EXAMPLE: &str = include_str!("../../../examples/policy.toml");
const REPLAY: &str = include_str!("../../../examples/replay/policy.toml");

fn try_policy(text: &str) {
    if let Ok(p) = Policy::parse(text, "fuzz.toml") {
        // Applying may fail (engine validation), but must not panic either.
        let _ = p.build_engine(&wfp_callouts::Host::new());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_text_never_panics(s in "\\PC{0,400}") {
        try_policy(&s);
    }

    #[test]
    fn mutated_policies_never_panic(which in 0usize..2, pos in 0usize..4000, len in 0usize..40, insert in "[\\[\\]{}=\",.#a-zA-Z0-9_ \n-]{0,20}") {
        let base = if which == 0 { EXAMPLE } else { REPLAY };
        let mut bytes = base.as_bytes().to_vec();
        let at = pos.min(bytes.len());
        let end = (at + len).min(bytes.len());
        bytes.splice(at..end, insert.bytes());
        if let Ok(text) = String::from_utf8(bytes) {
            try_policy(&text);
        }
    }
}
