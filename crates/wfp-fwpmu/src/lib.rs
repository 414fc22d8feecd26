//! # wfp-fwpmu — WFP's user-mode management API (`fwpmu.h`) over wfpd's socket
//!
//! Management programs written for Windows' `fwpuclnt` (FwpmEngineOpen0, FwpmTransaction*0,
//! FwpmProviderAdd0, FwpmSubLayerAdd0, FwpmCalloutAdd0, FwpmFilterAdd0, their Delete and Enum
//! counterparts, FwpmNetEventCreateEnumHandle0 / Enum0 / DestroyEnumHandle0,
//! FwpmNetEventSubscribe0, FwpmFreeMemory0) compile against `include/fwpmu.h` and
//! link this library (`-lwfp_fwpmu`, a cdylib or staticlib). Each call becomes a request of
//! wfpd's management API (`docs/api.md`) through the [`wfp_api::Client`]; one engine handle is
//! one connection and so one management session (§11.1): a dynamic session's objects die with
//! the handle or the process.
//!
//! ```text
//!  C program ─► FwpmFilterAdd0(h, FWPM_FILTER0*) ─► sys (C structs → FilterDto, panic boundary)
//!                                                      │
//!                                                      ▼
//!                             Session (this module, safe) ─► wfp_api::Client ─► wfpd socket
//!  FwpmFilterEnum0 ◄─ sys (FilterView → FWPM_FILTER0 block, freed by FwpmFreeMemory0) ◄─┘
//!  FwpmNetEventSubscribe0 ─► thread reading GET /v1/events ─► callback(context, FWPM_NET_EVENT0*)
//! ```
//!
//! **What it never does**: decide anything (wfpd's engine does), keep global state (every
//! handle owns its connection; enumeration results carry their own allocation header), or let
//! a panic cross into C. `unsafe` lives only in [`sys`](crate) (`src/sys/`), each block with a
//! `SAFETY:` argument. Results are `DWORD`s as on Windows: 0, or the daemon's `FWP_E_*` HRESULT,
//! or one of the [`status`] codes for failures before the daemon is reached.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use wfp_api::{
    CalloutDto, CalloutView, Client, ClientError, FilterDto, FilterEnumRequest, FilterView, Key,
    NetEventDto, ProviderDto, SessionRequest, SublayerDto, SublayerView,
};

mod sys;

/// `DWORD` results of the library itself (the daemon's errors pass through as its `FWP_E_*`
/// HRESULT).
pub mod status {
    /// ERROR_SUCCESS.
    pub const SUCCESS: u32 = 0;
    /// ERROR_INVALID_HANDLE: a NULL or closed handle.
    pub const INVALID_HANDLE: u32 = 6;
    /// ERROR_INVALID_PARAMETER.
    pub const INVALID_PARAMETER: u32 = 87;
    /// EPT_S_NOT_REGISTERED: the daemon's socket cannot be reached (Windows: BFE not running).
    pub const NOT_REGISTERED: u32 = 1753;
    /// RPC_S_CALL_FAILED: the connection failed in the middle of a call.
    pub const CALL_FAILED: u32 = 1726;
    /// E_FAIL: an answer that could not be understood, or a contained panic.
    pub const FAIL: u32 = 0x8000_4005;
    /// FWP_E_NULL_POINTER.
    pub const NULL_POINTER: u32 = 0x8032_001C;
    /// FWP_E_INVALID_ENUMERATOR.
    pub const INVALID_ENUMERATOR: u32 = 0x8032_001D;
    /// E_NOTIMPL: a template part this library does not carry.
    pub const NOT_IMPLEMENTED: u32 = 0x8000_4001;
    /// FWP_E_TYPE_MISMATCH: a value type this library does not carry.
    pub const TYPE_MISMATCH: u32 = 0x8032_0027;
    /// FWP_E_LAYER_NOT_FOUND.
    pub const LAYER_NOT_FOUND: u32 = 0x8032_0004;
    /// FWP_E_CONDITION_NOT_FOUND.
    pub const CONDITION_NOT_FOUND: u32 = 0x8032_0002;
    /// FWP_E_TXN_IN_PROGRESS: a call Windows refuses inside a transaction.
    pub const TXN_IN_PROGRESS: u32 = 0x8032_000E;
}

/// The `DWORD` a failed call returns.
pub fn status_of(e: &ClientError) -> u32 {
    match e {
        ClientError::Api { error, .. } if error.code != 0 => error.code,
        ClientError::Api { status: 404, .. } => status::NOT_REGISTERED,
        ClientError::Connect { .. } => status::NOT_REGISTERED,
        ClientError::Http(_) => status::CALL_FAILED,
        _ => status::FAIL,
    }
}

/// The socket a NULL `serverName` means: `$WFPD_SOCKET`, else `/run/wfpd/wfpd.sock`.
pub fn default_socket() -> PathBuf {
    std::env::var_os("WFPD_SOCKET")
        .map_or_else(|| PathBuf::from("/run/wfpd/wfpd.sock"), PathBuf::from)
}

/// One engine handle: a connection to wfpd and its management session.
pub struct Session {
    client: Client,
    socket: PathBuf,
    /// A transaction this handle began is open (commit and abort end it, failed or not, as
    /// the daemon's session does).
    in_txn: bool,
}

impl Session {
    /// FwpmEngineOpen0: connects to `socket` and opens the session `req` (the daemon's
    /// defaults without one).
    pub fn open(socket: &Path, req: Option<&SessionRequest>) -> Result<Self, u32> {
        let mut client = Client::connect(socket).map_err(|e| status_of(&e))?;
        if let Some(r) = req {
            client.open_session(r).map_err(|e| status_of(&e))?;
        }
        Ok(Self {
            client,
            socket: socket.to_path_buf(),
            in_txn: false,
        })
    }

    /// The socket this session uses (subscriptions open their own connection to it).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// FwpmTransactionBegin0 (`read_only`: FWPM_TXN_READ_ONLY).
    pub fn begin(&mut self, read_only: bool) -> Result<(), u32> {
        self.client.begin(read_only).map_err(|e| status_of(&e))?;
        self.in_txn = true;
        Ok(())
    }

    /// FwpmTransactionCommit0.
    pub fn commit(&mut self) -> Result<(), u32> {
        self.in_txn = false;
        self.client.commit().map_err(|e| status_of(&e))
    }

    /// FwpmTransactionAbort0.
    pub fn abort(&mut self) -> Result<(), u32> {
        self.in_txn = false;
        self.client.abort().map_err(|e| status_of(&e))
    }

    /// FwpmProviderAdd0.
    pub fn add_provider(&mut self, p: &ProviderDto) -> Result<(), u32> {
        self.client
            .add_provider(p)
            .map(drop)
            .map_err(|e| status_of(&e))
    }

    /// FwpmSubLayerAdd0.
    pub fn add_sublayer(&mut self, s: &SublayerDto) -> Result<(), u32> {
        self.client
            .add_sublayer(s)
            .map(drop)
            .map_err(|e| status_of(&e))
    }

    /// FwpmCalloutAdd0: the new callout's run-time id.
    pub fn add_callout(&mut self, c: &CalloutDto) -> Result<u32, u32> {
        let added = self.client.add_callout(c).map_err(|e| status_of(&e))?;
        Ok(added.id.and_then(|i| u32::try_from(i).ok()).unwrap_or(0))
    }

    /// FwpmFilterAdd0: the new filter's id.
    pub fn add_filter(&mut self, f: &FilterDto) -> Result<u64, u32> {
        let added = self.client.add_filter(f).map_err(|e| status_of(&e))?;
        Ok(added.id.unwrap_or(0))
    }

    /// FwpmFilterDeleteById0.
    pub fn delete_filter(&mut self, id: u64) -> Result<(), u32> {
        self.client.delete_filter(id).map_err(|e| status_of(&e))
    }

    /// FwpmFilterDeleteByKey0.
    pub fn delete_filter_by_key(&mut self, key: Key) -> Result<(), u32> {
        self.client
            .delete_filter_by_key(key)
            .map_err(|e| status_of(&e))
    }

    /// FwpmProviderDeleteByKey0 / FwpmSubLayerDeleteByKey0 / FwpmCalloutDeleteByKey0 (`kind`:
    /// `providers`, `sublayers`, `callouts`).
    pub fn delete_object(&mut self, kind: &str, key: Key) -> Result<(), u32> {
        self.client
            .delete_object(kind, key)
            .map_err(|e| status_of(&e))
    }

    /// FwpmCalloutDeleteById0: the callout with this run-time id, by its key.
    pub fn delete_callout_by_id(&mut self, id: u32) -> Result<(), u32> {
        let list = self.client.callouts().map_err(|e| status_of(&e))?;
        let key = list
            .iter()
            .find(|c| c.callout_id == id)
            .and_then(|c| c.callout.key)
            .ok_or(0x8032_0001_u32)?; // FWP_E_CALLOUT_NOT_FOUND
        self.delete_object("callouts", key)
    }

    /// FwpmFilterCreateEnumHandle0: the filters matching `t` (every filter without one).
    pub fn enum_filters(
        &mut self,
        t: Option<&FilterEnumRequest>,
    ) -> Result<Cursor<FilterView>, u32> {
        let list = match t {
            Some(t) => self.client.enum_filters(t),
            None => self.client.filters(),
        };
        list.map(Cursor::new).map_err(|e| status_of(&e))
    }

    /// FwpmNetEventCreateEnumHandle0 (§11.5): a snapshot of the daemon's stored net events that
    /// `filter` accepts (the same template rules as a subscription's) and that have an
    /// FWPM_NET_EVENT_TYPE (the engine's own kinds have no number a WFP client knows). Inside
    /// a transaction: FWP_E_TXN_IN_PROGRESS, as on Windows.
    pub fn enum_net_events(&mut self, filter: &EventFilter) -> Result<Cursor<NetEventDto>, u32> {
        if self.in_txn {
            return Err(status::TXN_IN_PROGRESS);
        }
        let mut list: Vec<NetEventDto> = self
            .client
            .net_events(&filter.query_pairs())
            .map_err(|e| status_of(&e))?;
        list.retain(|e| fwpm_type(e).is_some() && filter.matches(e));
        Ok(Cursor::new(list))
    }

    /// FwpmProviderCreateEnumHandle0.
    pub fn enum_providers(&mut self) -> Result<Cursor<ProviderDto>, u32> {
        self.client
            .providers()
            .map(Cursor::new)
            .map_err(|e| status_of(&e))
    }

    /// FwpmSubLayerCreateEnumHandle0: the sublayers of `provider` (every sublayer without one:
    /// FWPM_SUBLAYER_ENUM_TEMPLATE0).
    pub fn enum_sublayers(&mut self, provider: Option<Key>) -> Result<Cursor<SublayerView>, u32> {
        let mut list = self.client.sublayers().map_err(|e| status_of(&e))?;
        list.retain(|s| provider.is_none() || s.sublayer.provider == provider);
        Ok(Cursor::new(list))
    }

    /// FwpmCalloutCreateEnumHandle0: the callouts of `provider` at `layer` (a layer name; each
    /// condition only when given: FWPM_CALLOUT_ENUM_TEMPLATE0).
    pub fn enum_callouts(
        &mut self,
        provider: Option<Key>,
        layer: Option<&str>,
    ) -> Result<Cursor<CalloutView>, u32> {
        let mut list = self.client.callouts().map_err(|e| status_of(&e))?;
        list.retain(|c| {
            (provider.is_none() || c.callout.provider == provider)
                && layer.is_none_or(|l| c.callout.layer == l)
        });
        Ok(Cursor::new(list))
    }
}

/// An enumeration handle's state: the objects read at CreateEnumHandle time and how many the
/// Enum calls handed out.
pub struct Cursor<T> {
    items: Vec<T>,
    next: usize,
}

impl<T> Cursor<T> {
    /// Over `items`.
    pub fn new(items: Vec<T>) -> Self {
        Self { items, next: 0 }
    }

    /// The next at most `n` objects (an empty slice at the end).
    pub fn take(&mut self, n: usize) -> &[T] {
        let start = self.next.min(self.items.len());
        let end = start.saturating_add(n).min(self.items.len());
        self.next = end;
        self.items.get(start..end).unwrap_or_default()
    }
}

/// FWPM_NET_EVENT_TYPE of `e`: its `fwpm_type`, else CLASSIFY_DROP 3 / CLASSIFY_ALLOW 6 by
/// kind; `None` for the engine's own kinds (a WFP client has no number for them, so they are
/// not delivered).
pub fn fwpm_type(e: &NetEventDto) -> Option<u32> {
    e.fwpm_type.or(match e.kind.as_str() {
        "CLASSIFY_DROP" => Some(3),
        "CLASSIFY_ALLOW" => Some(6),
        _ => None,
    })
}

/// What an `FWPM_NET_EVENT_ENUM_TEMPLATE0` asks of events (§11.5): a time window and, per
/// header field, the accepted values (OR inside a field, AND across fields; empty: any).
/// The daemon's query narrows the stream (`/v1/events?...`, where addresses and ports match
/// either side); [`EventFilter::matches`] then checks each event exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// `startTime` as Unix milliseconds.
    pub start_ms: Option<u64>,
    /// `endTime` as Unix milliseconds.
    pub end_ms: Option<u64>,
    /// FWPM_CONDITION_IP_PROTOCOL values.
    pub protocols: Vec<u8>,
    /// FWPM_CONDITION_IP_LOCAL_ADDRESS values.
    pub local_addrs: Vec<std::net::IpAddr>,
    /// FWPM_CONDITION_IP_REMOTE_ADDRESS values.
    pub remote_addrs: Vec<std::net::IpAddr>,
    /// FWPM_CONDITION_IP_LOCAL_PORT values.
    pub local_ports: Vec<u16>,
    /// FWPM_CONDITION_IP_REMOTE_PORT values.
    pub remote_ports: Vec<u16>,
}

impl EventFilter {
    /// From the template's conditions (EQUAL on IP_PROTOCOL, IP_LOCAL/REMOTE_ADDRESS,
    /// IP_LOCAL/REMOTE_PORT); any other condition answers E_NOTIMPL, a value of the wrong type
    /// FWP_E_TYPE_MISMATCH.
    pub fn from_conditions(
        start_ms: Option<u64>,
        end_ms: Option<u64>,
        conditions: &[wfp_api::ConditionDto],
    ) -> Result<Self, u32> {
        use wfp_api::ValueDto as V;
        let mut f = Self {
            start_ms,
            end_ms,
            ..Self::default()
        };
        for c in conditions {
            if !c.match_type.eq_ignore_ascii_case("EQUAL") {
                return Err(status::NOT_IMPLEMENTED);
            }
            let addr = |v: &V| match v {
                V::Uint32 { value } => Ok(std::net::IpAddr::from(std::net::Ipv4Addr::from(*value))),
                V::ByteArray16 { value } => Ok(std::net::IpAddr::V6(*value)),
                _ => Err(status::TYPE_MISMATCH),
            };
            let port = |v: &V| match v {
                V::Uint16 { value } => Ok(*value),
                _ => Err(status::TYPE_MISMATCH),
            };
            match (c.field.as_str(), &c.value) {
                ("IP_PROTOCOL", V::Uint8 { value }) => f.protocols.push(*value),
                ("IP_PROTOCOL", _) => return Err(status::TYPE_MISMATCH),
                ("IP_LOCAL_ADDRESS", v) => f.local_addrs.push(addr(v)?),
                ("IP_REMOTE_ADDRESS", v) => f.remote_addrs.push(addr(v)?),
                ("IP_LOCAL_PORT", v) => f.local_ports.push(port(v)?),
                ("IP_REMOTE_PORT", v) => f.remote_ports.push(port(v)?),
                _ => return Err(status::NOT_IMPLEMENTED),
            }
        }
        Ok(f)
    }

    /// The `/v1/netevents` / `/v1/events` query conditions narrowing what the daemon sends (a
    /// single value per key only; [`EventFilter::matches`] decides exactly).
    pub fn query_pairs(&self) -> Vec<(&'static str, String)> {
        let one = |v: &[String]| (v.len() == 1).then(|| v[0].clone());
        let addrs: Vec<String> = self
            .local_addrs
            .iter()
            .chain(&self.remote_addrs)
            .map(ToString::to_string)
            .collect();
        let ports: Vec<String> = self
            .local_ports
            .iter()
            .chain(&self.remote_ports)
            .map(ToString::to_string)
            .collect();
        let protocols: Vec<String> = self.protocols.iter().map(ToString::to_string).collect();
        [
            ("start_ms", self.start_ms.map(|t| t.to_string())),
            ("end_ms", self.end_ms.map(|t| t.to_string())),
            ("protocol", one(&protocols)),
            ("addr", one(&addrs)),
            ("port", one(&ports)),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }

    /// [`EventFilter::query_pairs`] as a query string (`start_ms=1000&port=23`).
    pub fn query(&self) -> String {
        self.query_pairs()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// Whether `e` satisfies the template.
    pub fn matches(&self, e: &NetEventDto) -> bool {
        fn any<T: PartialEq>(want: &[T], got: Option<T>) -> bool {
            want.is_empty() || got.is_some_and(|g| want.contains(&g))
        }
        let time = e.time_ms;
        self.start_ms.is_none_or(|s| time.is_some_and(|t| t >= s))
            && self.end_ms.is_none_or(|s| time.is_some_and(|t| t <= s))
            && any(&self.protocols, e.protocol)
            && any(&self.local_addrs, e.local_addr)
            && any(&self.remote_addrs, e.remote_addr)
            && any(&self.local_ports, e.local_port)
            && any(&self.remote_ports, e.remote_port)
    }
}

/// A live net-event subscription: a connection reading `GET /v1/events` on its own thread.
pub struct Subscription {
    socket: UnixStream,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Subscription {
    /// Subscribes on a new connection to `socket`; `deliver` runs on the reader thread for each
    /// event until [`Subscription::stop`].
    pub fn start(
        socket: &Path,
        deliver: impl FnMut(NetEventDto) + Send + 'static,
    ) -> Result<Self, u32> {
        Self::start_filtered(socket, EventFilter::default(), deliver)
    }

    /// [`Subscription::start`] for the events `filter` accepts (a subscription's template).
    pub fn start_filtered(
        socket: &Path,
        filter: EventFilter,
        mut deliver: impl FnMut(NetEventDto) + Send + 'static,
    ) -> Result<Self, u32> {
        let client = Client::connect(socket).map_err(|e| status_of(&e))?;
        let handle = client.socket_handle().map_err(|e| status_of(&e))?;
        let stream = client
            .events_matching::<NetEventDto>(&filter.query_pairs())
            .map_err(|e| status_of(&e))?;
        let thread = std::thread::Builder::new()
            .name("fwpmu-events".into())
            .spawn(move || {
                for event in stream {
                    match event {
                        Ok(e) if filter.matches(&e) => deliver(e),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            })
            .map_err(|_| status::FAIL)?;
        Ok(Self {
            socket: handle,
            thread: Some(thread),
        })
    }

    /// Ends the subscription and waits for the reader thread (no callback runs after this).
    pub fn stop(mut self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_hand_out_each_object_once() {
        let mut c = Cursor::new(vec![1, 2, 3, 4, 5]);
        assert_eq!(c.take(2), &[1, 2]);
        assert_eq!(c.take(10), &[3, 4, 5]);
        assert!(c.take(1).is_empty());
    }

    /// §11.5 subscription templates: the daemon query narrows, `matches` decides exactly
    /// (local vs remote, OR inside a field, the time window).
    #[test]
    fn event_filters_narrow_the_query_and_match_exactly() {
        use wfp_api::{ConditionDto, ValueDto};
        let cond = |field: &str, value: ValueDto| ConditionDto {
            field: field.into(),
            match_type: "EQUAL".into(),
            value,
        };
        let f = EventFilter::from_conditions(
            Some(1_000),
            None,
            &[
                cond("IP_REMOTE_PORT", ValueDto::Uint16 { value: 23 }),
                cond("IP_REMOTE_ADDRESS", ValueDto::Uint32 { value: 0x0A00_0001 }),
                cond("IP_REMOTE_ADDRESS", ValueDto::Uint32 { value: 0x0A00_0002 }),
            ],
        )
        .unwrap();
        assert_eq!(f.query(), "start_ms=1000&port=23");
        let event = NetEventDto {
            kind: "CLASSIFY_DROP".into(),
            time_ms: Some(2_000),
            remote_addr: "10.0.0.2".parse().ok(),
            remote_port: Some(23),
            ..NetEventDto::default()
        };
        assert!(f.matches(&event));
        let local = NetEventDto {
            local_port: Some(23),
            remote_port: Some(80),
            ..event.clone()
        };
        assert!(!f.matches(&local), "a local port 23 is not a remote one");
        let early = NetEventDto {
            time_ms: Some(999),
            ..event
        };
        assert!(!f.matches(&early));
        let app = cond("ALE_APP_ID", ValueDto::Uint16 { value: 1 });
        assert_eq!(
            EventFilter::from_conditions(None, None, &[app]),
            Err(status::NOT_IMPLEMENTED)
        );
        let bad = cond("IP_REMOTE_PORT", ValueDto::Uint8 { value: 1 });
        assert_eq!(
            EventFilter::from_conditions(None, None, &[bad]),
            Err(status::TYPE_MISMATCH)
        );
    }
}
