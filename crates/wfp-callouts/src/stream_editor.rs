//! # `wfp.stream-editor` — replace a byte pattern in TCP streams (the WDK "stmedit" sample)
//!
//! | layer | filter action | registration |
//! |---|---|---|
//! | `STREAM_V4/V6` | `FWP_ACTION_CALLOUT_TERMINATING` | no flags, no flowDeleteFn |
//!
//! Every occurrence of `pattern` in the stream of a connection whose local or remote port is
//! `port` becomes `replacement` — of any length (the data path renumbers the rest of the
//! connection, §9.2). Two modes (§9.2):
//!
//! * **inline** (default) — the worked example of §9.2: the bytes before an occurrence are
//!   permitted (`countBytesEnforced` = its offset); at an occurrence the callout injects the
//!   replacement (`FwpsStreamInjectAsync0` inside classifyFn) and blocks the pattern's bytes
//!   (`countBytesEnforced` = pattern length); the rest is indicated again.
//! * **out-of-band** — the callout clones every indicated byte (`FwpsCloneStreamData0`) and
//!   blocks it all; the host's [`crate::Worker`] replaces the pattern in the clone and injects it
//!   outside classifyFn (`Worker::run`, before the data path applies injections).
//!
//! ```text
//!  inline:       "ab" PERMIT(2) │ inject "R" + BLOCK(len p) │ "cd" PERMIT    ─► "abRcd"
//!  out-of-band:  clone "abpcd", BLOCK all ─► worker: edit → "abRcd" ─► stream inject
//! ```
//!
//! Parameters: `pattern` / `pattern_hex` (non-empty; default `X-Edit-Me`), `replacement` /
//! `replacement_hex` (any length, empty deletes the pattern; default `X-Edited`), `port` (local
//! or remote port; absent: every connection), `mode` = `inline` (default) | `out-of-band`.
//!
//! Limits: an occurrence split across two indications is not replaced (inline, the data path
//! has already forwarded the packet that carried its first part). Without a stream injection
//! handle (creation failed) the callout permits everything unchanged.

use std::sync::Arc;

use parking_lot::Mutex;
use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::constants::StreamFlags;
use wfp_core::inject::{AddressFamily, Inject, InjectionHandle, InjectionTypes};
use wfp_core::{ActionType, Callout, RtFilter, Status};

use crate::support::{enforce, field, permit, port, stream_no_opinion};
use crate::worker::{stream_kind, Edit, Worker};

/// Inline or out-of-band editing (§9.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EditMode {
    /// Inject the replacement inside classifyFn and block the pattern's bytes.
    #[default]
    Inline,
    /// Clone and block everything; the host's worker injects the edited clone.
    OutOfBand,
}

/// A pattern and its replacement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The bytes to find (non-empty).
    pub pattern: Vec<u8>,
    /// What replaces them (any length, may be empty).
    pub replacement: Vec<u8>,
}

impl Rule {
    /// `data` with every occurrence of the pattern replaced (left to right, not overlapping).
    pub fn apply(&self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        let mut rest = data;
        while let Some(i) = find(rest, &self.pattern) {
            let (before, after) = rest.split_at(i);
            out.extend_from_slice(before);
            out.extend_from_slice(&self.replacement);
            rest = after.get(self.pattern.len()..).unwrap_or(&[]);
        }
        out.extend_from_slice(rest);
        out
    }
}

/// What the editor is configured with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditorConfig {
    /// Pattern and replacement.
    pub rule: Rule,
    /// Only connections with this local or remote port (`None`: all).
    pub port: Option<u16>,
    /// Inline or out-of-band.
    pub mode: EditMode,
}

/// `wfp.stream-editor` (see the module doc).
pub struct StreamEditor {
    rule: Arc<Rule>,
    port: Option<u16>,
    mode: EditMode,
    worker: Arc<Worker>,
    handle: Mutex<Option<InjectionHandle>>,
}

impl StreamEditor {
    /// An editor; out-of-band edits go to `worker`. An empty pattern matches nothing.
    pub fn new(config: EditorConfig, worker: Arc<Worker>) -> Self {
        Self {
            rule: Arc::new(config.rule),
            port: config.port,
            mode: config.mode,
            worker,
            handle: Mutex::new(None),
        }
    }

    fn applies(&self, values: &IncomingValues<'_>) -> bool {
        !self.rule.pattern.is_empty()
            && self.port.is_none_or(|p| {
                port(field(values, "IP_LOCAL_PORT")) == p
                    || port(field(values, "IP_REMOTE_PORT")) == p
            })
    }

    fn handle(&self, ctx: &ClassifyContext<'_>) -> Option<InjectionHandle> {
        let mut h = self.handle.lock();
        if h.is_none() {
            *h = ctx
                .engine()
                .create_injection_handle(AddressFamily::Unspecified, InjectionTypes::STREAM)
                .ok();
        }
        *h
    }
}

impl Callout for StreamEditor {
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        layer_data: &mut LayerData<'_>,
        filter: &RtFilter,
        _flow_context: u64,
        out: &mut ClassifyOut,
    ) {
        let LayerData::Stream(io) = layer_data else {
            return;
        };
        let (Some(flow), Some(handle)) = (meta.flow(), self.handle(ctx)) else {
            return stream_no_opinion(io, out, filter);
        };
        let data = io.stream_data.data;
        if data.is_empty() || !self.applies(values) {
            return stream_no_opinion(io, out, filter);
        }
        let receive = io.stream_data.flags.contains(StreamFlags::RECEIVE);
        let kind = stream_kind(flow, ctx.callout_id(), ctx.layer(), receive);
        if self.mode == EditMode::OutOfBand {
            let packet = ctx.clone_stream_data(&io.stream_data);
            self.worker.queue_edit(Edit {
                handle,
                packet,
                kind,
                rule: Arc::clone(&self.rule),
            });
            out.action_type = ActionType::BLOCK;
            return enforce(io, data.len());
        }
        match find(data, &self.rule.pattern) {
            None => {
                permit(out, filter);
                enforce(io, data.len());
            }
            Some(0) => {
                let engine = ctx.engine();
                let p = engine.allocate_packet(self.rule.replacement.clone());
                let st = engine.inject(Inject {
                    handle,
                    context: flow,
                    kind,
                    packet: p,
                    completion: None,
                });
                if st != Status::SUCCESS {
                    let _ = engine.free_packet(p);
                }
                out.action_type = ActionType::BLOCK;
                enforce(io, self.rule.pattern.len());
            }
            Some(i) => {
                permit(out, filter);
                enforce(io, i);
            }
        }
    }
}

/// The offset of the first occurrence of `pattern` in `data`.
fn find(data: &[u8], pattern: &[u8]) -> Option<usize> {
    if pattern.is_empty() {
        return None;
    }
    data.windows(pattern.len()).position(|w| w == pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_replaces_every_occurrence_left_to_right() {
        let r = Rule {
            pattern: b"aa".to_vec(),
            replacement: b"b".to_vec(),
        };
        assert_eq!(r.apply(b"aaaaa"), b"bba".to_vec());
        assert_eq!(r.apply(b""), Vec::<u8>::new());
        let grow = Rule {
            pattern: b"x".to_vec(),
            replacement: b"xyz".to_vec(),
        };
        assert_eq!(grow.apply(b"-x-x"), b"-xyz-xyz".to_vec());
        assert_eq!(find(b"abc", b""), None);
    }
}
