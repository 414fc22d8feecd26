//! Error positions: 1-based line and column (in characters), right for the last object of a large
//! file and after multi-byte text.

use wfp_policy::Policy;

#[test]
fn error_position_counts_characters_not_bytes() {
    let text =
        "# ünïcödé comment\nfilter = [ { name = \"üü\", layer = \"NOPE\", action = \"BLOCK\" } ]\n";
    let e = Policy::parse(text, "p.toml").expect_err("unknown layer");
    assert_eq!(e.span().line, 2, "{e}");
    let line = text.lines().nth(1).expect("line 2");
    let at = line.find("\"NOPE\"").expect("value");
    assert_eq!(e.span().column, line[..at].chars().count() + 1, "{e}");
}

#[test]
fn the_last_of_many_filters_reports_its_own_line() {
    let n = 5000;
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            "[[filter]]\nname = \"f{i}\"\nlayer = \"OUTBOUND_TRANSPORT_V4\"\naction = \"BLOCK\"\n\n"
        ));
    }
    text.push_str("[[filter]]\nname = \"last\"\nlayer = \"NOPE\"\naction = \"BLOCK\"\n");
    let e = Policy::parse(&text, "big.toml").expect_err("unknown layer");
    assert_eq!(e.span().line, 5 * n + 3, "{e}");
    assert_eq!(e.span().column, 9, "{e}");
    assert_eq!(e.field(), format!("filter[{n}].layer"), "{e}");
}
