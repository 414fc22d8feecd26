//! `wfpctl driver load|unload|list|ioctl` against wfpd's real management socket (its API server
//! and driver registry in process, no queues): the `ioctlecho` and `flowmon` example drivers,
//! compiled with wfp-ffi's build helper, are loaded by the CLI, listed, reached through the
//! device-control queue (`--in`/`--out` files, hex dumps, a failure NTSTATUS → exit code 1) and
//! unloaded. `driver build` keeps working beside them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use wfp_core::Engine;
use wfpd::api::{ApiConfig, Server};
use wfpd::drivers::Drivers;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wfpctl-drv-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn build(dir: &Path, name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = dir.join(format!("{name}.so"));
    wfp_ffi::compile::build(&wfp_ffi::compile::BuildOptions {
        sources: vec![root.join(format!("examples/drivers/{name}/{name}.c"))],
        output: out.clone(),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("building {name}: {e}"));
    out
}

fn wfpctl_in(cwd: &Path, socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .current_dir(cwd)
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
fn load_list_ioctl_unload_against_the_daemon() {
    let d = dir("all");
    build(&d, "ioctlecho");
    build(&d, "flowmon");
    let engine = Arc::new(Engine::default());
    // The daemon's configuration directory is elsewhere: wfpctl sends absolute paths.
    let drivers = Drivers::start(&[], Some(Path::new("/nonexistent")), &engine).unwrap();
    let mut config = ApiConfig::default();
    config.socket = Some(d.join("wfpd.sock"));
    let server = Server::start(Arc::clone(&engine), None, config).unwrap();
    server.set_drivers(drivers.clone());
    let sock = server.path().to_path_buf();
    let run = |args: &[&str]| wfpctl_in(&d, &sock, args);

    let out = run(&["driver", "load", "ioctlecho.so", "--param", "Tag=9"]);
    assert!(out.status.success(), "{}", text(&out));
    let loaded = format!("loaded ioctlecho from {}", d.join("ioctlecho.so").display());
    assert!(text(&out).contains(&loaded), "{}", text(&out));
    let out = run(&["driver", "load", "flowmon.so"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(engine.filters().len(), 3, "flowmon's DriverEntry ran");

    let out = run(&["driver", "list"]);
    let t = text(&out);
    assert!(
        t.contains("ioctlecho") && t.contains("\\Device\\IoctlEcho") && t.contains("Tag=9"),
        "{t}"
    );
    assert!(t.contains("flowmon") && t.contains("api"), "{t}");
    let out = run(&["driver", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["name"], "ioctlecho");
    assert_eq!(list[1]["findings"], 0);

    // IOCTL_IOCTLECHO_UPPER = CTL_CODE(FILE_DEVICE_NETWORK, 0x901, METHOD_BUFFERED, 0).
    let input = d.join("in.bin");
    std::fs::write(&input, b"ping").unwrap();
    let output = d.join("out.bin");
    let out = run(&[
        "driver",
        "ioctl",
        "ioctlecho",
        "0x122404",
        "--in",
        input.to_str().unwrap(),
        "--out",
        output.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(&output).unwrap(), b"PING");
    assert!(
        text(&out).contains("status 0x00000000, 4 output bytes"),
        "{}",
        text(&out)
    );
    // IOCTL_IOCTLECHO_STATS (decimal): {Requests = 2, Tag = 9} as a hex dump.
    let out = run(&["driver", "ioctl", "ioctlecho", &(0x12_2408).to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("02 00 00 00 09 00 00 00"),
        "{}",
        text(&out)
    );
    let out = run(&["driver", "ioctl", "ioctlecho", "1", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failure NTSTATUS: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("0xc0000010 (failure)"),
        "{}",
        text(&out)
    );
    let out = run(&["driver", "ioctl", "flowmon", "1"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("STATUS_INVALID_DEVICE_REQUEST"),
        "{}",
        text(&out)
    );

    let out = run(&["driver", "unload", "ioctlecho"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("unloaded ioctlecho, 0 verifier findings"),
        "{}",
        text(&out)
    );
    let out = run(&["driver", "unload", "flowmon"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(engine.filters().is_empty());
    let out = run(&["driver", "list", "--json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    let out = run(&["driver", "unload", "flowmon"]);
    assert!(
        !out.status.success() && text(&out).contains("STATUS_NOT_FOUND"),
        "{}",
        text(&out)
    );
    let out = run(&["driver", "load", "missing.so"]);
    assert!(
        !out.status.success() && text(&out).contains("STATUS_OBJECT_NAME_NOT_FOUND"),
        "{}",
        text(&out)
    );

    let out = run(&["driver", "ioctl", "ioctlecho", "0xnope"]);
    assert_eq!(out.status.code(), Some(2));
    drop(server);
    assert!(drivers.stop().is_empty());
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
