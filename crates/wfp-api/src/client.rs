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

    /// `DELETE /v1/{kind}/{key}` for `kind` = `sublayers`, `providers` or `callouts`.
    pub fn delete_object(&mut self, kind: &str, key: Key) -> Result<(), ClientError> {
        self.command::<()>("DELETE", &format!("/v1/{kind}/{key}"), None)
    }

    /// `GET /v1/events`: the live net-event stream (the connection is used for nothing else).
    pub fn events(self) -> Result<EventStream, ClientError> {
        self.events_with_query("")
    }

    /// `GET /v1/events?QUERY`: the live stream of the net events matching the query conditions
    /// (`kind=CLASSIFY_DROP&port=22`, see `docs/api.md`; empty: all).
    pub fn events_with_query(mut self, query: &str) -> Result<EventStream, ClientError> {
        self.set_timeout(None)?;
        let target = if query.is_empty() {
            "/v1/events".to_string()
        } else {
            format!("/v1/events?{query}")
        };
        http::write_request(&mut self.writer, "GET", &target, None)?;
        let head = http::read_message(&mut self.reader, &self.limits)?;
        let status = head.status()?;
        if status != 200 || !head.is_chunked() {
            let error = serde_json::from_slice::<ErrorBody>(&head.body)
                .map(|b| b.error)
                .unwrap_or_else(|_| ErrorInfo {
                    code: 0,
                    name: format!("HTTP_{status}"),
                    message: "not an event stream".into(),
                });
            return Err(ClientError::Api { status, error });
        }
        Ok(EventStream {
            lines: BufReader::new(ChunkedReader::new(self.reader)),
        })
    }
}

/// Net events as they happen (one per line of the chunked answer).
pub struct EventStream {
    lines: BufReader<ChunkedReader<BufReader<UnixStream>>>,
}

impl EventStream {
    /// Blocks for the next event; `None` when the daemon ended the stream.
    pub fn next_event(&mut self) -> Option<Result<NetEventDto, ClientError>> {
        let mut line = String::new();
        match self.lines.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(serde_json::from_str(line.trim_end()).map_err(ClientError::from)),
            Err(e) => Some(Err(e.into())),
        }
    }
}

impl Iterator for EventStream {
    type Item = Result<NetEventDto, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event()
    }
}
