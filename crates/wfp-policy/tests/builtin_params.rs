//! Parameters of built-in callouts in policy files: `[builtin."NAME"]` tables and `[[callout]]`
//! `params`, what they change, where their errors point, and how a replace handles them.

use wfp_callouts::Host;
use wfp_core::callout::LayerData;
use wfp_core::catalogue::{self, layers};
use wfp_core::{ActionType, Engine, Guid, Metadata, Value};
use wfp_policy::{Policy, PolicyError};

/// A DNS query for `name` (type A, class IN): the UDP payload DATAGRAM_DATA indicates.
fn query(name: &str) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m
}

/// What the engine decides for an outbound DNS query for `name` at DATAGRAM_DATA_V4.
fn dns(engine: &Engine, name: &str) -> ActionType {
    let l = catalogue::layer(layers::DATAGRAM_DATA_V4).expect("layer");
    let mut values = vec![Value::Empty; l.fields.len()];
    values[l.field_index_by_name("IP_REMOTE_PORT").expect("field")] = Value::Uint16(53);
    values[l.field_index_by_name("IP_PROTOCOL").expect("field")] = Value::Uint8(17);
    let payload = query(name);
    engine
        .classify(
            layers::DATAGRAM_DATA_V4,
            &values,
            &Metadata::default(),
            &mut LayerData::Packet(&payload),
            None,
        )
        .action
}

const FILTER: &str = r#"
[[filter]]
name = "dns"
layer = "DATAGRAM_DATA_V4"
action = "CALLOUT_UNKNOWN"
callout = "wfp.dns-blocker"
condition = [ { field = "IP_REMOTE_PORT", value = 53 } ]
"#;

fn parse(src: &str) -> Result<Policy, PolicyError> {
    Policy::parse(src, "params.toml")
}

fn engine(src: &str) -> Engine {
    let p = parse(src).unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::default();
    p.apply(&engine, &Host::new())
        .unwrap_or_else(|e| panic!("{e}"));
    engine
}

fn error(src: &str) -> PolicyError {
    match parse(src) {
        Ok(_) => panic!("accepted:\n{src}"),
        Err(e) => e,
    }
}

#[test]
fn a_builtin_table_configures_implicit_callouts() {
    // Defaults: *.blocked.example.
    let e = engine(FILTER);
    assert_eq!(dns(&e, "ads.blocked.example"), ActionType::BLOCK);
    assert_eq!(dns(&e, "www.example.test"), ActionType::NONE_NO_MATCH);

    let src = format!(
        "[builtin.\"wfp.dns-blocker\"]\nname = [\"www.example.test\", \"*.ads.example\"]\n{FILTER}"
    );
    let e = engine(&src);
    assert_eq!(dns(&e, "www.example.test"), ActionType::BLOCK);
    assert_eq!(dns(&e, "x.ads.example"), ActionType::BLOCK);
    assert_eq!(dns(&e, "ads.blocked.example"), ActionType::NONE_NO_MATCH);

    // By key, a single string, comma-separated names.
    let src = format!(
        "[builtin.\"{{57465001-0000-4000-8000-000000000106}}\"]\nname = \"a.example, b.example\"\n{FILTER}"
    );
    let e = engine(&src);
    assert_eq!(dns(&e, "b.example"), ActionType::BLOCK);

    // An empty list: no names.
    let e = engine(&format!(
        "[builtin.\"wfp.dns-blocker\"]\nname = []\n{FILTER}"
    ));
    assert_eq!(dns(&e, "ads.blocked.example"), ActionType::NONE_NO_MATCH);
}

#[test]
fn a_callouts_own_params_win_over_the_table() {
    let src = r#"
[builtin."wfp.dns-blocker"]
name = "table.example"

[[callout]]
name = "ads"
layer = "DATAGRAM_DATA_V4"
builtin = "wfp.dns-blocker"
params = { name = ["own.example"] }

[[callout]]
name = "inherits"
layer = "DATAGRAM_DATA_V4"
builtin = "wfp.dns-blocker"

[[callout]]
name = "defaults"
layer = "DATAGRAM_DATA_V4"
builtin = "wfp.dns-blocker"

[callout.params]

[[filter]]
name = "dns"
layer = "DATAGRAM_DATA_V4"
action = "CALLOUT_UNKNOWN"
callout = "@C@"
"#;
    for (callout, blocked, passed) in [
        ("ads", "own.example", "table.example"),
        ("inherits", "table.example", "own.example"),
        ("defaults", "x.blocked.example", "table.example"),
    ] {
        let e = engine(&src.replace("@C@", callout));
        assert_eq!(dns(&e, blocked), ActionType::BLOCK, "{callout}");
        assert_eq!(dns(&e, passed), ActionType::NONE_NO_MATCH, "{callout}");
    }
}

#[test]
fn derived_keys_follow_the_parameters() {
    let key = |src: &str| {
        let e = engine(src);
        let c = e.callouts();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].spec.name, "wfp.dns-blocker@DATAGRAM_DATA_V4");
        c[0].spec.key
    };
    let plain = key(FILTER);
    assert_eq!(
        plain,
        Guid::from_name("builtin-callout", "wfp.dns-blocker@DATAGRAM_DATA_V4"),
        "no parameters: the key wfp_callouts::builtin_key derives"
    );
    let a = key(&format!(
        "[builtin.\"wfp.dns-blocker\"]\nname = \"a.example\"\n{FILTER}"
    ));
    let b = key(&format!(
        "[builtin.\"wfp.dns-blocker\"]\nname = \"b.example\"\n{FILTER}"
    ));
    assert_ne!(a, plain);
    assert_ne!(a, b);
    assert_eq!(
        a,
        key(&format!(
            "[builtin.\"wfp.dns-blocker\"]\nname = [\"a.example\"]\n{FILTER}"
        )),
        "the same parameters, the same key"
    );
}

#[test]
fn errors_name_the_line_column_and_field() {
    let check = |src: &str, line: usize, column: usize, field: &str, needle: &str| {
        let e = error(src);
        assert_eq!(e.span().origin, "params.toml");
        assert_eq!(
            (e.span().line, e.span().column, e.field()),
            (line, column, field),
            "{e}"
        );
        assert!(e.message().contains(needle), "{needle:?} not in {e}");
    };
    check(
        "[builtin.\"wfp.dns-blocker\"]\nname = [\"ok.example\",\n  \"bad..example\"]\n",
        3,
        3,
        "builtin.\"wfp.dns-blocker\".name[1]",
        "invalid name \"bad..example\": empty label",
    );
    check(
        "[builtin.\"wfp.dns-blocker\"]\nnames = \"a.example\"\n",
        2,
        1,
        "builtin.\"wfp.dns-blocker\".names",
        "unknown parameter \"names\" (accepted: name, on_malformed)",
    );
    check(
        "[builtin.\"wfp.dns-blocker\"]\non_malformed = \"drop\"\n",
        2,
        16,
        "builtin.\"wfp.dns-blocker\".on_malformed",
        "expected continue or block",
    );
    check(
        "[builtin.\"wfp.stream-monitor.stream\"]\ncapture_bytes = 100000\n",
        2,
        17,
        "builtin.\"wfp.stream-monitor.stream\".capture_bytes",
        "0..=65536",
    );
    check(
        "[builtin.\"wfp.stream-monitor.stream\"]\ncapture_bytes = true\n",
        2,
        17,
        "builtin.\"wfp.stream-monitor.stream\".capture_bytes",
        "expected a string or an integer, found a boolean",
    );
    check(
        "[builtin.\"wfp.stream-pattern-blocker\"]\npattern_hex = [\"0g\"]\n",
        2,
        16,
        "builtin.\"wfp.stream-pattern-blocker\".pattern_hex[0]",
        "pairs of hex digits",
    );
    check(
        "[builtin.\"wfp.flow-logger\"]\nx = 1\n",
        2,
        1,
        "builtin.\"wfp.flow-logger\".x",
        "accepted: none",
    );
    check(
        "[builtin.\"wfp.nope\"]\n",
        1,
        10,
        "builtin.\"wfp.nope\"",
        "no built-in callout \"wfp.nope\"",
    );
    check(
        "[builtin.wfp.dns-blocker]\nname = \"a.example\"\n",
        1,
        10,
        "builtin.\"wfp\"",
        "quote a name that has dots",
    );
    check(
        "[builtin.\"wfp.dns-blocker\"]\n[builtin.\"{57465001-0000-4000-8000-000000000106}\"]\n",
        2,
        10,
        "builtin.\"{57465001-0000-4000-8000-000000000106}\"",
        "configured twice",
    );
    check(
        "[[callout]]\nname = \"c\"\nlayer = \"STREAM_V4\"\nparams = { name = \"a.example\" }\n",
        4,
        10,
        "callout[0].params",
        "add builtin",
    );
    check(
        "[[callout]]\nname = \"c\"\nlayer = \"STREAM_V4\"\nbuiltin = \"wfp.tls-sni-blocker\"\n\
         params = { name = [\"a.example\", \"*x.example\"] }\n",
        5,
        33,
        "callout[0].params.name[1]",
        "'*' is only allowed",
    );
}

#[test]
fn a_bad_parameter_leaves_the_running_policy_untouched() {
    let good = parse(&format!(
        "[builtin.\"wfp.dns-blocker\"]\nname = \"a.example\"\n{FILTER}"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let host = Host::new();
    let (engine, applied) = good.build_engine(&host).unwrap_or_else(|e| panic!("{e}"));
    let before: Vec<_> = engine.filters().iter().map(|f| f.filter_id()).collect();
    // A bad file never gets as far as the engine: parsing fails.
    let e = error(&format!(
        "[builtin.\"wfp.dns-blocker\"]\nname = \"a..example\"\n{FILTER}"
    ));
    assert_eq!(e.field(), "builtin.\"wfp.dns-blocker\".name");
    let after: Vec<_> = engine.filters().iter().map(|f| f.filter_id()).collect();
    assert_eq!(before, after);
    assert_eq!(dns(&engine, "a.example"), ActionType::BLOCK);
    assert_eq!(applied.registered.len(), 1);
}

#[test]
fn a_replace_with_new_parameters_swaps_the_callout_atomically() {
    let with = |names: &str| {
        parse(&format!(
            "[builtin.\"wfp.dns-blocker\"]\nname = {names}\n{FILTER}"
        ))
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let host = Host::new();
    let (engine, applied) = with("\"a.example\"")
        .build_engine(&host)
        .unwrap_or_else(|e| panic!("{e}"));
    let old = applied.registered.clone();
    assert_eq!(dns(&engine, "a.example"), ActionType::BLOCK);

    let applied = with("\"b.example\"")
        .replace(&engine, &applied, &host)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dns(&engine, "b.example"), ActionType::BLOCK);
    assert_eq!(dns(&engine, "a.example"), ActionType::NONE_NO_MATCH);
    assert_eq!(engine.callouts().len(), 1);
    assert_eq!(engine.callout_id(&old[0].0), None, "old instance released");

    // The same parameters again: the registration is reused.
    let again = with("[\"b.example\"]")
        .replace(&engine, &applied, &host)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.registered, applied.registered);
}

#[test]
fn a_fixed_key_cannot_be_reconfigured_in_place() {
    let src = |names: &str| {
        format!(
            r#"
[[callout]]
name = "dns"
key = "{{0d5a1e00-0000-4000-8000-000000000001}}"
layer = "DATAGRAM_DATA_V4"
builtin = "wfp.dns-blocker"
params = {{ name = {names} }}

[[filter]]
name = "dns"
layer = "DATAGRAM_DATA_V4"
action = "CALLOUT_UNKNOWN"
callout = "dns"
"#
        )
    };
    let first = parse(&src("\"a.example\"")).unwrap_or_else(|e| panic!("{e}"));
    let host = Host::new();
    let (engine, applied) = first.build_engine(&host).unwrap_or_else(|e| panic!("{e}"));
    let filters: Vec<_> = engine.filters().iter().map(|f| f.filter_id()).collect();
    let e = parse(&src("\"b.example\""))
        .unwrap_or_else(|e| panic!("{e}"))
        .replace(&engine, &applied, &host)
        .expect_err("refused");
    assert_eq!((e.span().line, e.field()), (2, "callout[0].params"), "{e}");
    assert!(
        e.message().contains("cannot be reconfigured in place"),
        "{e}"
    );
    assert!(matches!(e, PolicyError::Reconfigured { .. }), "{e:?}");
    // Untouched: same filters, same behaviour.
    let after: Vec<_> = engine.filters().iter().map(|f| f.filter_id()).collect();
    assert_eq!(filters, after);
    assert_eq!(dns(&engine, "a.example"), ActionType::BLOCK);
    // The same parameters replace fine.
    assert!(first.replace(&engine, &applied, &host).is_ok());
}
