//! Per-sublayer filter index: finds the next filter, in evaluation order, whose conditions match
//! the incoming values, without scanning every filter.
//!
//! ```text
//!  build (at commit, per sublayer)                  lookup (per classify, allocation-free)
//!  filters in evaluation order                      incoming values
//!    │ compile: every condition group → exact          │ one key per dimension (absent when
//!    │ intervals on ≤ 8 dimensions, or "residual"      │ missing or of another type)
//!    ▼                                                 ▼
//!  boxes ─► tuple tables (boxes with equal prefix   prune maps: AND of per-dimension table sets
//!           lengths, hashed on those prefixes)        → candidate tables, best position first
//!        ─► prune maps (per dimension: key block     → presence filter → hash slot → bounds
//!           → set of tables reaching it)              → residual check (only when needed)
//!                                                     stop when no table left can do better
//! ```
//!
//! The algorithm (tuple-space search with priority-ordered tables and early termination, plus
//! per-dimension table pruning) is described in `tuple.rs`; `compile.rs` turns conditions into
//! boxes; `prune.rs` builds the pruning maps.
//!
//! Contract: `SublayerIndex::next_match` returns exactly what a linear scan
//! (`filters[from..].iter().position(|f| f.conditions().matches(values))`) returns, for every
//! policy and every incoming value vector. Only conditions whose accepted set is exactly a union of
//! intervals over one typed field are indexed (EQUAL, NOT_EQUAL, GREATER…, RANGE on integers, MACs
//! and IPv6 addresses; V4 masks with contiguous masks; V6 prefixes); every other group — FLAGS_*,
//! strings, blobs, SIDs, FWP_EMPTY values, non-contiguous masks, second groups on one field, very
//! wide OR groups — is a wildcard in the index and confirmed by `ConditionSet::matches` on the
//! candidates. Small sublayers (fewer than `SCAN_BELOW` filters) or sublayers with no indexable
//! condition are scanned.
//!
//! The module performs no I/O, reads no clock, starts no threads, and allocates only at build.

mod compile;
mod prune;
mod tuple;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::catalogue::LayerDef;
use crate::filter::RtFilter;
use crate::value::Value;

use tuple::{Params, TupleIndex};

/// Sublayers with fewer filters than this are scanned linearly (the index would not pay off).
pub(crate) const SCAN_BELOW: usize = 32;

/// The index of one sublayer's filters (built from the `Vec<Arc<RtFilter>>` in evaluation order,
/// queried with that same slice).
#[derive(Debug)]
pub(crate) struct SublayerIndex {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Scan,
    Tuples(TupleIndex),
}

impl Default for SublayerIndex {
    fn default() -> Self {
        Self::scan()
    }
}

impl SublayerIndex {
    /// An index that scans (always correct, for any filter slice).
    pub(crate) fn scan() -> Self {
        Self { inner: Inner::Scan }
    }

    /// Builds the index of `filters`, given in evaluation order; `layer` gives the field types.
    pub(crate) fn build(layer: &LayerDef, filters: &[Arc<RtFilter>]) -> Self {
        Self::build_with(layer, filters, Params::default(), SCAN_BELOW)
    }

    fn build_with(
        layer: &LayerDef,
        filters: &[Arc<RtFilter>],
        params: Params,
        scan_below: usize,
    ) -> Self {
        if filters.len() < scan_below || u32::try_from(filters.len()).is_err() {
            return Self::scan();
        }
        let dims = compile::choose_dims(layer, filters);
        if dims.is_empty() {
            return Self::scan();
        }
        let compiled: Vec<compile::Compiled> = filters
            .iter()
            .map(|f| compile::compile(&dims, f.conditions().conditions()))
            .collect();
        Self {
            inner: Inner::Tuples(TupleIndex::build(dims, &compiled, params)),
        }
    }

    /// The position (in `filters`) of the first filter at or after `from` whose conditions all match
    /// `values`. `filters` must be the slice the index was built from (a different slice gives
    /// wrong answers, never a panic).
    #[inline]
    pub(crate) fn next_match(
        &self,
        filters: &[Arc<RtFilter>],
        values: &[Value],
        from: usize,
    ) -> Option<usize> {
        match &self.inner {
            Inner::Scan => scan(filters, values, from),
            Inner::Tuples(t) => t.next_match(filters, values, from),
        }
    }

    /// All matching positions, in evaluation order, computed lazily.
    pub(crate) fn matches<'a>(
        &'a self,
        filters: &'a [Arc<RtFilter>],
        values: &'a [Value],
    ) -> Matches<'a> {
        Matches {
            index: self,
            filters,
            values,
            from: 0,
        }
    }

    fn stats(&self) -> tuple::Stats {
        match &self.inner {
            Inner::Scan => tuple::Stats::default(),
            Inner::Tuples(t) => t.stats(),
        }
    }
}

/// Iterator over matching filter positions (see [`SublayerIndex::matches`]).
#[derive(Debug)]
pub(crate) struct Matches<'a> {
    index: &'a SublayerIndex,
    filters: &'a [Arc<RtFilter>],
    values: &'a [Value],
    from: usize,
}

impl Iterator for Matches<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let i = self
            .index
            .next_match(self.filters, self.values, self.from)?;
        self.from = i + 1;
        Some(i)
    }
}

/// The linear scan: the reference the index must agree with.
#[inline]
fn scan(filters: &[Arc<RtFilter>], values: &[Value], from: usize) -> Option<usize> {
    let rest = filters.get(from..)?;
    rest.iter()
        .position(|f| f.conditions().matches(values))
        .map(|i| i + from)
}

/// What the `classify` bench needs from the crate internals (not a stable API).
#[doc(hidden)]
pub mod bench_support {
    use std::sync::Arc;

    use crate::catalogue::{self, LayerId};
    use crate::engine::Engine;
    use crate::filter::RtFilter;
    use crate::value::Value;

    /// A built sublayer index.
    #[derive(Debug)]
    pub struct Index(super::SublayerIndex);

    /// Sizes of a built index.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct IndexStats {
        /// Indexed dimensions (0: the sublayer is scanned).
        pub dims: usize,
        /// Tuple tables.
        pub tables: usize,
        /// Boxes stored (filters, expanded by OR groups).
        pub boxes: usize,
        /// Non-empty hash buckets.
        pub buckets: usize,
        /// Largest bucket.
        pub max_bucket: usize,
        /// Approximate heap bytes of the index.
        pub bytes: usize,
    }

    /// Build parameters (defaults are what the engine uses).
    #[derive(Clone, Copy, Debug)]
    pub struct BuildParams {
        /// Tuples are rounded down to multiples of this (1: exact tuples).
        pub tuple_step: u32,
        /// Upper bound on tuple tables (at most 1024).
        pub max_tables: usize,
    }

    impl Default for BuildParams {
        fn default() -> Self {
            let p = super::Params::default();
            Self {
                tuple_step: p.tuple_step,
                max_tables: p.max_tables,
            }
        }
    }

    impl Index {
        /// Builds the index of one sublayer's filters (in evaluation order) at `layer`, as the
        /// engine does; `None` for an unknown layer.
        pub fn build(layer: LayerId, filters: &[Arc<RtFilter>]) -> Option<Self> {
            let def = catalogue::layer(layer)?;
            Some(Self(super::SublayerIndex::build(def, filters)))
        }

        /// [`Index::build`] with explicit parameters (always builds the tuple index).
        pub fn build_with(
            layer: LayerId,
            filters: &[Arc<RtFilter>],
            params: BuildParams,
        ) -> Option<Self> {
            let def = catalogue::layer(layer)?;
            let p = super::Params {
                tuple_step: params.tuple_step,
                max_tables: params.max_tables,
            };
            Some(Self(super::SublayerIndex::build_with(def, filters, p, 0)))
        }

        /// See `SublayerIndex::next_match`.
        #[inline]
        pub fn next_match(
            &self,
            filters: &[Arc<RtFilter>],
            values: &[Value],
            from: usize,
        ) -> Option<usize> {
            self.0.next_match(filters, values, from)
        }

        /// All matching positions, lazily (see `SublayerIndex::matches`).
        pub fn matches<'a>(
            &'a self,
            filters: &'a [Arc<RtFilter>],
            values: &'a [Value],
        ) -> impl Iterator<Item = usize> + 'a {
            self.0.matches(filters, values)
        }

        /// The first match from position 0 and the work it took: (tables probed, slots read,
        /// boxes checked); zeros for a scanned sublayer.
        pub fn probe_counts(
            &self,
            filters: &[Arc<RtFilter>],
            values: &[Value],
        ) -> (Option<usize>, [usize; 3]) {
            match &self.0.inner {
                super::Inner::Tuples(t) => {
                    let (r, c) = t.probe_counts(filters, values);
                    (r, [c.tables, c.slots, c.boxes])
                }
                super::Inner::Scan => (super::scan(filters, values, 0), [0; 3]),
            }
        }

        /// Sizes.
        pub fn stats(&self) -> IndexStats {
            let s = self.0.stats();
            IndexStats {
                dims: s.dims,
                tables: s.tables,
                boxes: s.boxes,
                buckets: s.buckets,
                max_bucket: s.max_bucket,
                bytes: s.bytes,
            }
        }
    }

    /// The linear scan the index replaces.
    #[inline]
    pub fn scan(filters: &[Arc<RtFilter>], values: &[Value], from: usize) -> Option<usize> {
        super::scan(filters, values, from)
    }

    /// The published filters of every sublayer at `layer`, each in evaluation order.
    pub fn sublayer_filters(engine: &Engine, layer: LayerId) -> Vec<Vec<Arc<RtFilter>>> {
        let snap = engine.snapshot.load();
        snap.layers
            .get(usize::from(layer.0))
            .map(|l| l.sublayers.iter().map(|s| s.filters.clone()).collect())
            .unwrap_or_default()
    }

    /// ClassBench rule sets and traces, turned into WFP filters and incoming values.
    pub mod classbench {
        use crate::catalogue::{self, layers, ConditionId};
        use crate::condition::{ConditionSpec, MatchType};
        use crate::constants::ActionType;
        use crate::filter::{FilterSpec, WeightSpec};
        use crate::value::{ConditionValue, Value};

        /// A malformed ClassBench line.
        #[derive(Debug, thiserror::Error)]
        #[non_exhaustive]
        pub enum ClassBenchError {
            /// A rule or trace line could not be parsed.
            #[error("line {line}: malformed ClassBench {what}")]
            BadLine {
                /// 1-based line number.
                line: usize,
                /// "rule" or "trace header".
                what: &'static str,
            },
        }

        /// One rule line.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct Rule {
            /// Source prefix (address, length).
            pub src: (u32, u8),
            /// Destination prefix.
            pub dst: (u32, u8),
            /// Source port range (inclusive).
            pub sport: (u16, u16),
            /// Destination port range (inclusive).
            pub dport: (u16, u16),
            /// Protocol when the mask is 0xFF.
            pub proto: Option<u8>,
        }

        /// One trace header.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct Header {
            /// Source address.
            pub src: u32,
            /// Destination address.
            pub dst: u32,
            /// Source port.
            pub sport: u16,
            /// Destination port.
            pub dport: u16,
            /// Protocol.
            pub proto: u8,
            /// The rule the header was generated from (0-based).
            pub rule: usize,
        }

        /// The layer the rules are loaded at.
        pub const LAYER: catalogue::LayerId = layers::INBOUND_TRANSPORT_V4;

        /// Parses a rule file (`@src/len dst/len lo : hi lo : hi proto/mask flags/mask`).
        pub fn parse_rules(text: &str) -> Result<Vec<Rule>, ClassBenchError> {
            let mut out = Vec::new();
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let bad = ClassBenchError::BadLine {
                    line: n + 1,
                    what: "rule",
                };
                out.push(parse_rule(line).ok_or(bad)?);
            }
            Ok(out)
        }

        fn parse_rule(line: &str) -> Option<Rule> {
            let body = line.strip_prefix('@')?;
            let tok: Vec<&str> = body.split_whitespace().collect();
            // src dst slo : shi dlo : dhi proto/mask [flags/mask]
            if tok.len() < 9 || tok.get(3) != Some(&":") || tok.get(6) != Some(&":") {
                return None;
            }
            let prefix = |s: &str| -> Option<(u32, u8)> {
                let (a, l) = s.split_once('/')?;
                let addr: std::net::Ipv4Addr = a.parse().ok()?;
                let len: u8 = l.parse().ok()?;
                (len <= 32).then_some((u32::from(addr), len))
            };
            let port = |s: &str| s.parse::<u16>().ok();
            let hex8 = |s: &str| u8::from_str_radix(s.trim_start_matches("0x"), 16).ok();
            let (proto, mask) = tok.get(8)?.split_once('/')?;
            let (proto, mask) = (hex8(proto)?, hex8(mask)?);
            Some(Rule {
                src: prefix(tok.first()?)?,
                dst: prefix(tok.get(1)?)?,
                sport: (port(tok.get(2)?)?, port(tok.get(4)?)?),
                dport: (port(tok.get(5)?)?, port(tok.get(7)?)?),
                proto: (mask == 0xFF).then_some(proto),
            })
        }

        /// Parses a trace file (`src dst sport dport proto x rule`).
        pub fn parse_trace(text: &str) -> Result<Vec<Header>, ClassBenchError> {
            let mut out = Vec::new();
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let f: Vec<u64> = line
                    .split_whitespace()
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|_| ClassBenchError::BadLine {
                        line: n + 1,
                        what: "trace header",
                    })?;
                let h = (|| {
                    Some(Header {
                        src: u32::try_from(*f.first()?).ok()?,
                        dst: u32::try_from(*f.get(1)?).ok()?,
                        sport: u16::try_from(*f.get(2)?).ok()?,
                        dport: u16::try_from(*f.get(3)?).ok()?,
                        proto: u8::try_from(*f.get(4)?).ok()?,
                        rule: usize::try_from(*f.get(6)?).ok()?,
                    })
                })()
                .ok_or(ClassBenchError::BadLine {
                    line: n + 1,
                    what: "trace header",
                })?;
                out.push(h);
            }
            Ok(out)
        }

        fn cond(name: &str, match_type: MatchType, value: ConditionValue) -> ConditionSpec {
            ConditionSpec {
                field: catalogue::condition_by_name(name).unwrap_or(ConditionId(u16::MAX)),
                match_type,
                value,
            }
        }

        fn port_cond(name: &str, (lo, hi): (u16, u16)) -> Option<ConditionSpec> {
            if lo == 0 && hi == u16::MAX {
                None
            } else if lo == hi {
                Some(cond(name, MatchType::Equal, Value::Uint16(lo).into()))
            } else {
                Some(cond(
                    name,
                    MatchType::Range,
                    ConditionValue::Range(Value::Uint16(lo), Value::Uint16(hi)),
                ))
            }
        }

        /// The filter for rule `index` of `count`: weight `count - index` (FWP_UINT64), actions
        /// alternating PERMIT/BLOCK, full wildcards omitted.
        pub fn filter_spec(rule: &Rule, index: usize, count: usize) -> FilterSpec {
            let action = if index & 1 == 0 {
                ActionType::PERMIT
            } else {
                ActionType::BLOCK
            };
            let mut f = FilterSpec::new(format!("classbench-{index}"), LAYER, action);
            f.weight = WeightSpec::Exact(u64::try_from(count.saturating_sub(index)).unwrap_or(0));
            for (name, (addr, len)) in [
                ("IP_LOCAL_ADDRESS", rule.src),
                ("IP_REMOTE_ADDRESS", rule.dst),
            ] {
                if len > 0 {
                    f.conditions.push(cond(
                        name,
                        MatchType::Equal,
                        ConditionValue::v4_prefix(addr.into(), len),
                    ));
                }
            }
            f.conditions.extend(port_cond("IP_LOCAL_PORT", rule.sport));
            f.conditions.extend(port_cond("IP_REMOTE_PORT", rule.dport));
            if let Some(p) = rule.proto {
                f.conditions.push(cond(
                    "IP_PROTOCOL",
                    MatchType::Equal,
                    Value::Uint8(p).into(),
                ));
            }
            f
        }

        /// The incoming values of a header at [`LAYER`] (fields the trace lacks stay FWP_EMPTY).
        pub fn header_values(h: &Header) -> Vec<Value> {
            let Some(layer) = catalogue::layer(LAYER) else {
                return Vec::new();
            };
            let mut v = vec![Value::Empty; layer.fields.len()];
            for (name, value) in [
                ("IP_PROTOCOL", Value::Uint8(h.proto)),
                ("IP_LOCAL_ADDRESS", Value::Uint32(h.src)),
                ("IP_REMOTE_ADDRESS", Value::Uint32(h.dst)),
                ("IP_LOCAL_PORT", Value::Uint16(h.sport)),
                ("IP_REMOTE_PORT", Value::Uint16(h.dport)),
            ] {
                if let Some(slot) = layer.field_index_by_name(name).and_then(|i| v.get_mut(i)) {
                    *slot = value;
                }
            }
            v
        }
    }
}
