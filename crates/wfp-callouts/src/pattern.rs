//! # `wfp.stream-pattern-blocker` — drops TCP connections whose stream contains a byte pattern
//!
//! | | |
//! |---|---|
//! | layers | `STREAM_V4`, `STREAM_V6` (both directions, each inspected on its own) |
//! | layerData | `LayerData::Stream(io)`: the indicated stream bytes of one direction |
//! | filter action | `FWP_ACTION_CALLOUT_UNKNOWN` (DROP_CONNECTION is only honoured there, §9.2); `CALLOUT_TERMINATING` blocks data instead; `CALLOUT_INSPECTION` only counts |
//! | registration | no flags; **with** a flowDeleteFn (it marks flows blocked under CALLOUT_TERMINATING) |
//!
//! A pattern may be split over any number of TCP segments. The callout follows the stmedit inline
//! inspection dance (§9.2) and keeps no per-flow buffer of its own:
//!
//! 1. An indication containing a pattern → the match outcome below.
//! 2. Otherwise, let `held` be the longest suffix of the indicated data that is a proper prefix of a
//!    pattern (at most `longest pattern - 1` bytes). When `held < len` the callout answers PERMIT
//!    with `countBytesEnforced = len - held`: those bytes cannot be part of a match. The engine
//!    re-indicates the remaining `held` bytes at once.
//! 3. When the whole indication is such a prefix (`held == len`) the callout answers
//!    FWPS_STREAM_ACTION_NEED_MORE_DATA with actionType NONE and `countBytesRequired` = the length
//!    of the shortest pattern that starts with those bytes — the **total** accumulated bytes needed
//!    (brief decision 8). The engine accumulates and re-indicates everything held.
//! 4. When no more data can come (FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA or BUFFER_LIMIT_REACHED, or
//!    a FIN/RST stream flag on the data) it never asks for more: no match → PERMIT all.
//!
//! | on a match | effect |
//! |---|---|
//! | CALLOUT_UNKNOWN | FWPS_STREAM_ACTION_DROP_CONNECTION (actionType BLOCK, write right cleared): the connection is dropped |
//! | CALLOUT_TERMINATING | BLOCK with `countBytesEnforced` = all indicated bytes; a flow context marks the flow so every later indication (both directions) is BLOCKed too |
//! | CALLOUT_INSPECTION | CONTINUE; counted in [`PatternStats::matched`] (WFP ignores DROP_CONNECTION from inspection filters) |
//!
//! Every answer sets `actionType` explicitly (rule 2.6-8); the write right is not consulted at the
//! stream layer. Held-back bytes wait for the next segment: an application that sends a pattern
//! prefix and then waits for a reply stalls until more data, FIN, or the buffer limit.

use std::sync::atomic::AtomicU64;

use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::{ActionType, Callout, RtFilter, StreamAction};

use crate::support::{
    block, bump, enforce, mark_blocked, need_more, no_opinion, permit, stream_ends, Mode,
    BLOCKED_FLOW,
};
use crate::ConfigError;

/// Longest pattern accepted.
pub const MAX_PATTERN: usize = 4096;

/// Counters.
#[derive(Debug, Default)]
pub struct PatternStats {
    /// Indications seen.
    pub indications: AtomicU64,
    /// Indications that contained a pattern.
    pub matched: AtomicU64,
    /// NEED_MORE_DATA answers.
    pub need_more: AtomicU64,
    /// PERMIT answers that held bytes back (`countBytesEnforced < dataLength`).
    pub partial_permits: AtomicU64,
    /// Indications blocked because the flow was marked blocked earlier.
    pub blocked_later: AtomicU64,
}

/// A pattern with its KMP failure table: one pass over the data finds a match and, at the end, the
/// longest suffix of the data that is a proper prefix of the pattern.
#[derive(Debug)]
struct Pattern {
    bytes: Box<[u8]>,
    /// `fail[i]`: length of the longest proper prefix of `bytes[..=i]` that is also its suffix.
    fail: Box<[usize]>,
}

/// The result of scanning data for one pattern.
enum Scan {
    Match,
    /// No match; the data ends with this many bytes of the pattern's start.
    Tail(usize),
}

impl Pattern {
    fn new(bytes: &[u8]) -> Self {
        let mut fail = vec![0usize; bytes.len()];
        let mut k = 0usize;
        for i in 1..bytes.len() {
            while k > 0 && bytes.get(k) != bytes.get(i) {
                k = fail.get(k - 1).copied().unwrap_or(0);
            }
            if bytes.get(k) == bytes.get(i) {
                k += 1;
            }
            if let Some(f) = fail.get_mut(i) {
                *f = k;
            }
        }
        Self {
            bytes: bytes.into(),
            fail: fail.into(),
        }
    }

    fn scan(&self, data: &[u8]) -> Scan {
        let mut q = 0usize;
        for &b in data {
            while q > 0 && self.bytes.get(q) != Some(&b) {
                q = self.fail.get(q - 1).copied().unwrap_or(0);
            }
            if self.bytes.get(q) == Some(&b) {
                q += 1;
            }
            if q == self.bytes.len() {
                return Scan::Match;
            }
        }
        Scan::Tail(q)
    }
}

/// The `wfp.stream-pattern-blocker` callout.
#[derive(Debug)]
pub struct StreamPatternBlocker {
    patterns: Vec<Pattern>,
    stats: PatternStats,
}

/// What one indication holds.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Match,
    /// No match; the last `held` bytes start a pattern whose shortest completion is `need` bytes.
    Held {
        held: usize,
        need: usize,
    },
    Clean,
}

impl StreamPatternBlocker {
    /// Blocks streams containing any of `patterns` (byte strings of 1..=[`MAX_PATTERN`] bytes).
    pub fn new<I, P>(patterns: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        let mut v: Vec<Pattern> = Vec::new();
        for p in patterns {
            let p = p.as_ref();
            let reason = match p.len() {
                0 => Some("empty pattern"),
                n if n > MAX_PATTERN => Some("longer than 4096 bytes"),
                _ => None,
            };
            if let Some(reason) = reason {
                return Err(ConfigError::InvalidPattern {
                    pattern: String::from_utf8_lossy(p).into_owned(),
                    reason,
                });
            }
            if !v.iter().any(|q| *q.bytes == *p) {
                v.push(Pattern::new(p));
            }
        }
        Ok(Self {
            patterns: v,
            stats: PatternStats::default(),
        })
    }

    /// The `wfp.stream-pattern-blocker` default: [`crate::DEFAULT_PATTERN`].
    pub(crate) fn with_default() -> Self {
        Self {
            patterns: vec![Pattern::new(crate::DEFAULT_PATTERN)],
            stats: PatternStats::default(),
        }
    }

    /// The patterns.
    pub fn patterns(&self) -> impl Iterator<Item = &[u8]> {
        self.patterns.iter().map(|p| &*p.bytes)
    }

    /// Counters.
    pub fn stats(&self) -> &PatternStats {
        &self.stats
    }

    /// True when `data` contains a pattern.
    pub fn contains_pattern(&self, data: &[u8]) -> bool {
        self.find(data) == Found::Match
    }

    fn find(&self, data: &[u8]) -> Found {
        let mut held = 0usize;
        let mut need = usize::MAX;
        for p in &self.patterns {
            match p.scan(data) {
                Scan::Match => return Found::Match,
                Scan::Tail(0) => {}
                Scan::Tail(k) if k > held => {
                    held = k;
                    need = p.bytes.len();
                }
                Scan::Tail(k) if k == held => need = need.min(p.bytes.len()),
                Scan::Tail(_) => {}
            }
        }
        if held == 0 {
            Found::Clean
        } else {
            Found::Held { held, need }
        }
    }
}

impl Callout for StreamPatternBlocker {
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
        let data = io.stream_data.data;
        let len = data.len();
        if flow_context == BLOCKED_FLOW {
            bump(&self.stats.blocked_later);
            block(out);
            return enforce(io, len);
        }
        let found = self.find(data);
        if found == Found::Match {
            bump(&self.stats.matched);
            match Mode::of(filter) {
                Mode::Drop => {
                    io.stream_action = StreamAction::DropConnection;
                    block(out);
                }
                Mode::Block => {
                    mark_blocked(ctx.engine(), ctx.callout_id(), values, meta.flow());
                    block(out);
                    enforce(io, len);
                }
                Mode::Detect => {
                    out.action_type = ActionType::CONTINUE;
                    enforce(io, len);
                }
            }
            return;
        }
        match found {
            Found::Held { held, need } if !stream_ends(io, out) => {
                if held >= len {
                    bump(&self.stats.need_more);
                    need_more(io, out, need);
                } else {
                    bump(&self.stats.partial_permits);
                    permit(out, filter);
                    enforce(io, len - held);
                }
            }
            _ => {
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
    fn find_reports_the_longest_pattern_prefix_at_the_end() {
        let b = StreamPatternBlocker::new(["abcd", "xyz", "abab"]).unwrap();
        assert_eq!(b.find(b"....abc"), Found::Held { held: 3, need: 4 });
        assert_eq!(b.find(b"....ab"), Found::Held { held: 2, need: 4 });
        assert_eq!(b.find(b"....xy"), Found::Held { held: 2, need: 3 });
        assert_eq!(b.find(b"....x"), Found::Held { held: 1, need: 3 });
        assert_eq!(b.find(b"....aba"), Found::Held { held: 3, need: 4 });
        assert_eq!(b.find(b"....q"), Found::Clean);
        assert_eq!(b.find(b""), Found::Clean);
        assert!(b.contains_pattern(b"..abcd.."));
        assert!(b.contains_pattern(b"aabababx"));
        assert!(b.contains_pattern(b"xyz"));
        assert!(!b.contains_pattern(b"xy"));
    }

    #[test]
    fn kmp_agrees_with_a_naive_search() {
        let pats: [&[u8]; 4] = [b"aab", b"abaab", b"aaaa", b"ba"];
        for p in pats {
            let b = StreamPatternBlocker::new([p]).unwrap();
            for n in 0..1u32 << 10 {
                let data: Vec<u8> = (0..10)
                    .map(|i| if n >> i & 1 == 1 { b'a' } else { b'b' })
                    .collect();
                let naive = data.windows(p.len()).any(|w| w == p);
                assert_eq!(b.contains_pattern(&data), naive, "{p:?} in {data:?}");
                if !naive {
                    let tail = (1..p.len())
                        .rev()
                        .find(|&k| k <= data.len() && data.ends_with(&p[..k]));
                    let want = tail.map_or(Found::Clean, |held| Found::Held {
                        held,
                        need: p.len(),
                    });
                    assert_eq!(b.find(&data), want, "{p:?} in {data:?}");
                }
            }
        }
    }

    #[test]
    fn empty_and_oversized_patterns_are_refused() {
        assert!(StreamPatternBlocker::new([b"".as_slice()]).is_err());
        assert!(StreamPatternBlocker::new([vec![b'a'; MAX_PATTERN + 1]]).is_err());
    }
}
