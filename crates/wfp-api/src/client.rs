//! A blocking client for wfpd's API. One [`Client`] is one connection, and the daemon keeps one
//! management session per connection: a dynamic session's objects are deleted when the client is
//! dropped or its process dies.

use std::io::{self, BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;

use crate::http::{self, ChunkedReader, HttpError, Limits};
use crate::types::{
    Added, BeginRequest, CalloutDto, CalloutView, ErrorBody, ErrorInfo, FilterDto,
    FilterEnumRequest, FilterView, Key, NetEventDto, ProviderDto, SessionRequest, SessionView,
    StateView, SublayerDto, SublayerView,
};

/// A failed call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket could not be reached (absent daemon, or no permission: EACCES).
    #[error("cannot connect to {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The connection failed or the answer was not HTTP.
    #[error("{0}")]
    Http(#[from] HttpError),
    /// The daemon answered with an error.
    #[error("{} ({:#010x}, HTTP {status}): {}", error.name, error.code, error.message)]
    Api {
        /// HTTP status.
        status: u16,
        /// The error body.
        error: ErrorInfo,
    },
    /// A body was not the JSON expected.
    #[error("bad JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl ClientError {
    /// The `FWP_E_*` name of an API error (`None` for transport errors).
    pub fn fwp_name(&self) -> Option<&str> {
        match self {
            Self::Api { error, .. } => Some(&error.name),
            _ => None,
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        Self::Http(HttpError::Io(e))
    }
}

/// A connection (and session) to wfpd.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    limits: Limits,
}

impl Client {
    /// Connects to the socket at `path` (30 s timeouts; see [`Client::set_timeout`]).
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        let writer = stream.try_clone()?;
        let client = Self {
            reader: BufReader::new(stream),
            writer,
            limits: Limits {
                max_head: 64 * 1024,
                max_body: 256 * 1024 * 1024,
            },
        };
        client.set_timeout(Some(Duration::from_secs(30)))?;
        Ok(client)
    }

    /// Read and write timeouts for every call (`None`: wait forever).
    pub fn set_timeout(&self, t: Option<Duration>) -> Result<(), ClientError> {
        self.writer.set_read_timeout(t)?;
        self.writer.set_write_timeout(t)?;
        Ok(())
    }

    /// One request: `body` as JSON, the answer parsed as `R`; an error status becomes
    /// [`ClientError::Api`].
    pub fn call<B: Serialize, R: DeserializeOwned>(
        &mut self,
        method: &str,
        target: &str,
        body: Option<&B>,
    ) -> Result<R, ClientError> {
        let bytes = body.map(serde_json::to_vec).transpose()?;
        http::write_request(&mut self.writer, method, target, bytes.as_deref())?;
        let answer = http::read_message(&mut self.reader, &self.limits)?;
        let status = answer.status()?;
        if status != 200 {
            let error = serde_json::from_slice::<ErrorBody>(&answer.body)
                .map(|b| b.error)
                .unwrap_or_else(|_| ErrorInfo {
                    code: 0,
                    name: format!("HTTP_{status}"),
                    message: String::from_utf8_lossy(&answer.body).into_owned(),
                });
            return Err(ClientError::Api { status, error });
        }
        Ok(serde_json::from_slice(&answer.body)?)
    }

    fn get<R: DeserializeOwned>(&mut self, target: &str) -> Result<R, ClientError> {
        self.call::<(), R>("GET", target, None)
    }

    fn command<B: Serialize>(
        &mut self,
        method: &str,
        target: &str,
        body: Option<&B>,
    ) -> Result<(), ClientError> {
        self.call::<B, IgnoredAny>(method, target, body).map(|_| ())
    }

    /// `GET /v1/state`.
    pub fn state(&mut self) -> Result<StateView, ClientError> {
        self.get("/v1/state")
    }

    /// `POST /v1/session`: opens this connection's session with `req` (before any other call
    /// that uses the session).
    pub fn open_session(&mut self, req: &SessionRequest) -> Result<SessionView, ClientError> {
        self.call("POST", "/v1/session", Some(req))
    }

    /// `DELETE /v1/session`: closes the session (dynamic objects deleted); the next call opens a
    /// new default one.
    pub fn close_session(&mut self) -> Result<(), ClientError> {
        self.command::<()>("DELETE", "/v1/session", None)
    }

    /// `GET /v1/sessions`.
    pub fn sessions(&mut self) -> Result<Vec<SessionView>, ClientError> {
        self.get("/v1/sessions")
    }

    /// `POST /v1/txn/begin`.
    pub fn begin(&mut self, read_only: bool) -> Result<(), ClientError> {
        self.command("POST", "/v1/txn/begin", Some(&BeginRequest { read_only }))
    }

    /// `POST /v1/txn/commit`.
    pub fn commit(&mut self) -> Result<(), ClientError> {
        self.command::<()>("POST", "/v1/txn/commit", None)
    }

    /// `POST /v1/txn/abort`.
    pub fn abort(&mut self) -> Result<(), ClientError> {
        self.command::<()>("POST", "/v1/txn/abort", None)
    }

    /// `GET /v1/filters`.
    pub fn filters(&mut self) -> Result<Vec<FilterView>, ClientError> {
        self.get("/v1/filters")
    }

    /// `POST /v1/filters/enum` with a template.
    pub fn enum_filters(&mut self, t: &FilterEnumRequest) -> Result<Vec<FilterView>, ClientError> {
        self.call("POST", "/v1/filters/enum", Some(t))
    }

    /// `GET /v1/filters/{id}`.
    pub fn filter(&mut self, id: u64) -> Result<FilterView, ClientError> {
        self.get(&format!("/v1/filters/{id}"))
    }

    /// `POST /v1/filters`.
    pub fn add_filter(&mut self, f: &FilterDto) -> Result<Added, ClientError> {
        self.call("POST", "/v1/filters", Some(f))
    }

    /// `DELETE /v1/filters/{id}`.
    pub fn delete_filter(&mut self, id: u64) -> Result<(), ClientError> {
        self.command::<()>("DELETE", &format!("/v1/filters/{id}"), None)
    }

    /// `DELETE /v1/filters/key/{key}`.
    pub fn delete_filter_by_key(&mut self, key: Key) -> Result<(), ClientError> {
        self.command::<()>("DELETE", &format!("/v1/filters/key/{key}"), None)
    }

    /// `GET /v1/sublayers`.
    pub fn sublayers(&mut self) -> Result<Vec<SublayerView>, ClientError> {
        self.get("/v1/sublayers")
    }

    /// `POST /v1/sublayers`.
    pub fn add_sublayer(&mut self, s: &SublayerDto) -> Result<Added, ClientError> {
        self.call("POST", "/v1/sublayers", Some(s))
    }

    /// `GET /v1/providers`.
    pub fn providers(&mut self) -> Result<Vec<ProviderDto>, ClientError> {
        self.get("/v1/providers")
    }

    /// `POST /v1/providers`.
    pub fn add_provider(&mut self, p: &ProviderDto) -> Result<Added, ClientError> {
        self.call("POST", "/v1/providers", Some(p))
    }

    /// `GET /v1/callouts`.
    pub fn callouts(&mut self) -> Result<Vec<CalloutView>, ClientError> {
        self.get("/v1/callouts")
    }

    /// `POST /v1/callouts`.
    pub fn add_callout(&mut self, c: &CalloutDto) -> Result<Added, ClientError> {
        self.call("POST", "/v1/callouts", Some(c))
    }

    /// `GET /v1/providercontexts`.
    pub fn provider_contexts(&mut self) -> Result<Vec<crate::ProviderContextView>, ClientError> {
        self.get("/v1/providercontexts")
    }

    /// `POST /v1/providercontexts/enum` (`FWPM_PROVIDER_CONTEXT_ENUM_TEMPLATE0`).
    pub fn enum_provider_contexts(
        &mut self,
        t: &crate::ProviderContextEnumRequest,
    ) -> Result<Vec<crate::ProviderContextView>, ClientError> {
        self.call("POST", "/v1/providercontexts/enum", Some(t))
    }

    /// `GET /v1/providercontexts/{key}` (`FwpmProviderContextGetByKey0`).
    pub fn provider_context(
        &mut self,
        key: Key,
    ) -> Result<crate::ProviderContextView, ClientError> {
        self.get(&format!("/v1/providercontexts/{key}"))
    }

    /// `GET /v1/providercontexts/id/{id}` (`FwpmProviderContextGetById0`).
    pub fn provider_context_by_id(
        &mut self,
        id: u64,
    ) -> Result<crate::ProviderContextView, ClientError> {
        self.get(&format!("/v1/providercontexts/id/{id}"))
    }

    /// `POST /v1/providercontexts` (`FwpmProviderContextAdd`): the key and `providerContextId`.
    pub fn add_provider_context(
        &mut self,
        p: &crate::ProviderContextDto,
    ) -> Result<Added, ClientError> {
        self.call("POST", "/v1/providercontexts", Some(p))
    }

    /// `DELETE /v1/providercontexts/id/{id}` (`FwpmProviderContextDeleteById0`).
    pub fn delete_provider_context_by_id(&mut self, id: u64) -> Result<(), ClientError> {
        self.command::<()>("DELETE", &format!("/v1/providercontexts/id/{id}"), None)
    }

    /// `DELETE /v1/{kind}/{key}` for `kind` = `sublayers`, `providers`, `callouts` or
    /// `providercontexts`.
    pub fn delete_object(&mut self, kind: &str, key: Key) -> Result<(), ClientError> {
        self.command::<()>("DELETE", &format!("/v1/{kind}/{key}"), None)
    }

    /// `GET /v1/events`: the live net-event stream (the connection is used for nothing else).
    pub fn events(self) -> Result<EventStream, ClientError> {
        Ok(EventStream {
            inner: self.events_matching(&[])?,
        })
    }

    // ---- wfpctl's views: flows, net-event enumeration, metrics, pended decisions, drivers ----
    // The answer types are generic: the daemon's DTOs (docs/api.md) or a client's own lenient
    // structs deserialize alike.

    /// One request answered with raw bytes (a non-JSON answer such as `/v1/metrics`); an error
    /// status becomes [`ClientError::Api`].
    pub fn call_raw(
        &mut self,
        method: &str,
        target: &str,
        body: Option<&[u8]>,
    ) -> Result<Vec<u8>, ClientError> {
        http::write_request(&mut self.writer, method, target, body)?;
        let answer = http::read_message(&mut self.reader, &self.limits)?;
        let status = answer.status()?;
        if status != 200 {
            let message = String::from_utf8_lossy(&answer.body).into_owned();
            return Err(api_error(status, &answer.body, message));
        }
        Ok(answer.body)
    }

    /// `GET /v1/flows`: the data path's live flow table.
    pub fn flows<T: DeserializeOwned>(&mut self) -> Result<Vec<T>, ClientError> {
        self.get("/v1/flows")
    }

    /// `GET /v1/netevents?NAME=VALUE&...`: stored net events matching the query conditions
    /// (`start_ms`, `kind`, `layer`, ... as docs/api.md gives them; percent-encoded here).
    pub fn net_events<T: DeserializeOwned>(
        &mut self,
        query: &[(&str, String)],
    ) -> Result<Vec<T>, ClientError> {
        self.get(&with_query("/v1/netevents", query))
    }

    /// `GET /v1/metrics`: counters and gauges in the Prometheus text format.
    pub fn metrics(&mut self) -> Result<String, ClientError> {
        let body = self.call_raw("GET", "/v1/metrics", None)?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// `GET /v1/pending`: pended authorizations waiting for an answer.
    pub fn pending<T: DeserializeOwned>(&mut self) -> Result<Vec<T>, ClientError> {
        self.get("/v1/pending")
    }

    /// `POST /v1/pending/{id}` `{"decision": "permit"|"block", "persist": bool}`: completes a
    /// pended authorization (`persist`: the daemon also adds a persistent filter for it); the
    /// answer is the daemon's `DecisionResult`.
    pub fn decide<R: DeserializeOwned>(
        &mut self,
        id: u64,
        permit: bool,
        persist: bool,
    ) -> Result<R, ClientError> {
        let body = DecisionBody {
            decision: if permit { "permit" } else { "block" },
            persist,
        };
        self.call("POST", &format!("/v1/pending/{id}"), Some(&body))
    }

    /// `GET /v1/events?NAME=VALUE&...`: the live net-event stream with the same query conditions
    /// as [`Client::net_events`] (the connection is used for nothing else).
    pub fn events_matching<T: DeserializeOwned>(
        self,
        query: &[(&str, String)],
    ) -> Result<JsonStream<T>, ClientError> {
        self.stream(&with_query("/v1/events", query))
    }

    /// `GET /v1/pending/stream`: the authorizations pending when it starts, then each new one
    /// (the connection is used for nothing else).
    pub fn pending_stream<T: DeserializeOwned>(self) -> Result<JsonStream<T>, ClientError> {
        self.stream("/v1/pending/stream")
    }

    /// `GET TARGET` answered with a chunked stream of JSON lines.
    pub fn stream<T: DeserializeOwned>(
        mut self,
        target: &str,
    ) -> Result<JsonStream<T>, ClientError> {
        self.set_timeout(None)?;
        http::write_request(&mut self.writer, "GET", target, None)?;
        let head = http::read_message(&mut self.reader, &self.limits)?;
        let status = head.status()?;
        if status != 200 || !head.is_chunked() {
            return Err(api_error(status, &head.body, "not a stream".into()));
        }
        Ok(JsonStream {
            lines: BufReader::new(ChunkedReader::new(self.reader)),
            item: std::marker::PhantomData,
        })
    }

    /// A second handle on this connection's socket: shutting it down
    /// ([`UnixStream::shutdown`]) from another thread ends a blocked stream read (a stream's
    /// consumer unsubscribes that way).
    pub fn socket_handle(&self) -> Result<UnixStream, ClientError> {
        Ok(self.writer.try_clone()?)
    }

    /// `GET /v1/drivers`: C callout drivers loaded in the daemon.
    pub fn drivers<T: DeserializeOwned>(&mut self) -> Result<Vec<T>, ClientError> {
        self.get("/v1/drivers")
    }

    /// `POST /v1/drivers` `{"path", "params"}`: loads a driver.
    pub fn load_driver<R: DeserializeOwned>(
        &mut self,
        path: &str,
        params: &std::collections::BTreeMap<String, String>,
    ) -> Result<R, ClientError> {
        self.call(
            "POST",
            "/v1/drivers",
            Some(&LoadDriverBody { path, params }),
        )
    }

    /// `DELETE /v1/drivers/{name}`: unloads a driver (§5.3, bounded); the Verifier's findings.
    pub fn unload_driver(&mut self, name: &str) -> Result<crate::DriverUnloaded, ClientError> {
        let target = format!("/v1/drivers/{}", percent_encode(name));
        self.call::<(), _>("DELETE", &target, None)
    }

    /// `POST /v1/drivers/{name}/ioctl` `{"code", "input_b64"}` → `{"status", "output_b64"}`: a
    /// device-control request to the driver's queue.
    pub fn driver_ioctl<R: DeserializeOwned>(
        &mut self,
        name: &str,
        code: u32,
        input_b64: &str,
    ) -> Result<R, ClientError> {
        let target = format!("/v1/drivers/{}/ioctl", percent_encode(name));
        self.call("POST", &target, Some(&IoctlBody { code, input_b64 }))
    }
}

/// Net events as they happen (one per line of the chunked answer; blank keep-alive lines
/// skipped): [`JsonStream`] of [`NetEventDto`].
pub struct EventStream {
    inner: JsonStream<NetEventDto>,
}

impl EventStream {
    /// Blocks for the next event; `None` when the daemon ended the stream.
    pub fn next_event(&mut self) -> Option<Result<NetEventDto, ClientError>> {
        self.inner.next_item()
    }
}

impl Iterator for EventStream {
    type Item = Result<NetEventDto, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event()
    }
}

/// The body of `POST /v1/pending/{id}`.
#[derive(Serialize)]
struct DecisionBody {
    decision: &'static str,
    persist: bool,
}

/// The body of `POST /v1/drivers`.
#[derive(Serialize)]
struct LoadDriverBody<'a> {
    path: &'a str,
    params: &'a std::collections::BTreeMap<String, String>,
}

/// The body of `POST /v1/drivers/{name}/ioctl`.
#[derive(Serialize)]
struct IoctlBody<'a> {
    code: u32,
    input_b64: &'a str,
}

/// An error answer: its `{"error": ...}` body, or `HTTP_<status>` with `message`.
fn api_error(status: u16, body: &[u8], message: String) -> ClientError {
    let error = serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_else(|_| ErrorInfo {
            code: 0,
            name: format!("HTTP_{status}"),
            message,
        });
    ClientError::Api { status, error }
}

/// `path?n1=v1&n2=v2`, names and values percent-encoded; no `?` without conditions.
fn with_query(path: &str, query: &[(&str, String)]) -> String {
    let pairs: Vec<String> = query
        .iter()
        .map(|(n, v)| format!("{}={}", percent_encode(n), percent_encode(v)))
        .collect();
    if pairs.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", pairs.join("&"))
    }
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Items of a chunked JSON-lines answer (`GET /v1/pending/stream`, or any other stream), as
/// they happen.
pub struct JsonStream<T> {
    lines: BufReader<ChunkedReader<BufReader<UnixStream>>>,
    item: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> JsonStream<T> {
    /// Blocks for the next item; `None` when the daemon ended the stream. Blank lines
    /// (keep-alives) are skipped.
    pub fn next_item(&mut self) -> Option<Result<T, ClientError>> {
        loop {
            let mut line = String::new();
            match self.lines.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) if line.trim().is_empty() => {}
                Ok(_) => {
                    return Some(serde_json::from_str(line.trim_end()).map_err(ClientError::from))
                }
                Err(e) => return Some(Err(e.into())),
            }
        }
    }
}

impl<T: DeserializeOwned> Iterator for JsonStream<T> {
    type Item = Result<T, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item()
    }
}

#[cfg(test)]
mod query_tests {
    use super::*;

    #[test]
    fn query_strings_are_percent_encoded() {
        assert_eq!(with_query("/v1/netevents", &[]), "/v1/netevents");
        let q = [
            ("layer", "ALE_AUTH_CONNECT_V4".to_string()),
            ("remote", "10.0.0.1/8 x&y".into()),
        ];
        assert_eq!(
            with_query("/v1/netevents", &q),
            "/v1/netevents?layer=ALE_AUTH_CONNECT_V4&remote=10.0.0.1%2F8%20x%26y"
        );
        assert_eq!(percent_encode("a{b}"), "a%7Bb%7D");
    }
}
