//! `wfpctl show|add|delete|apply` against a real management socket (wfpd's API server in
//! process, no queues).

mod support;

use support::{text, wfpctl, InProcessApi};

const POLICY: &str = r#"
[[sublayer]]
name = "apply test"
weight = 100

[[filter]]
name = "no telnet"
layer = "ALE_AUTH_CONNECT_V4"
sublayer = "apply test"
action = "BLOCK"
conditions = [ { field = "IP_REMOTE_PORT", value = 23 } ]
"#;

#[test]
fn show_add_delete_and_apply_through_the_socket() {
    let api = InProcessApi::start("mgmt");
    let (engine, d, sock) = (&api.engine, &api.dir, api.sock.clone());

    let out = wfpctl(
        &sock,
        &[
            "add",
            "filter",
            "--layer",
            "ALE_AUTH_CONNECT_V4",
            "--action",
            "BLOCK",
            "--name",
            "cli",
            "--condition",
            "IP_REMOTE_ADDRESS=10.0.0.0/8",
            "--condition",
            "IP_PROTOCOL=tcp",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let id: u64 = text(&out)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let out = wfpctl(&sock, &["show", "filters"]);
    let table = text(&out);
    assert!(
        table.contains("IP_REMOTE_ADDRESS EQUAL 10.0.0.0/255.0.0.0") && table.contains("cli"),
        "{table}"
    );
    let out = wfpctl(&sock, &["show", "filters", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["id"], id);
    // §11.4 templates: `--where` lists overlapping filters, `--contained` the containing ones.
    let listed = |args: &[&str]| -> Vec<u64> {
        let mut all = vec![
            "show",
            "filters",
            "--json",
            "--layer",
            "ALE_AUTH_CONNECT_V4",
        ];
        all.extend_from_slice(args);
        let out = wfpctl(&sock, &all);
        assert!(out.status.success(), "{}", text(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json.as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_u64().unwrap())
            .collect()
    };
    let host = "IP_REMOTE_ADDRESS=10.1.2.3";
    assert_eq!(listed(&["--where", host]), vec![id]);
    assert_eq!(listed(&["--where", host, "--contained"]), Vec::<u64>::new());
    assert_eq!(
        listed(&["--where", host, "--where", "IP_PROTOCOL=tcp", "--contained"]),
        vec![id]
    );
    assert_eq!(
        listed(&["--where", "IP_REMOTE_ADDRESS=192.168.1.1"]),
        Vec::<u64>::new()
    );
    let out = wfpctl(&sock, &["show", "filters", "--where", host]);
    assert!(!out.status.success() && text(&out).contains("--layer"));
    let out = wfpctl(
        &sock,
        &["add", "filter", "--layer", "NOPE", "--action", "BLOCK"],
    );
    assert!(
        !out.status.success() && text(&out).contains("NOPE"),
        "{}",
        text(&out)
    );

    let policy = d.join("p.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let p = policy.to_str().unwrap();
    let out = wfpctl(&sock, &["apply", p, "--dry-run"]);
    let diff = text(&out);
    assert!(
        diff.contains("add      sublayer") && diff.contains("\"no telnet\""),
        "{diff}"
    );
    assert_eq!(engine.filters().len(), 1, "a dry run changes nothing");
    let out = wfpctl(&sock, &["apply", p]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(engine.filters().len(), 2);
    let out = wfpctl(&sock, &["apply", p, "--dry-run"]);
    assert!(
        text(&out).contains("already has every object"),
        "{}",
        text(&out)
    );

    let out = wfpctl(&sock, &["delete", "filter", &id.to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(engine.filters().len(), 1);
    let out = wfpctl(&sock, &["show", "sessions"]);
    assert!(
        text(&out).contains("root") || text(&out).contains("USER"),
        "{}",
        text(&out)
    );
}
