//! One connection: its peer, its management session, and the request loop with its limits.
//!
//! ```text
//!  accept ─► peer (SO_PEERCRED) ─► loop { wait ≤ idle_timeout for a first byte
//!                                         read the request ≤ request_timeout, ≤ max_request_bytes
//!                                         route (role check) ─► Session ─► answer }
//!  end of connection (close, error, timeout) ─► Session dropped ─► its dynamic objects deleted
//! ```

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use wfp_api::http::{self, HttpError, Limits, Message};
use wfp_api::{ErrorBody, ErrorInfo};
use wfp_core::engine::{NetEventEnumTemplate, PersistHook, Session, SessionSpec};
use wfp_core::FwpError;

use super::peer::{self, Peer, Role};
use super::Shared;

/// A failed request: the HTTP status and the error body.
pub(crate) struct Failure {
    pub(crate) status: u16,
    pub(crate) error: ErrorInfo,
}

impl Failure {
    pub(crate) fn new(status: u16, code: u32, name: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            error: ErrorInfo {
                code,
                name: name.to_string(),
                message: message.into(),
            },
        }
    }

    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(404, 0, "HTTP_NOT_FOUND", format!("no endpoint {what}"))
    }
}

impl From<FwpError> for Failure {
    fn from(e: FwpError) -> Self {
        let status = match e.code() & 0xFFFF {
            0x1..=0x5 | 0x7 | 0x8 => 404,
            0x9..=0xE | 0x11 | 0x16 | 0x17 => 409,
            0x12 => 503,
            _ if e.code() == 0x8000_4005 => 500,
            _ => 400,
        };
        Self {
            status,
            error: (&e).into(),
        }
    }
}

impl From<wfp_api::ConvertError> for Failure {
    fn from(e: wfp_api::ConvertError) -> Self {
        Self {
            status: 400,
            error: (&e).into(),
        }
    }
}

pub(crate) type Answer = Result<Vec<u8>, Failure>;

pub(crate) fn json<T: Serialize>(v: &T) -> Answer {
    serde_json::to_vec(v).map_err(|e| Failure::new(500, 0x8000_4005, "E_FAIL", e.to_string()))
}

pub(crate) fn body<T: DeserializeOwned>(m: &Message) -> Result<T, Failure> {
    serde_json::from_slice(&m.body).map_err(|e| {
        Failure::new(
            400,
            0x8032_0035,
            "FWP_E_INVALID_PARAMETER",
            format!("bad JSON body: {e}"),
        )
    })
}

/// A socket reader whose reads fail once `deadline` passes (a request must arrive whole within
/// the request timeout, however slowly it trickles in).
struct DeadlineReader {
    stream: UnixStream,
    deadline: Option<Instant>,
}

impl Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(d) = self.deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.stream.set_read_timeout(Some(left))?;
        }
        self.stream.read(buf)
    }
}

/// A connection's state.
pub(crate) struct Conn<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) peer: Peer,
    pub(crate) session: Option<Session<'a>>,
}

impl<'a> Conn<'a> {
    fn hook(&self) -> Option<&'a dyn PersistHook> {
        let shared: &'a Shared = self.shared;
        shared.store.as_deref().map(|s| s as &dyn PersistHook)
    }

    /// Opens the connection's session with `spec` (owner = the peer).
    pub(crate) fn open(&mut self, mut spec: SessionSpec) -> Result<&mut Session<'a>, Failure> {
        spec.owner = self.peer.owner.clone();
        let hook = self.hook();
        let engine: &'a wfp_core::Engine = &self.shared.engine;
        let s = engine.open_session(spec, hook)?;
        Ok(self.session.insert(s))
    }

    /// The connection's session, opened with defaults (static, 15 s wait) on first use.
    pub(crate) fn session(&mut self) -> Result<&mut Session<'a>, Failure> {
        if self.session.is_none() {
            self.open(SessionSpec {
                name: format!(
                    "{} (pid {})",
                    self.peer.owner.username, self.peer.owner.process_id
                ),
                ..SessionSpec::default()
            })?;
        }
        self.session
            .as_mut()
            .ok_or_else(|| Failure::new(500, 0x8000_4005, "E_FAIL", "no session"))
    }

    /// Refuses a peer without the right role for `write`.
    fn authorize(&self, write: bool) -> Result<(), Failure> {
        match (self.peer.role, write) {
            (Role::Admin, _) | (Role::Viewer, false) => Ok(()),
            (role, _) => Err(Failure::new(
                403,
                0x8007_0005,
                "E_ACCESSDENIED",
                format!(
                    "uid {} ({:?}) may not {}",
                    self.peer.owner.user_id,
                    role,
                    if write {
                        "change policy"
                    } else {
                        "use this API"
                    }
                ),
            )),
        }
    }

    fn handle(&mut self, m: &Message) -> Answer {
        let (method, target) = m
            .request_line()
            .map_err(|e| Failure::new(400, 0, "HTTP_BAD_REQUEST", e.to_string()))?;
        let path = target.split('?').next().unwrap_or_default();
        let read = method == "GET" || (method == "POST" && path == "/v1/filters/enum");
        self.authorize(!read)?;
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segments.as_slice() {
            ["v1", rest @ ..] => super::routes::route(self, method, rest, m),
            _ => Err(Failure::not_found(path)),
        }
    }
}

fn write_failure(w: &mut impl Write, f: &Failure, close: bool) -> io::Result<()> {
    let body = serde_json::to_vec(&ErrorBody {
        error: f.error.clone(),
    })
    .unwrap_or_default();
    http::write_response(w, f.status, &body, close)
}

fn http_failure(e: &HttpError) -> Failure {
    match e {
        HttpError::HeadTooLarge(_) => Failure::new(431, 0, "HTTP_HEADERS_TOO_LARGE", e.to_string()),
        HttpError::BodyTooLarge { .. } => Failure::new(413, 0, "HTTP_TOO_LARGE", e.to_string()),
        HttpError::Io(_) => Failure::new(408, 0, "HTTP_REQUEST_TIMEOUT", e.to_string()),
        _ => Failure::new(400, 0, "HTTP_BAD_REQUEST", e.to_string()),
    }
}

/// Serves one connection until it closes, errs or idles out.
pub(crate) fn serve(shared: &Shared, stream: UnixStream) {
    let Some(peer) = peer::peer(&stream, shared.groups) else {
        return;
    };
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let _ = writer.set_write_timeout(Some(Duration::from_millis(
        shared.config.request_timeout_ms,
    )));
    let mut reader = BufReader::new(DeadlineReader {
        stream,
        deadline: None,
    });
    let mut conn = Conn {
        shared,
        peer,
        session: None,
    };
    let limits = Limits {
        max_head: 16 * 1024,
        max_body: shared.config.max_request_bytes,
    };
    let idle = Duration::from_millis(shared.config.idle_timeout_ms);
    while wait_for_request(shared, &mut reader, idle) {
        let timeout = Duration::from_millis(shared.config.request_timeout_ms);
        reader.get_mut().deadline = Some(Instant::now() + timeout);
        let request = match http::read_message(&mut reader, &limits) {
            Ok(m) => m,
            Err(HttpError::Closed) => break,
            Err(e) => {
                let _ = write_failure(&mut writer, &http_failure(&e), true);
                break;
            }
        };
        if let Some(stream) = streaming(&request) {
            if let Err(f) = conn.authorize(false) {
                let _ = write_failure(&mut writer, &f, true);
                break;
            }
            match stream {
                Stream::Events(query) => match wfp_api::NetEventQuery::parse(&query) {
                    Ok(q) => stream_events(shared, &mut writer, q.template),
                    Err(e) => {
                        let _ = write_failure(&mut writer, &Failure::from(e), true);
                    }
                },
                Stream::Pending => stream_pending(shared, &mut writer),
                Stream::Metrics => {
                    let body = super::metrics::render(shared);
                    let _ = http::write_response_typed(
                        &mut writer,
                        200,
                        super::metrics::CONTENT_TYPE,
                        body.as_bytes(),
                        true,
                    );
                }
            }
            break;
        }
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let sent = match conn.handle(&request) {
            Ok(body) => http::write_response(&mut writer, 200, &body, close),
            Err(f) => write_failure(&mut writer, &f, close),
        };
        if sent.is_err() || close {
            break;
        }
    }
}

/// Waits up to `idle` for the first byte of a request, checking the stop flag every 200 ms;
/// false when the connection should end (closed, idle, error, stopping).
fn wait_for_request(
    shared: &Shared,
    reader: &mut BufReader<DeadlineReader>,
    idle: Duration,
) -> bool {
    let started = Instant::now();
    reader.get_mut().deadline = None;
    while !shared.stop.load(Ordering::Relaxed) && started.elapsed() < idle {
        let tick = idle
            .saturating_sub(started.elapsed())
            .min(Duration::from_millis(200));
        if reader
            .get_mut()
            .stream
            .set_read_timeout(Some(tick.max(Duration::from_millis(1))))
            .is_err()
        {
            return false;
        }
        match reader.fill_buf() {
            Ok([]) => return false,
            Ok(_) => return true,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return false,
        }
    }
    false
}

/// Answers that are not one JSON body (the connection ends after them).
enum Stream {
    /// `GET /v1/events?QUERY`.
    Events(String),
    /// `GET /v1/pending/stream`.
    Pending,
    /// `GET /v1/metrics` (text, then the connection closes).
    Metrics,
}

fn streaming(m: &Message) -> Option<Stream> {
    let (method, target) = m.request_line().ok()?;
    if method != "GET" {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match path.trim_end_matches('/') {
        "/v1/events" => Some(Stream::Events(query.to_string())),
        "/v1/pending/stream" => Some(Stream::Pending),
        "/v1/metrics" => Some(Stream::Metrics),
        _ => None,
    }
}

/// `GET /v1/pending/stream`: the waiting prompts, then each new one, one JSON line each, until the
/// client goes away or the server stops.
fn stream_pending(shared: &Shared, w: &mut UnixStream) {
    if http::write_stream_head(w).is_err() {
        return;
    }
    let mut cursor = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        for p in super::pending::after(shared, cursor) {
            cursor = cursor.max(p.id);
            let mut line = serde_json::to_vec(&p).unwrap_or_default();
            line.push(b'\n');
            if http::write_chunk(w, &line).is_err() {
                return;
            }
        }
        if peer_gone(w) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = http::write_chunk(w, b"");
}

/// True when a streaming client closed its end (EOF) or its socket failed — a stream that has
/// nothing to send would otherwise never notice and keep its thread and connection slot. Bytes
/// the client sends on a stream are discarded.
fn peer_gone(s: &mut UnixStream) -> bool {
    if s.set_read_timeout(Some(Duration::from_millis(1))).is_err() {
        return true;
    }
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
        ),
    }
}

/// `GET /v1/events`: one JSON line per net event matching `template` until the client goes away
/// or the server stops.
fn stream_events(shared: &Shared, w: &mut UnixStream, template: NetEventEnumTemplate) {
    // With `after_seq`, the ring's events after it come first (a watcher resumes where it
    // stopped); subscribing before reading the ring and skipping seqs already sent loses none
    // and repeats none.
    let replay = template
        .after_seq
        .map(|_| shared.engine.enum_net_events(&template));
    let rx = shared.events.subscribe(template);
    if http::write_stream_head(w).is_err() {
        return;
    }
    let mut last_sent = 0;
    let mut send = |w: &mut UnixStream, event: &wfp_api::NetEventDto| {
        if event.seq != 0 && event.seq <= last_sent {
            return true;
        }
        last_sent = last_sent.max(event.seq);
        let mut line = serde_json::to_vec(event).unwrap_or_default();
        line.push(b'\n');
        http::write_chunk(w, &line).is_ok()
    };
    for e in replay.unwrap_or_default() {
        if !send(w, &wfp_api::NetEventDto::from(&e)) {
            return;
        }
    }
    while !shared.stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(event) => {
                if !send(w, &event) {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if peer_gone(w) {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = http::write_chunk(w, b"");
}
