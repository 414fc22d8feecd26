//! # wfp-api — wfpd's management protocol and its client
//!
//! The types every request and answer of wfpd's local API carries (serde, JSON), their
//! conversions to and from the engine's management objects (`wfp-core` specs), the HTTP/1.1
//! message framing both ends use, and a blocking [`Client`] over a Unix socket. The protocol is
//! documented in `docs/api.md`; it is usable with `curl --unix-socket`.
//!
//! **What it never does**: decide anything (the daemon's engine does), open a network socket, or
//! start a thread. One [`Client`] is one connection, and one connection is one management session
//! (§11.1): dynamic objects die with it.
//!
//! ```text
//!  wfpctl ──► Client ──(HTTP/1.1 + JSON, /v1/...)──► wfpd api server ──► Session ──► Engine
//!              │  types: FilterDto, ValueDto, ...        │ http::read_message (limits)
//!              └──────────── http framing ───────────────┘
//! ```
//!
//! Modules:
//! * [`types`] — request/answer bodies and object DTOs with their conversions.
//! * [`drivers`] — the `/v1/drivers` bodies (C callout drivers in the daemon) and base64.
//! * [`value`] — typed values (`FWP_VALUE0`, `FWP_CONDITION_VALUE0`) as tagged JSON.
//! * [`live`] — what the data path produces: net events and their query, pended
//!   authorizations and decisions, flows.
//! * [`provider_context`] — provider contexts (`/v1/providercontexts`).
//! * [`http`] — reading and writing HTTP/1.1 messages with size limits.
//! * [`client`] — the blocking client.

pub mod client;
pub mod drivers;
pub mod http;
pub mod live;
pub mod provider_context;
pub mod types;
pub mod value;

pub use client::{Client, ClientError};
pub use drivers::{DriverUnloaded, DriverView, IoctlAnswer, IoctlRequest, LoadDriverRequest};
pub use live::*;
pub use provider_context::{ProviderContextDto, ProviderContextEnumRequest, ProviderContextView};
pub use types::*;
pub use value::ValueDto;

/// The protocol version, the first path segment of every endpoint (`/v1/...`).
pub const API_VERSION: &str = "v1";
