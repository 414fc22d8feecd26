//! End-to-end tests of `wfpctl classify` on the bundled example and on broken inputs.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn wfpctl(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wfpctl"));
    cmd.args(args).current_dir(root());
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn wfpctl");
    if let Some(s) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(s.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn example_cases_give_the_documented_decisions() {
    let (code, out, err) = wfpctl(
        &[
            "classify",
            "--policy",
            "examples/policy.toml",
            "--input",
            "examples/cases.jsonl",
            "--json",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let got: Vec<(String, String, bool)> = lines
        .iter()
        .map(|l| {
            (
                l["action"].as_str().unwrap_or("").to_string(),
                l["decision"].as_str().unwrap_or("").to_string(),
                l["vetoed"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let want = [
        ("BLOCK", "hard", false),
        ("PERMIT", "soft", false),
        ("PERMIT", "hard", false),
        ("BLOCK", "hard", true),
        ("PERMIT", "soft", false),
        ("NONE_NO_MATCH", "none", false),
        ("BLOCK", "hard", false),
        ("PERMIT", "soft", false),
        ("PERMIT", "soft", false),
    ];
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0.as_str(), g.1.as_str(), g.2), w);
    }
    // The veto names the vetoing filter and the trace shows the inspection callout ran after it.
    assert_eq!(lines[3]["filter"], "FW2 banned peer");
    let trace = lines[3]["trace"].as_array().expect("trace");
    assert_eq!(trace.last().expect("step")["filter"], "audit log");
    assert_eq!(trace.last().expect("step")["write_right"], false);
}

#[test]
fn bad_input_lines_are_reported_with_their_number_and_the_rest_continue() {
    let input = concat!(
        "{\"layer\": \"ALE_AUTH_CONNECT_V4\", \"fields\": {\"IP_REMOTE_PORT\": 25, \"IP_PROTOCOL\": \"tcp\"}}\n",
        "{\"layer\": \"NOPE\"}\n",
        "not json\n",
        "{\"layer\": \"ALE_AUTH_CONNECT_V4\", \"fields\": {\"IP_LOCAL_PORT\": 99999}}\n",
        "{\"layer\": \"ALE_AUTH_CONNECT_V4\", \"fields\": {\"IP_REMOTE_PORT\": 443}}\n",
    );
    let (code, out, err) = wfpctl(
        &[
            "classify",
            "--policy",
            "examples/policy.toml",
            "--input",
            "-",
            "--json",
        ],
        Some(input),
    );
    assert_eq!(code, 3);
    assert!(err.contains("-:2: unknown layer"), "{err}");
    assert!(err.contains("-:3: not JSON"), "{err}");
    assert!(err.contains("-:4: fields.IP_LOCAL_PORT"), "{err}");
    let actions: Vec<String> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["action"].as_str().map(str::to_string))
        .collect();
    assert_eq!(actions, ["BLOCK", "PERMIT"]);
}

#[test]
fn bad_policy_fails_with_file_line_and_field() {
    let dir = std::env::temp_dir().join(format!("wfpctl-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let p = dir.join("bad.toml");
    std::fs::write(&p, "[[filter]]\nname = \"x\"\nlayer = \"ALE_AUTH_CONNECT_V4\"\naction = \"PERMIT\"\ncondition = [ { field = \"IP_REMOTE_PORT\", value = \"eighty\" } ]\n").expect("write");
    let (code, _, err) = wfpctl(
        &[
            "classify",
            "--policy",
            p.to_str().expect("utf8"),
            "--input",
            "-",
        ],
        Some(""),
    );
    assert_eq!(code, 1);
    assert!(err.contains("bad.toml:5:"), "{err}");
    assert!(err.contains("filter[0].condition[0].value"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
