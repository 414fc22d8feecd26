//! Boot-time filters through the management API, in process (no queues, no nft needed): added
//! with the same validation as WFP plus what the kernel table can express, enumerated only with
//! INCLUDE_BOOTTIME / BOOTTIME_ONLY, stored, and written to the ruleset file only when a commit
//! changes them (§11.3, §11.4).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use wfp_api::{Client, FilterDto, FilterEnumRequest, SessionRequest, ValueDto};
use wfp_core::Engine;
use wfpd::api::{ApiConfig, Server};
use wfpd::boottime::BootRules;

static SEQ: AtomicU32 = AtomicU32::new(0);

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "wfpd-boot-api-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn start(dir: &Path) -> (Arc<Engine>, Server) {
    let engine = Arc::new(Engine::default());
    let store = wfp_store::Store::open(&dir.join("store.redb")).unwrap();
    store.load().unwrap().install(&engine).unwrap();
    let mut config = ApiConfig::default();
    config.socket = Some(dir.join("wfpd.sock"));
    let server = Server::start(Arc::clone(&engine), Some(Arc::new(store)), config).unwrap();
    server.set_boottime(Arc::new(BootRules::new(dir.join("boottime.nft"))));
    (engine, server)
}

fn boot_filter(name: &str, layer: &str, field: &str, value: ValueDto) -> FilterDto {
    FilterDto {
        key: None,
        name: name.into(),
        description: String::new(),
        flags: vec!["BOOTTIME".into()],
        provider: None,
        layer: layer.into(),
        sublayer: None,
        weight: wfp_api::WeightDto::Auto,
        conditions: vec![wfp_api::ConditionDto {
            field: field.into(),
            match_type: "EQUAL".into(),
            value,
        }],
        action: "BLOCK".into(),
        callout: None,
        raw_context: 0,
        provider_context: None,
    }
}

fn port_block(name: &str, port: u16) -> FilterDto {
    boot_filter(
        name,
        "INBOUND_TRANSPORT_V4",
        "IP_LOCAL_PORT",
        ValueDto::Uint16 { value: port },
    )
}

fn listed(c: &mut Client, include_boottime: bool, boottime_only: bool) -> Vec<String> {
    c.enum_filters(&FilterEnumRequest {
        include_boottime,
        boottime_only,
        ..FilterEnumRequest::default()
    })
    .unwrap()
    .into_iter()
    .map(|v| v.filter.name)
    .collect()
}

fn rules(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("boottime.nft")).unwrap_or_default()
}

#[test]
fn boottime_filters_are_added_enumerated_with_the_flags_and_written_at_commit() {
    let dir = tempdir();
    let (engine, server) = start(&dir);
    let mut c = Client::connect(server.path()).unwrap();
    c.add_filter(&port_block("boot 7000", 7000)).unwrap();
    let mut normal = port_block("run-time", 7001);
    normal.flags.clear();
    c.add_filter(&normal).unwrap();
    assert!(
        rules(&dir).contains("th dport 7000 drop"),
        "{}",
        rules(&dir)
    );
    assert_eq!(
        engine.filters().len(),
        1,
        "the boot-time filter is not classified"
    );
    assert_eq!(listed(&mut c, false, false), ["run-time"]);
    assert_eq!(listed(&mut c, true, false), ["boot 7000", "run-time"]);
    assert_eq!(listed(&mut c, false, true), ["boot 7000"]);
    assert_eq!(c.state().unwrap().persistent_objects, 1);

    // Inside a transaction the file follows the commit, not the add; an abort leaves it.
    c.begin(false).unwrap();
    c.add_filter(&port_block("boot 7002", 7002)).unwrap();
    assert!(!rules(&dir).contains("7002"));
    c.abort().unwrap();
    assert!(!rules(&dir).contains("7002"));
    c.begin(false).unwrap();
    let added = c.add_filter(&port_block("boot 7003", 7003)).unwrap();
    c.commit().unwrap();
    assert!(rules(&dir).contains("th dport 7003 drop"));
    c.delete_filter(added.id.unwrap()).unwrap();
    assert!(!rules(&dir).contains("7003"));
    assert!(rules(&dir).contains("7000"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn what_the_kernel_table_cannot_express_is_refused_with_wfp_statuses() {
    let dir = tempdir();
    let (engine, server) = start(&dir);
    let mut c = Client::connect(server.path()).unwrap();
    let refused = |c: &mut Client, f: &FilterDto| c.add_filter(f).unwrap_err();
    let app = boot_filter(
        "app",
        "ALE_AUTH_CONNECT_V4",
        "ALE_APP_ID",
        ValueDto::ByteBlob {
            hex: "2f62696e2f78".into(),
        },
    );
    let e = refused(&mut c, &app);
    assert_eq!(e.fwp_name(), Some("FWP_E_CONDITION_NOT_FOUND"), "{e}");
    let mut stream = port_block("stream", 80);
    stream.layer = "STREAM_V4".into();
    stream.conditions.clear();
    let e = refused(&mut c, &stream);
    assert_eq!(e.fwp_name(), Some("FWP_E_INCOMPATIBLE_LAYER"), "{e}");
    let mut both = port_block("both", 81);
    both.flags.push("PERSISTENT".into());
    assert_eq!(
        refused(&mut c, &both).fwp_name(),
        Some("FWP_E_INVALID_FLAGS")
    );
    c.open_session(&SessionRequest {
        dynamic: true,
        ..SessionRequest::default()
    })
    .unwrap();
    let e = refused(&mut c, &port_block("dynamic", 82));
    assert_eq!(e.fwp_name(), Some("FWP_E_DYNAMIC_SESSION_IN_PROGRESS"));
    assert!(engine.boottime().filters.is_empty());
    assert_eq!(rules(&dir), "", "nothing committed, nothing written");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn boottime_filters_come_back_from_the_store() {
    let dir = tempdir();
    {
        let (_engine, server) = start(&dir);
        let mut c = Client::connect(server.path()).unwrap();
        c.add_filter(&port_block("kept", 7100)).unwrap();
    }
    let (engine, _server) = start(&dir);
    let set = engine.boottime();
    assert_eq!(set.filters.len(), 1);
    assert_eq!(set.filters[0].name(), "kept");
    assert!(engine.filters().is_empty());
    let (_, script) = wfpd::boottime::script_of(&engine).unwrap();
    assert!(script.contains("th dport 7100 drop"), "{script}");
    let _ = std::fs::remove_dir_all(&dir);
}
