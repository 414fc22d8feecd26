//! # `wfp.tls-sni-blocker` — drops TLS connections to listed server names
//!
//! | | |
//! |---|---|
//! | layers | `STREAM_V4`, `STREAM_V6` |
//! | layerData | `LayerData::Stream(io)`: the TCP byte stream of one direction from its first byte (the engine's accumulation re-indicates everything held so far, brief decision 8) |
//! | filter action | `FWP_ACTION_CALLOUT_UNKNOWN` (DROP_CONNECTION is only honoured there, §9.2); `CALLOUT_TERMINATING` blocks data instead; `CALLOUT_INSPECTION` only counts |
//! | registration | no flags; **with** a flowDeleteFn (it marks flows blocked under CALLOUT_TERMINATING) |
//!
//! The first bytes of a connection (whichever direction speaks first; for TLS that is the client)
//! are parsed as TLS records carrying a ClientHello ([`parse_client_hello`]). While the ClientHello
//! is incomplete the callout answers FWPS_STREAM_ACTION_NEED_MORE_DATA with `countBytesRequired` =
//! the total stream bytes the next step needs (the record header, then the whole record, across
//! several records when the ClientHello is fragmented), bounded by [`MAX_HELLO_STREAM_BYTES`].
//! Then:
//!
//! | outcome | CALLOUT_UNKNOWN | CALLOUT_TERMINATING | CALLOUT_INSPECTION |
//! |---|---|---|---|
//! | server_name listed | DROP_CONNECTION (+ actionType BLOCK) | BLOCK all indicated bytes, flow marked: every later indication BLOCKed | CONTINUE, counted |
//! | not listed, no SNI, not TLS | ALLOW_CONNECTION (+ PERMIT): not called again for the flow | same | CONTINUE |
//! | malformed, too large, or the stream ends first (NO_MORE_DATA, BUFFER_LIMIT_REACHED, FIN/RST flag) | ALLOW_CONNECTION (fail open, counted) | same | CONTINUE |
//!
//! Every answer sets `actionType` explicitly (rule 2.6-8); the write right is not consulted at the
//! stream layer. With Encrypted Client Hello the visible server_name is the outer (public) name.

use std::sync::atomic::AtomicU64;

use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::{ActionType, Callout, RtFilter, StreamAction};

use crate::names::NameSet;
use crate::support::{
    block, bump, enforce, mark_blocked, need_more, no_opinion, permit, stream_ends, Mode,
    BLOCKED_FLOW,
};

/// TLS record header length.
pub const RECORD_HEADER: usize = 5;
/// Largest record fragment accepted (2^14 plus the 2048 bytes TLS allows for compressed records).
pub const MAX_RECORD: usize = 16384 + 2048;
/// Largest ClientHello handshake message accepted.
pub const MAX_HELLO: usize = 16384;
/// Most stream bytes (record headers included) the callout accumulates to find the ClientHello.
pub const MAX_HELLO_STREAM_BYTES: usize = 32768;

/// Why a byte stream that starts like TLS does not hold a usable ClientHello.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A record length of zero or above [`MAX_RECORD`].
    #[error("TLS record at byte {offset} has invalid length {len}")]
    RecordLength {
        /// Where the record starts.
        offset: usize,
        /// Its length field.
        len: usize,
    },
    /// A non-handshake record interleaved with a fragmented ClientHello.
    #[error("TLS record at byte {offset} interrupts the ClientHello")]
    Interleaved {
        /// Where the record starts.
        offset: usize,
    },
    /// The ClientHello (or the records holding it) exceeds the bounds.
    #[error("TLS ClientHello needs {needed} bytes, more than the {limit} inspected")]
    TooLarge {
        /// Bytes needed.
        needed: usize,
        /// The bound.
        limit: usize,
    },
    /// A length inside the ClientHello runs past its end.
    #[error("TLS ClientHello truncated inside {what}")]
    Truncated {
        /// The structure being read.
        what: &'static str,
    },
    /// The server_name extension is malformed.
    #[error("malformed TLS server_name extension: {reason}")]
    ServerName {
        /// What is wrong.
        reason: &'static str,
    },
}

/// What the start of a stream says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hello {
    /// A complete ClientHello.
    Complete(ClientHello),
    /// More stream bytes are needed: `needed` in total (from the first byte).
    Incomplete {
        /// Total bytes needed before parsing can go on.
        needed: usize,
    },
    /// Not a TLS handshake starting with a ClientHello.
    NotClientHello,
}

/// The fields of a ClientHello the blocker uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHello {
    /// `legacy_version` of the ClientHello.
    pub legacy_version: u16,
    /// The first `host_name` of the server_name extension, as sent.
    pub server_name: Option<Vec<u8>>,
    /// Stream bytes the records holding the ClientHello occupy.
    pub stream_len: usize,
}

/// Parses the ClientHello at the start of a TLS byte stream, reassembling it across records.
pub fn parse_client_hello(stream: &[u8]) -> Result<Hello, TlsError> {
    let mut pos = 0usize;
    // Handshake bytes of the records read so far, kept only once a second record is needed.
    let mut joined: Vec<u8> = Vec::new();
    let mut records = 0usize;
    loop {
        let Some(h) = stream.get(pos..pos + RECORD_HEADER) else {
            // An early "no": the first byte already says it is not a handshake record.
            if pos == 0 && stream.first().is_some_and(|b| *b != 22) {
                return Ok(Hello::NotClientHello);
            }
            return Ok(Hello::Incomplete {
                needed: pos + RECORD_HEADER,
            });
        };
        if h[0] != 22 || h[1] != 3 {
            return if pos == 0 {
                Ok(Hello::NotClientHello)
            } else {
                Err(TlsError::Interleaved { offset: pos })
            };
        }
        let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
        if len == 0 || len > MAX_RECORD {
            return Err(TlsError::RecordLength { offset: pos, len });
        }
        let end = pos + RECORD_HEADER + len;
        if end > MAX_HELLO_STREAM_BYTES {
            return Err(TlsError::TooLarge {
                needed: end,
                limit: MAX_HELLO_STREAM_BYTES,
            });
        }
        let Some(fragment) = stream.get(pos + RECORD_HEADER..end) else {
            // Partial record: its handshake type may already rule a ClientHello out.
            let first = if records == 0 {
                stream.get(pos + RECORD_HEADER)
            } else {
                joined.first()
            };
            if first.is_some_and(|t| *t != 1) {
                return Ok(Hello::NotClientHello);
            }
            return Ok(Hello::Incomplete { needed: end });
        };
        pos = end;
        let hs: &[u8] = if records == 0 {
            fragment
        } else {
            joined.extend_from_slice(fragment);
            &joined
        };
        records += 1;
        if hs.first().is_some_and(|t| *t != 1) {
            return Ok(Hello::NotClientHello);
        }
        if let Some(hl) = hs.get(1..4) {
            let body_len = usize::from(hl[0]) << 16 | usize::from(hl[1]) << 8 | usize::from(hl[2]);
            if body_len > MAX_HELLO {
                return Err(TlsError::TooLarge {
                    needed: body_len,
                    limit: MAX_HELLO,
                });
            }
            if let Some(body) = hs.get(4..4 + body_len) {
                let mut hello = parse_hello_body(body)?;
                hello.stream_len = pos;
                return Ok(Hello::Complete(hello));
            }
        }
        if records == 1 {
            joined.extend_from_slice(fragment);
        }
    }
}

/// A bounds-checked reader over a ClientHello body.
struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TlsError> {
        let (head, rest) = self
            .buf
            .split_at_checked(n)
            .ok_or(TlsError::Truncated { what: self.what })?;
        self.buf = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, TlsError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, TlsError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self) -> Result<&'a [u8], TlsError> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Result<&'a [u8], TlsError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

fn parse_hello_body(body: &[u8]) -> Result<ClientHello, TlsError> {
    let mut r = Reader {
        buf: body,
        what: "the ClientHello header",
    };
    let legacy_version = r.u16()?;
    r.take(32)?; // random
    r.what = "legacy_session_id";
    r.vec8()?;
    r.what = "cipher_suites";
    r.vec16()?;
    r.what = "legacy_compression_methods";
    r.vec8()?;
    let mut server_name = None;
    if !r.buf.is_empty() {
        r.what = "extensions";
        let mut exts = Reader {
            buf: r.vec16()?,
            what: "an extension",
        };
        while !exts.buf.is_empty() {
            let ty = exts.u16()?;
            let data = exts.vec16()?;
            if ty == 0 && server_name.is_none() {
                server_name = parse_server_name(data)?;
            }
        }
    }
    Ok(ClientHello {
        legacy_version,
        server_name,
        stream_len: 0,
    })
}

fn parse_server_name(data: &[u8]) -> Result<Option<Vec<u8>>, TlsError> {
    let bad = |reason| TlsError::ServerName { reason };
    let mut r = Reader {
        buf: data,
        what: "server_name",
    };
    let list = r
        .vec16()
        .map_err(|_| bad("list length runs past the extension"))?;
    if !r.buf.is_empty() {
        return Err(bad("bytes after the server name list"));
    }
    let mut list = Reader {
        buf: list,
        what: "server_name",
    };
    while !list.buf.is_empty() {
        let ty = list.u8().map_err(|_| bad("truncated entry"))?;
        let name = list.vec16().map_err(|_| bad("truncated entry"))?;
        if ty == 0 {
            if name.is_empty() {
                return Err(bad("empty host_name"));
            }
            return Ok(Some(name.to_vec()));
        }
    }
    Ok(None)
}

/// What to do when the start of the stream is TLS but no usable ClientHello can be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnMalformed {
    /// Treat like a listed name.
    Block,
    /// Allow the connection (the default).
    #[default]
    Allow,
}

/// Counters.
#[derive(Debug, Default)]
pub struct SniStats {
    /// Classifies (indications) seen.
    pub indications: AtomicU64,
    /// NEED_MORE_DATA answers.
    pub need_more: AtomicU64,
    /// ClientHellos parsed.
    pub hellos: AtomicU64,
    /// ClientHellos whose server_name was listed.
    pub matched: AtomicU64,
    /// Streams that did not start with a ClientHello.
    pub not_tls: AtomicU64,
    /// Malformed or oversized ClientHellos, and streams that ended before the ClientHello did.
    pub malformed: AtomicU64,
    /// Indications blocked because the flow was marked blocked earlier.
    pub blocked_later: AtomicU64,
}

/// The `wfp.tls-sni-blocker` callout.
#[derive(Debug)]
pub struct SniBlocker {
    names: NameSet,
    on_malformed: OnMalformed,
    stats: SniStats,
}

impl SniBlocker {
    /// Drops connections whose ClientHello names one of `names` (exact or `*.suffix`).
    pub fn new<I, S>(names: I) -> Result<Self, crate::ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(Self::with_names(NameSet::new(names)?))
    }

    /// Drops connections whose ClientHello names an entry of `names`.
    pub fn with_names(names: NameSet) -> Self {
        Self {
            names,
            on_malformed: OnMalformed::default(),
            stats: SniStats::default(),
        }
    }

    /// Sets what happens to malformed ClientHellos.
    #[must_use]
    pub fn on_malformed(mut self, on: OnMalformed) -> Self {
        self.on_malformed = on;
        self
    }

    /// Counters.
    pub fn stats(&self) -> &SniStats {
        &self.stats
    }
}

impl Callout for SniBlocker {
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        layer_data: &mut LayerData<'_>,
        filter: &RtFilter,
        flow_context: u64,
        out: &mut ClassifyOut,
    ) {
        let LayerData::Stream(io) = layer_data else {
            return no_opinion(out, filter);
        };
        bump(&self.stats.indications);
        let mode = Mode::of(filter);
        let len = io.stream_data.data.len();
        if flow_context == BLOCKED_FLOW {
            bump(&self.stats.blocked_later);
            block(out);
            return enforce(io, len);
        }
        let blocked = match parse_client_hello(io.stream_data.data) {
            Ok(Hello::Incomplete { needed }) if !stream_ends(io, out) => {
                bump(&self.stats.need_more);
                return need_more(io, out, needed);
            }
            Ok(Hello::Incomplete { .. }) | Err(_) => {
                bump(&self.stats.malformed);
                self.on_malformed == OnMalformed::Block
            }
            Ok(Hello::NotClientHello) => {
                bump(&self.stats.not_tls);
                false
            }
            Ok(Hello::Complete(h)) => {
                bump(&self.stats.hellos);
                let hit = h.server_name.is_some_and(|n| self.names.matches(&n));
                if hit {
                    bump(&self.stats.matched);
                }
                hit
            }
        };
        match (blocked, mode) {
            (_, Mode::Detect) => {
                out.action_type = ActionType::CONTINUE;
                enforce(io, len);
            }
            (true, Mode::Drop) => {
                io.stream_action = StreamAction::DropConnection;
                block(out);
            }
            (true, Mode::Block) => {
                mark_blocked(ctx.engine(), ctx.callout_id(), values, meta.flow());
                block(out);
                enforce(io, len);
            }
            (false, _) => {
                io.stream_action = StreamAction::AllowConnection;
                permit(out, filter);
                enforce(io, len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_tls_starts_are_recognised_early() {
        assert_eq!(
            parse_client_hello(b"GET / HTTP/1.1\r\n"),
            Ok(Hello::NotClientHello)
        );
        assert_eq!(parse_client_hello(b"G"), Ok(Hello::NotClientHello));
        assert_eq!(parse_client_hello(&[]), Ok(Hello::Incomplete { needed: 5 }));
        assert_eq!(
            parse_client_hello(&[22, 3]),
            Ok(Hello::Incomplete { needed: 5 })
        );
        // A ServerHello (handshake type 2) is not a ClientHello, even when the record is partial.
        assert_eq!(
            parse_client_hello(&[22, 3, 3, 0, 80, 2, 0]),
            Ok(Hello::NotClientHello)
        );
        assert_eq!(
            parse_client_hello(&[22, 3, 1, 0, 0]),
            Err(TlsError::RecordLength { offset: 0, len: 0 })
        );
    }
}
