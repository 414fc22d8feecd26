//! `wfpctl driver load|unload|list|ioctl` against a canned API (`fake_api`) speaking the
//! proposed `/v1/drivers` endpoints (the daemon side belongs to the C-driver work): the requests
//! sent (paths, JSON bodies, base64 buffers) and the rendering of the answers are checked.
//! `driver build` keeps working beside them.

mod fake_api;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fake_api::{FakeApi, Reply};

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wfpctl-drv-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn wfpctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn load_list_ioctl_unload_send_the_proposed_requests() {
    let d = dir("all");
    let api = FakeApi::start(&d);
    api.route(
        "POST /v1/drivers",
        Reply::Body(
            200,
            r#"{"name":"flowmon","path":"/x/flowmon.so","callouts":2}"#.into(),
        ),
    );
    api.route(
        "GET /v1/drivers",
        Reply::Body(
            200,
            r#"[{"name":"flowmon","path":"/x/flowmon.so","callouts":2,"device":"\\Device\\FlowMon",
                 "params":{"Mode":"2"}}]"#
                .into(),
        ),
    );
    // "pong" back, STATUS_SUCCESS.
    api.route(
        "POST /v1/drivers/flowmon/ioctl",
        Reply::Body(200, r#"{"status":0,"output_b64":"cG9uZw=="}"#.into()),
    );
    api.route(
        "POST /v1/drivers/broken/ioctl",
        Reply::Body(200, r#"{"status":3221225485,"output_b64":""}"#.into()),
    );
    api.route(
        "DELETE /v1/drivers/flowmon",
        Reply::Body(200, r#"{"ok":true}"#.into()),
    );

    let image = d.join("flowmon.so");
    std::fs::write(
        &image,
        b"not really an ELF: the fake daemon does not load it",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .current_dir(&d)
        .args([
            "driver",
            "load",
            "flowmon.so",
            "--param",
            "Mode=2",
            "--param",
            "Name=a=b",
        ])
        .arg("--socket")
        .arg(api.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("loaded flowmon from /x/flowmon.so"),
        "{}",
        text(&out)
    );

    let out = wfpctl(api.path(), &["driver", "list"]);
    let t = text(&out);
    assert!(
        t.contains("flowmon") && t.contains("\\Device\\FlowMon") && t.contains("Mode=2"),
        "{t}"
    );

    let input = d.join("ping.bin");
    std::fs::write(&input, b"ping").unwrap();
    let output = d.join("pong.bin");
    let out = wfpctl(
        api.path(),
        &[
            "driver",
            "ioctl",
            "flowmon",
            "0x222003",
            "--in",
            input.to_str().unwrap(),
            "--out",
            output.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(&output).unwrap(), b"pong");
    assert!(
        text(&out).contains("status 0x00000000, 4 output bytes"),
        "{}",
        text(&out)
    );
    let out = wfpctl(api.path(), &["driver", "ioctl", "flowmon", "16"]);
    assert!(
        text(&out).contains("70 6f 6e 67") && text(&out).contains("|pong|"),
        "{}",
        text(&out)
    );
    let out = wfpctl(api.path(), &["driver", "ioctl", "broken", "1"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failure NTSTATUS: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("0xc000000d (failure)"),
        "{}",
        text(&out)
    );

    let out = wfpctl(api.path(), &["driver", "unload", "flowmon"]);
    assert!(out.status.success(), "{}", text(&out));

    let seen = api.seen();
    let load = seen.iter().find(|s| s.line == "POST /v1/drivers").unwrap();
    let body: serde_json::Value = serde_json::from_str(&load.body).unwrap();
    assert_eq!(
        body["path"],
        image.to_str().unwrap(),
        "sent as an absolute path"
    );
    assert_eq!(
        body["params"],
        serde_json::json!({"Mode": "2", "Name": "a=b"})
    );
    let ioctl = seen
        .iter()
        .find(|s| s.line == "POST /v1/drivers/flowmon/ioctl")
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&ioctl.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"code": 0x22_2003, "input_b64": "cGluZw=="})
    );
    assert!(seen.iter().any(|s| s.line == "DELETE /v1/drivers/flowmon"));

    let out = wfpctl(api.path(), &["driver", "ioctl", "flowmon", "0xnope"]);
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn driver_build_is_still_a_driver_subcommand() {
    let out = Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args(["driver", "build", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DRIVER.so"));
    let out = Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args(["driver"])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(
        !out.status.success() && t.contains("build") && t.contains("ioctl"),
        "{t}"
    );
}
