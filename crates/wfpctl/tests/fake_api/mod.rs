//! A canned wfpd API on a real Unix socket (real HTTP/1.1 framing from `wfp_api::http`) for the
//! endpoints this branch's daemon does not serve yet (`/v1/flows`, `/v1/netevents`,
//! `/v1/metrics`, `/v1/pending*`, `/v1/drivers*`). Answers are JSON fixtures written from
//! docs/api.md; every request is recorded so tests can check what the client sent.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this helper"
)]

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wfp_api::http::{self, Limits};

/// One canned answer.
#[derive(Clone)]
pub(crate) enum Reply {
    /// A status and a body (JSON or text).
    Body(u16, String),
    /// A chunked stream of these lines, then the stream stays open until the server stops.
    Stream(Vec<String>),
}

/// A recorded request: `METHOD TARGET` and the body.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    /// `GET /v1/flows`.
    pub(crate) line: String,
    /// The body as text.
    pub(crate) body: String,
}

/// The server; dropping it stops it.
pub(crate) struct FakeApi {
    path: PathBuf,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl FakeApi {
    /// Serves on `dir/api.sock`.
    pub(crate) fn start(dir: &Path) -> Self {
        let path = dir.join("api.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let api = Self {
            path,
            routes: Arc::default(),
            seen: Arc::default(),
            stop: Arc::default(),
        };
        let (routes, seen, stop) = (api.routes.clone(), api.seen.clone(), api.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (routes, seen, stop) = (routes.clone(), seen.clone(), stop.clone());
                        std::thread::spawn(move || serve(s, &routes, &seen, &stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        api
    }

    /// The socket.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Answers `METHOD PATH` (the path without its query) with `reply`.
    pub(crate) fn route(&self, method_path: &str, reply: Reply) {
        self.routes
            .lock()
            .unwrap()
            .insert(method_path.to_string(), reply);
    }

    /// Requests so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(
    stream: UnixStream,
    routes: &Mutex<HashMap<String, Reply>>,
    seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
) {
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let limits = Limits {
        max_head: 16 * 1024,
        max_body: 1 << 20,
    };
    while let Ok(req) = http::read_message(&mut r, &limits) {
        let Ok((method, target)) = req.request_line() else {
            return;
        };
        seen.lock().unwrap().push(Seen {
            line: format!("{method} {target}"),
            body: String::from_utf8_lossy(&req.body).into_owned(),
        });
        let path = target.split('?').next().unwrap_or(target);
        let reply = routes
            .lock()
            .unwrap()
            .get(&format!("{method} {path}"))
            .cloned();
        match reply {
            Some(Reply::Body(status, body)) => {
                if http::write_response(&mut w, status, body.as_bytes(), false).is_err() {
                    return;
                }
            }
            Some(Reply::Stream(lines)) => {
                let _ = http::write_stream_head(&mut w);
                for l in lines {
                    let _ = http::write_chunk(&mut w, format!("{l}\n").as_bytes());
                }
                let _ = w.flush();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return;
            }
            None => {
                let body = format!(
                    r#"{{"error":{{"code":0,"name":"HTTP_NOT_FOUND","message":"no route {method} {path}"}}}}"#
                );
                if http::write_response(&mut w, 404, body.as_bytes(), false).is_err() {
                    return;
                }
            }
        }
    }
}
