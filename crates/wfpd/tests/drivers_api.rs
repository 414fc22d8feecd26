//! `/v1/drivers` end to end: real C drivers (the `ioctlecho` and `flowmon` examples, compiled
//! with wfp-ffi's build helper) loaded, listed, reached through their device-control queue and
//! unloaded through wfpd's API server on a real Unix socket (in process, no queues), with the
//! `wfp-api` client; a viewer (a `curl` child run as nobody in the viewer group) may list but
//! not load; bad paths leave the registry and the engine untouched.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wfp_api::drivers::{b64_decode, b64_encode};
use wfp_api::{Client, ClientError, DriverView, IoctlAnswer};
use wfp_core::Engine;
use wfpd::api::{ApiConfig, Server};
use wfpd::drivers::Drivers;

/// CTL_CODE(FILE_DEVICE_NETWORK, 0x900.., METHOD_BUFFERED, FILE_ANY_ACCESS) of ioctlecho.c.
const IOCTL_ECHO: u32 = 0x12 << 16 | 0x900 << 2;
const IOCTL_UPPER: u32 = 0x12 << 16 | 0x901 << 2;
const IOCTL_STATS: u32 = 0x12 << 16 | 0x902 << 2;

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wfpd-drvapi-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Builds `examples/drivers/NAME/NAME.c` into `dir/NAME.so`.
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

fn api_error(e: &ClientError) -> (u16, u32, String) {
    match e {
        ClientError::Api { status, error } => (*status, error.code, error.name.clone()),
        other => panic!("not an API error: {other}"),
    }
}

fn ioctl(c: &mut Client, name: &str, code: u32, input: &[u8]) -> (u32, Vec<u8>) {
    let a: IoctlAnswer = c.driver_ioctl(name, code, &b64_encode(input)).unwrap();
    (a.status, b64_decode(&a.output_b64).unwrap())
}

struct Daemon {
    engine: Arc<Engine>,
    drivers: Drivers,
    server: Server,
}

fn start(dir: &Path, viewer_group: Option<&str>) -> Daemon {
    let engine = Arc::new(Engine::default());
    let drivers = Drivers::start(&[], Some(dir), &engine).unwrap();
    let mut config = ApiConfig::default();
    config.socket = Some(dir.join("wfpd.sock"));
    config.viewer_group = viewer_group.map(str::to_string);
    let server = Server::start(Arc::clone(&engine), None, config).unwrap();
    server.set_drivers(drivers.clone());
    Daemon {
        engine,
        drivers,
        server,
    }
}

#[test]
fn load_list_ioctl_unload_through_the_socket() {
    let dir = tempdir("cycle");
    build(&dir, "ioctlecho");
    let flowmon = build(&dir, "flowmon");
    let d = start(&dir, None);
    let mut c = Client::connect(d.server.path()).unwrap();
    assert!(c.drivers::<DriverView>().unwrap().is_empty());

    // Relative to the configuration directory; Tag is a REG_DWORD the driver reads.
    let params = BTreeMap::from([("Tag".to_string(), "7".to_string())]);
    let loaded: DriverView = c.load_driver("ioctlecho.so", &params).unwrap();
    assert_eq!(loaded.name, "ioctlecho");
    assert_eq!(loaded.path, dir.join("ioctlecho.so").display().to_string());
    assert_eq!(loaded.devices, ["\\Device\\IoctlEcho"]);
    let _: DriverView = c
        .load_driver(flowmon.to_str().unwrap(), &BTreeMap::new())
        .unwrap();
    assert_eq!(d.engine.filters().len(), 3, "flowmon's DriverEntry ran");
    let list: Vec<DriverView> = c.drivers().unwrap();
    let names: Vec<&str> = list.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["ioctlecho", "flowmon"]);
    assert_eq!(list[0].params["Tag"], "7");
    assert_eq!(list[0].origin, "api");
    assert!(list[0].loaded_at > 1_700_000_000);

    assert_eq!(
        ioctl(&mut c, "ioctlecho", IOCTL_ECHO, b"ping"),
        (0, b"ping".to_vec())
    );
    assert_eq!(
        ioctl(&mut c, "ioctlecho", IOCTL_UPPER, b"hello, wfp 1"),
        (0, b"HELLO, WFP 1".to_vec())
    );
    let (status, stats) = ioctl(&mut c, "ioctlecho", IOCTL_STATS, b"");
    assert_eq!(status, 0);
    assert_eq!(stats, [3u32.to_le_bytes(), 7u32.to_le_bytes()].concat());
    let (status, out) = ioctl(&mut c, "ioctlecho", 0x12_3456, b"x");
    assert_eq!(
        (status, out.len()),
        (0xC000_0010, 0),
        "the driver's own failure status"
    );

    // flowmon has no device-control queue; unknown names are not found.
    let e = c
        .driver_ioctl::<IoctlAnswer>("flowmon", IOCTL_ECHO, "")
        .unwrap_err();
    assert_eq!(api_error(&e).2, "STATUS_INVALID_DEVICE_REQUEST");
    let e = c.driver_ioctl::<IoctlAnswer>("nope", 1, "").unwrap_err();
    assert_eq!(api_error(&e), (404, 0xC000_0225, "STATUS_NOT_FOUND".into()));
    let e = c
        .driver_ioctl::<IoctlAnswer>("ioctlecho", 1, "not base64!")
        .unwrap_err();
    assert_eq!(api_error(&e).2, "STATUS_INVALID_PARAMETER");

    let report = c.unload_driver("ioctlecho").unwrap();
    assert_eq!(report.name, "ioctlecho");
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let e = c
        .driver_ioctl::<IoctlAnswer>("ioctlecho", IOCTL_ECHO, "")
        .unwrap_err();
    assert_eq!(api_error(&e).0, 404);
    let report = c.unload_driver("flowmon").unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert!(
        d.engine.filters().is_empty(),
        "flowmon's dynamic session ended"
    );
    assert!(c.drivers::<DriverView>().unwrap().is_empty());
    let e = c.unload_driver("flowmon").unwrap_err();
    assert_eq!(api_error(&e).0, 404);

    // The name is free again: a second cycle works.
    let _: DriverView = c.load_driver("ioctlecho.so", &BTreeMap::new()).unwrap();
    let (_, stats) = ioctl(&mut c, "ioctlecho", IOCTL_STATS, b"");
    assert_eq!(stats, [1u32.to_le_bytes(), 0u32.to_le_bytes()].concat());
    drop(c);
    drop(d.server);
    assert!(d.drivers.stop().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_paths_and_duplicates_are_refused_and_change_nothing() {
    let dir = tempdir("bad");
    build(&dir, "ioctlecho");
    std::fs::write(dir.join("junk.so"), b"not an ELF image").unwrap();
    std::fs::create_dir_all(dir.join("adir.so")).unwrap();
    let d = start(&dir, None);
    let mut c = Client::connect(d.server.path()).unwrap();
    let _: DriverView = c.load_driver("ioctlecho.so", &BTreeMap::new()).unwrap();
    let before: Vec<DriverView> = c.drivers().unwrap();
    let filters = d.engine.filters().len();
    let callouts = d.engine.callouts().len();

    let missing = dir.join("missing.so");
    for (path, expected) in [
        (
            missing.to_str().unwrap(),
            (404, 0xC000_0034, "STATUS_OBJECT_NAME_NOT_FOUND"),
        ),
        (
            "nested/missing.so",
            (404, 0xC000_0034, "STATUS_OBJECT_NAME_NOT_FOUND"),
        ),
        ("junk.so", (400, 0xC000_007B, "STATUS_INVALID_IMAGE_FORMAT")),
        ("adir.so", (400, 0xC000_0039, "STATUS_OBJECT_PATH_INVALID")),
        ("", (400, 0xC000_0039, "STATUS_OBJECT_PATH_INVALID")),
        (
            "ioctlecho.so",
            (409, 0xC000_0035, "STATUS_OBJECT_NAME_COLLISION"),
        ),
    ] {
        let e = c
            .load_driver::<DriverView>(path, &BTreeMap::new())
            .unwrap_err();
        let (status, code, name) = api_error(&e);
        assert_eq!((status, code, name.as_str()), expected, "{path:?}: {e}");
        assert!(
            e.to_string().contains(path),
            "the message names {path:?}: {e}"
        );
    }
    assert_eq!(c.drivers::<DriverView>().unwrap(), before);
    assert_eq!(d.engine.filters().len(), filters);
    assert_eq!(d.engine.callouts().len(), callouts);
    assert_eq!(
        ioctl(&mut c, "ioctlecho", IOCTL_ECHO, b"still here"),
        (0, b"still here".to_vec())
    );

    // A registry without a configuration directory refuses relative paths.
    let engine = Arc::new(Engine::default());
    let bare = Drivers::start(&[], None, &engine).unwrap();
    let e = bare.load("ioctlecho.so", &BTreeMap::new()).unwrap_err();
    assert!(e.to_string().contains("relative"), "{e}");
    drop(c);
    drop(d.server);
    assert!(d.drivers.stop().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

fn curl_as_viewer(sock: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "5"])
        .arg("--unix-socket")
        .arg(sock)
        .args(args)
        .uid(65534)
        .gid(100)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_viewer_may_list_but_not_load_unload_or_ioctl() {
    let root = rustix::process::geteuid().is_root();
    let has_curl = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok();
    if !root || !has_curl {
        eprintln!("note: needs root and curl (a peer run as nobody); skipping");
        return;
    }
    let dir = tempdir("viewer");
    let so = build(&dir, "ioctlecho");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let d = start(&dir, Some("100"));
    let sock = d.server.path().to_path_buf();
    let mut c = Client::connect(&sock).unwrap();
    let _: DriverView = c.load_driver("ioctlecho.so", &BTreeMap::new()).unwrap();

    let text = curl_as_viewer(&sock, &["http://wfpd/v1/drivers"]);
    assert!(
        text.ends_with("200") && text.contains("\"name\":\"ioctlecho\""),
        "{text}"
    );
    let load = format!("{{\"path\":{:?}}}", so.to_str().unwrap());
    for args in [
        vec!["-X", "POST", "-d", load.as_str(), "http://wfpd/v1/drivers"],
        vec!["-X", "DELETE", "http://wfpd/v1/drivers/ioctlecho"],
        vec![
            "-X",
            "POST",
            "-d",
            "{\"code\":1179648}",
            "http://wfpd/v1/drivers/ioctlecho/ioctl",
        ],
    ] {
        let text = curl_as_viewer(&sock, &args);
        assert!(
            text.ends_with("403") && text.contains("E_ACCESSDENIED"),
            "{args:?}: {text}"
        );
    }
    assert_eq!(c.drivers::<DriverView>().unwrap().len(), 1, "still loaded");
    assert_eq!(
        ioctl(&mut c, "ioctlecho", IOCTL_STATS, b"").1,
        [1u32.to_le_bytes(), 0u32.to_le_bytes()].concat(),
        "the refused ioctl never reached the driver"
    );
    drop(c);
    drop(d.server);
    assert!(d.drivers.stop().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A child killed and reaped on drop.
struct Guarded(std::process::Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_log(log: &Path, needle: &str) -> String {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            std::time::Instant::now() < end,
            "no {needle:?} in the log:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The real `wfpd` binary in its own network namespace (`drvapi-PID-N`, only `lo`, no traffic
/// sent): a `[[driver]]` table and the API socket; a driver loaded through the socket by a
/// path relative to the configuration directory, reached, unloaded; the configured one
/// unloaded at stop.
#[test]
fn the_real_daemon_serves_its_configured_and_loaded_drivers() {
    let root = rustix::process::geteuid().is_root();
    let tools = ["ip", "iptables"]
        .iter()
        .all(|p| std::process::Command::new(p).arg("-V").output().is_ok());
    if !root || !tools {
        eprintln!("note: needs root, ip and iptables (a network namespace); skipping");
        return;
    }
    let dir = tempdir("netns");
    build(&dir, "flowmon");
    let drv = dir.join("drv");
    std::fs::create_dir_all(&drv).unwrap();
    build(&drv, "ioctlecho");
    std::fs::write(dir.join("policy.toml"), "").unwrap();
    let config = dir.join("wfpd.toml");
    std::fs::write(
        &config,
        format!(
            "[policy]\nfiles = [\"policy.toml\"]\n\n[api]\nsocket = {:?}\n\n\
             [rules]\nhooks = [ {{ hook = \"OUTPUT\", matches = [\"-o\", \"lo\"] }} ]\n\n\
             [[driver]]\npath = \"flowmon.so\"\n",
            dir.join("wfpd.sock").to_str().unwrap()
        ),
    )
    .unwrap();
    let ns = wfp_nfqueue::TempNetns::create("drvapi").expect("netns");
    let log = dir.join("wfpd.log");
    let child = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            env!("CARGO_BIN_EXE_wfpd"),
            "--config",
        ])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start wfpd");
    let mut daemon = Guarded(child);
    wait_for_log(&log, "wfpd started");

    let mut c = Client::connect(&dir.join("wfpd.sock")).unwrap();
    let list: Vec<DriverView> = c.drivers().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].name.as_str(), list[0].origin.as_str()),
        ("flowmon", "config")
    );
    let loaded: DriverView = c.load_driver("drv/ioctlecho.so", &BTreeMap::new()).unwrap();
    assert_eq!(loaded.path, drv.join("ioctlecho.so").display().to_string());
    assert_eq!(
        ioctl(&mut c, "ioctlecho", IOCTL_UPPER, b"netns"),
        (0, b"NETNS".to_vec())
    );
    assert!(c.unload_driver("ioctlecho").unwrap().findings.is_empty());
    assert_eq!(c.drivers::<DriverView>().unwrap().len(), 1);
    drop(c);

    let status = std::process::Command::new("kill")
        .args(["-s", "TERM", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while daemon.0.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < end, "wfpd did not stop");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let text = wait_for_log(&log, "wfpd stopped");
    assert!(
        text.contains("[ioctlecho] ioctlecho: unloaded after 1 requests"),
        "{text}"
    );
    assert!(text.contains("[flowmon] flowmon: unloaded"), "{text}");
    assert!(!text.contains("driver verifier"), "{text}");
    drop(ns);
    let _ = std::fs::remove_dir_all(&dir);
}
