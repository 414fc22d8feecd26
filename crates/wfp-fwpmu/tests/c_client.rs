//! A C management program (tests/c/fwpmu_client.c, compiled by gcc against include/fwpmu.h and
//! linked with this crate's cdylib) run against a real wfpd API server (in process, temp
//! socket): it opens a session, adds a provider, sublayer, callout and filter in one
//! transaction, enumerates and deletes them. While it is subscribed to net events this test
//! classifies a connection its filter blocks, drains the engine's CLASSIFY_DROP event and
//! publishes it as wfpd's daemon loop does; the C callback must receive it, and the program
//! then enumerates the stored event (FwpmNetEventCreateEnumHandle0 with a matching and a
//! non-matching template). The program runs under valgrind when it is installed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wfp_core::catalogue::layer_by_name;
use wfp_core::{Engine, LayerData, Metadata, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The directory holding `libwfp_fwpmu.so`: this test's deps/ (where `cargo test` builds the
/// cdylib), else target/<profile> (after `cargo build`).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap().to_path_buf();
    if deps.join("libwfp_fwpmu.so").exists() {
        return deps;
    }
    deps.parent().unwrap().to_path_buf()
}

fn compile(out: &Path) -> Option<PathBuf> {
    if Command::new("gcc").arg("--version").output().is_err() {
        eprintln!("note: gcc is not installed; the C client was not built");
        return None;
    }
    let lib = lib_dir();
    assert!(
        lib.join("libwfp_fwpmu.so").exists(),
        "no libwfp_fwpmu.so in {}",
        lib.display()
    );
    let exe = out.join("fwpmu_client");
    let status = Command::new("gcc")
        .args([
            "-std=gnu11",
            "-fshort-wchar",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O1",
            "-g",
        ])
        .arg("-I")
        .arg(repo().join("include"))
        .arg(repo().join("crates/wfp-fwpmu/tests/c/fwpmu_client.c"))
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lwfp_fwpmu", "-o"])
        .arg(&exe)
        .status()
        .unwrap();
    assert!(status.success(), "gcc failed");
    Some(exe)
}

/// The C program, under valgrind when it is installed (invalid reads or writes, e.g. of an
/// enumeration block, and definite leaks fail the run with exit code 99).
fn runner(exe: &Path) -> Command {
    let valgrind = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !valgrind {
        eprintln!("note: valgrind is not installed; the C client runs without it");
        return Command::new(exe);
    }
    let mut c = Command::new("valgrind");
    c.args([
        "-q",
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
    ])
    .arg(exe);
    c
}

/// Classifies an outbound TCP connection to 10.0.0.1:23 at ALE_AUTH_CONNECT_V4 (the C client's
/// filter blocks it) and returns the engine's net events.
fn blocked_connect(engine: &Engine) -> Vec<wfp_core::NetEvent> {
    let layer = layer_by_name("ALE_AUTH_CONNECT_V4").unwrap();
    let mut values = vec![Value::Empty; layer.fields.len()];
    let mut set = |name: &str, v: Value| {
        values[layer.field_index_by_name(name).unwrap()] = v;
    };
    set("IP_PROTOCOL", Value::Uint8(6));
    set("IP_REMOTE_ADDRESS", Value::Uint32(0x0A00_0001));
    set("IP_REMOTE_PORT", Value::Uint16(23));
    set("IP_LOCAL_PORT", Value::Uint16(40_000));
    let r = engine.classify(
        layer.layer_id(),
        &values,
        &Metadata::default(),
        &mut LayerData::None,
        None,
    );
    assert_eq!(r.action.name(), "BLOCK", "the C client's filter decides");
    engine.drain_net_events()
}

#[test]
fn c_program_manages_wfpd_through_fwpmu() {
    let dir = std::env::temp_dir().join(format!("wfp-fwpmu-c-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let Some(exe) = compile(&dir) else {
        return;
    };
    let engine = Arc::new(Engine::default());
    let mut config = wfpd::api::ApiConfig::default();
    config.socket = Some(dir.join("wfpd.sock"));
    let server = wfpd::api::Server::start(Arc::clone(&engine), None, config).unwrap();

    // cargo's LD_LIBRARY_PATH lists target/<profile> too, where an older `cargo build` may have
    // left a stale copy of the library: load the one this test linked.
    let mut child = runner(&exe)
        .env("LD_LIBRARY_PATH", lib_dir())
        .env("WFPD_SOCKET", server.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut transcript = String::new();
    let mut line = String::new();
    let mut filter_id = 0u64;
    while out.read_line(&mut line).unwrap() > 0 {
        transcript.push_str(&line);
        if let Some(id) = line.strip_prefix("FILTER ") {
            filter_id = id.trim().parse().unwrap();
            assert_eq!(
                engine.filters().len(),
                1,
                "the transaction committed one filter"
            );
        }
        if line.starts_with("SUBSCRIBED") {
            break;
        }
        line.clear();
    }
    assert!(transcript.contains("SUBSCRIBED"), "{transcript}");
    // The stream may be registered a moment after the C side returned: publish until the
    // callback has it (bounded).
    let give_up = Instant::now() + Duration::from_secs(10);
    let events = blocked_connect(&engine);
    assert!(
        events
            .iter()
            .any(|e| e.filter_id.map(|f| f.0) == Some(filter_id)),
        "{events:?}"
    );
    let publisher = {
        let server = &server;
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let mut rest = String::new();
                let _ = std::io::Read::read_to_string(&mut out, &mut rest);
                rest
            });
            while !h.is_finished() && Instant::now() < give_up {
                server.publish(&events);
                std::thread::sleep(Duration::from_millis(50));
            }
            h.join().unwrap()
        })
    };
    transcript.push_str(&publisher);
    let status = child.wait().unwrap();
    assert!(status.success(), "{transcript}");
    assert!(
        transcript.contains(&format!("EVENT type=3 filter={filter_id}")),
        "{transcript}"
    );
    // FwpmNetEventCreateEnumHandle0 / Enum0 found the published drop in the ring (§11.5).
    assert!(transcript.contains("ENUMERATED "), "{transcript}");
    assert!(transcript.trim_end().ends_with("OK"), "{transcript}");
    assert!(
        engine.filters().is_empty(),
        "the C client deleted its filter"
    );
    assert!(engine.callouts().is_empty() && engine.providers().is_empty());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
