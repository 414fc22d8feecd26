//! `wfpctl show|add|delete providercontext(s)`, `add filter --provider-context` and `apply` of a
//! policy with `[[provider_context]]` tables, against a real management socket (wfpd's API
//! server in process).

mod support;

use support::{text, wfpctl, InProcessApi};

const POLICY: &str = r#"
[[provider_context]]
name = "applied"
key = "{0b3f2a10-1111-4222-8333-444455556666}"
data_hex = "0102"

[[filter]]
name = "with context"
layer = "ALE_AUTH_CONNECT_V4"
action = "BLOCK"
provider_context = "applied"
"#;

#[test]
fn provider_contexts_from_the_command_line() {
    let api = InProcessApi::start("pctx");
    let (engine, d, sock) = (&api.engine, &api.dir, api.sock.clone());

    let out = wfpctl(
        &sock,
        &[
            "add",
            "providercontext",
            "--name",
            "cli ctx",
            "--data",
            "hi",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    let mut words = printed.split_whitespace();
    let (id, key) = (words.next().unwrap(), words.next().unwrap().to_string());
    assert_eq!(id, "1");
    let out = wfpctl(&sock, &["show", "providercontexts"]);
    let table = text(&out);
    assert!(
        table.contains("cli ctx") && table.contains("GENERAL") && table.contains("6869"),
        "{table}"
    );
    let out = wfpctl(
        &sock,
        &[
            "add",
            "filter",
            "--layer",
            "ALE_AUTH_CONNECT_V4",
            "--action",
            "BLOCK",
            "--provider-context",
            &key,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(engine.filters()[0].context, 1);
    let out = wfpctl(&sock, &["delete", "providercontext", "1"]);
    assert!(
        !out.status.success() && text(&out).contains("FWP_E_IN_USE"),
        "{}",
        text(&out)
    );

    let policy = d.join("p.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let p = policy.to_str().unwrap();
    let out = wfpctl(&sock, &["apply", p]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(engine.provider_contexts().len(), 2);
    let out = wfpctl(&sock, &["apply", p, "--dry-run"]);
    assert!(
        text(&out).contains("already has every object"),
        "{}",
        text(&out)
    );
    let out = wfpctl(&sock, &["show", "providercontexts", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(2));

    let fid = engine.filters()[0].filter_id().0.to_string();
    assert!(wfpctl(&sock, &["delete", "filter", &fid]).status.success());
    let out = wfpctl(&sock, &["delete", "providercontext", &key]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(engine.provider_contexts().len(), 1);
}
