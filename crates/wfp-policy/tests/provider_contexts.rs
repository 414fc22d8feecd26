//! `[[provider_context]]` tables and a filter's `provider_context` (wfp-reference §11.4): what
//! reaches the engine, and where the errors point.

use wfp_callouts::Host;
use wfp_core::{FilterFlags, Guid, ProviderContextType};
use wfp_policy::{Policy, PolicyError};

const GOOD: &str = r#"
[[provider_context]]
name = "settings"
data = "hello"

[[provider_context]]
name = "raw"
key = "{6f1d4a57-0000-4000-8000-00000000c0de}"
type = "FWPM_CLASSIFY_OPTIONS_CONTEXT"
data_hex = "de:ad_be ef"

[[callout]]
name = "inspector"
layer = "ALE_AUTH_CONNECT_V4"
uses_provider_context = true

[[filter]]
name = "with settings"
layer = "ALE_AUTH_CONNECT_V4"
action = "CALLOUT_INSPECTION"
callout = "inspector"
provider_context = "settings"

[[filter]]
name = "by key"
layer = "ALE_AUTH_CONNECT_V4"
action = "BLOCK"
provider_context = "6f1d4a57-0000-4000-8000-00000000c0de"
"#;

#[test]
fn provider_contexts_reach_the_engine_and_their_filters() {
    let p = Policy::parse(GOOD, "good.toml").unwrap();
    let (engine, applied) = p.build_engine(&Host::new()).unwrap();
    assert_eq!(applied.provider_contexts.len(), 2);
    let settings = engine
        .provider_context(&Guid::from_name("provider-context", "settings"))
        .unwrap();
    assert_eq!(settings.spec.context_type, ProviderContextType::GENERAL);
    assert_eq!(settings.general_data(), Some(&b"hello"[..]));
    let raw_key: Guid = "6f1d4a57-0000-4000-8000-00000000c0de".parse().unwrap();
    let raw = engine.provider_context(&raw_key).unwrap();
    assert_eq!(raw.spec.data, [0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(raw.spec.context_type, ProviderContextType::CLASSIFY_OPTIONS);
    let filters = engine.filters();
    let f0 = &filters[0];
    assert!(f0.mgmt_flags().contains(FilterFlags::HAS_PROVIDER_CONTEXT));
    assert_eq!(f0.context, settings.id.0);
    assert_eq!(
        f0.provider_context().and_then(|pc| pc.general_data()),
        Some(&b"hello"[..]),
        "the callout uses provider contexts"
    );
    assert_eq!(filters[1].context, raw.id.0);
    assert!(filters[1].provider_context().is_none(), "no callout");
    // A replace removes and re-adds them in one transaction.
    let again = p.replace(&engine, &applied, &Host::new()).unwrap();
    assert_eq!(again.provider_contexts.len(), 2);
    assert_eq!(engine.provider_contexts().len(), 2);
}

fn error(src: &str) -> PolicyError {
    Policy::parse(src, "bad.toml")
        .and_then(|p| p.build_engine(&Host::new()).map(|_| ()))
        .unwrap_err()
}

#[test]
fn mistakes_name_their_line_and_field() {
    let unknown = error(
        r#"
[[filter]]
name = "f"
layer = "ALE_AUTH_CONNECT_V4"
action = "BLOCK"
provider_context = "nope"
"#,
    );
    assert!(matches!(
        unknown,
        PolicyError::UnknownProviderContext { .. }
    ));
    assert_eq!(unknown.span().line, 6);
    assert_eq!(unknown.field(), "filter[0].provider_context");

    let both = error(
        r#"
[[provider_context]]
name = "x"
data = "a"
data_hex = "00"
"#,
    );
    assert_eq!(both.field(), "provider_context[0].data_hex");
    assert!(both.message().contains("not both"), "{both}");

    let odd = error("[[provider_context]]\nname = \"x\"\ndata_hex = \"abc\"\n");
    assert_eq!(
        (odd.field(), odd.span().line),
        ("provider_context[0].data_hex", 3)
    );

    let bad_type = error("[[provider_context]]\nname = \"x\"\ntype = \"IPSEC_NOPE\"\n");
    assert!(matches!(bad_type, PolicyError::UnknownConstant { .. }));
    assert!(bad_type.to_string().contains("FWPM_PROVIDER_CONTEXT_TYPE"));

    let union = error(
        r#"
[[provider_context]]
name = "x"

[[filter]]
name = "f"
layer = "ALE_AUTH_CONNECT_V4"
action = "BLOCK"
context = 5
provider_context = "x"
"#,
    );
    assert_eq!(union.field(), "filter[0].provider_context");

    // §11.3: the engine's LIFETIME_MISMATCH, pointing at the filter.
    let lifetime = error(
        r#"
[[provider_context]]
name = "static"

[[filter]]
name = "kept"
layer = "ALE_AUTH_CONNECT_V4"
action = "BLOCK"
flags = ["PERSISTENT"]
provider_context = "static"
"#,
    );
    assert!(
        lifetime.to_string().contains("LIFETIME_MISMATCH"),
        "{lifetime}"
    );
    assert_eq!(lifetime.field(), "filter[0]");
}
