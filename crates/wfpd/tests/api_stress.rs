//! The API under load and under hostile input, in process: 32 concurrent clients adding and
//! deleting filters end with exactly the filters they kept; the HTTP request parser and the
//! endpoints never panic on arbitrary or mutated requests (property tests), and the server keeps
//! answering other clients throughout.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use wfp_api::http::{read_message, Limits};
use wfp_api::{Client, FilterDto, ValueDto, WeightDto};
use wfp_core::Engine;
use wfpd::api::{ApiConfig, Server};

static SEQ: AtomicU32 = AtomicU32::new(0);

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "wfpd-api-stress-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn start(dir: &Path) -> (Arc<Engine>, Server) {
    let engine = Arc::new(Engine::default());
    let mut config = ApiConfig::default();
    config.socket = Some(dir.join("wfpd.sock"));
    config.max_request_bytes = 8192;
    config.request_timeout_ms = 500;
    let server = Server::start(Arc::clone(&engine), None, config).unwrap();
    (engine, server)
}

fn filter(name: String, port: u16) -> FilterDto {
    FilterDto {
        key: None,
        name,
        description: String::new(),
        flags: Vec::new(),
        provider: None,
        layer: "ALE_AUTH_CONNECT_V4".into(),
        sublayer: None,
        weight: WeightDto::Auto,
        conditions: vec![wfp_api::ConditionDto {
            field: "IP_REMOTE_PORT".into(),
            match_type: "EQUAL".into(),
            value: ValueDto::Uint16 { value: port },
        }],
        action: "BLOCK".into(),
        callout: None,
        raw_context: 0,
        provider_context: None,
    }
}

#[test]
fn thirty_two_concurrent_clients_add_and_delete_with_consistent_results() {
    const CLIENTS: u16 = 32;
    const EACH: u16 = 20;
    let dir = tempdir();
    let (engine, server) = start(&dir);
    let path = server.path().to_path_buf();
    let kept: Vec<Vec<(u64, String)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let path = path.clone();
                s.spawn(move || {
                    let mut client = Client::connect(&path).unwrap();
                    let mut kept = Vec::new();
                    for j in 0..EACH {
                        let name = format!("c{c}-f{j}");
                        let added = client
                            .add_filter(&filter(name.clone(), c * 100 + j))
                            .unwrap();
                        let id = added.id.unwrap();
                        if j % 2 == 0 {
                            client.delete_filter(id).unwrap();
                        } else {
                            kept.push((id, name));
                        }
                    }
                    kept
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut expected: Vec<(u64, String)> = kept.into_iter().flatten().collect();
    expected.sort();
    let mut got: Vec<(u64, String)> = engine
        .filters()
        .iter()
        .map(|f| (f.filter_id().0, f.name().to_string()))
        .collect();
    got.sort();
    assert_eq!(got.len(), usize::from(CLIENTS * EACH / 2));
    assert_eq!(
        got, expected,
        "the engine holds exactly what the clients kept"
    );
    let listed = Client::connect(&path).unwrap().filters().unwrap();
    assert_eq!(listed.len(), got.len());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends `bytes` on a fresh connection, closes the write side, reads the answer (bounded).
fn exchange(path: &Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

const VALID: &[&str] = &[
    "GET /v1/state HTTP/1.1\r\nHost: w\r\n\r\n",
    "POST /v1/filters HTTP/1.1\r\nContent-Length: 62\r\n\r\n{\"name\":\"x\",\"layer\":\"ALE_AUTH_CONNECT_V4\",\"action\":\"BLOCK\"}\r\n",
    "GET /v1/netevents?kind=CLASSIFY_DROP&port=80 HTTP/1.1\r\n\r\n",
    "POST /v1/pending/1 HTTP/1.1\r\nContent-Length: 22\r\n\r\n{\"decision\":\"permit\"}\n",
    "POST /v1/txn/begin HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "DELETE /v1/filters/key/{00000000-0000-0000-0000-000000000001} HTTP/1.1\r\n\r\n",
    "POST /v1/filters/enum HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
];

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(VALID),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 0..6),
    )
        .prop_map(|(base, edits)| {
            let mut b = base.as_bytes().to_vec();
            for (at, byte, op) in edits {
                if b.is_empty() {
                    break;
                }
                let i = at.index(b.len());
                match op {
                    0 => b[i] = byte,
                    1 => b.insert(i, byte),
                    2 => {
                        b.remove(i);
                    }
                    _ => b.truncate(i),
                }
            }
            b
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    // The parser alone: arbitrary bytes and mutated requests are a message or an error, never a
    // panic, and never beyond the limits.
    #[test]
    fn the_request_parser_never_panics(
        bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..600), mutated()],
    ) {
        let limits = Limits { max_head: 256, max_body: 128 };
        if let Ok(m) = read_message(&mut std::io::Cursor::new(&bytes), &limits) {
            prop_assert!(m.body.len() <= 128);
            let _ = m.request_line();
        }
    }
}

#[test]
fn hostile_requests_through_the_server_get_answers_and_never_stop_it() {
    let dir = tempdir();
    let (_engine, server) = start(&dir);
    let path = server.path().to_path_buf();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 150,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let mut watcher = Client::connect(&path).unwrap();
    runner
        .run(&mutated(), |bytes| {
            let answer = exchange(&path, &bytes);
            // A request the parser accepts must be answered (a handler that panicked would close
            // the connection silently); anything else gets an error answer or, for an empty or
            // unfinished request, a closed connection.
            let limits = Limits {
                max_head: 16 * 1024,
                max_body: 8192,
            };
            let complete = read_message(&mut std::io::Cursor::new(&bytes), &limits).is_ok();
            prop_assert!(
                answer.starts_with("HTTP/1.1 ") || (!complete && answer.is_empty()),
                "{:?} -> {answer:?}",
                String::from_utf8_lossy(&bytes)
            );
            Ok(())
        })
        .unwrap();
    // The long-lived client was never disturbed.
    assert!(watcher.state().is_ok());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

// A streaming client that goes away is noticed even when nothing is streamed: its thread and
// connection slot are freed (else max_connections abandoned streams would lock everyone out).
#[test]
fn abandoned_streams_free_their_connection() {
    let dir = tempdir();
    let (_engine, server) = start(&dir);
    for target in ["/v1/events", "/v1/pending/stream", "/v1/events?kind=VETO"] {
        let mut s = UnixStream::connect(server.path()).unwrap();
        write!(s, "GET {target} HTTP/1.1\r\nHost: w\r\n\r\n").unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200", "{target}");
        let start = std::time::Instant::now();
        while server.connections() == 0 {
            assert!(start.elapsed() < Duration::from_secs(3));
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(s);
        while server.connections() != 0 {
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "{target}: the stream outlived its client"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
