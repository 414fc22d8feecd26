//! The benchmark baseline: a tight linear scan over pre-decoded rules.
//!
//! The engine's reference scan (`ConditionSet::matches` on every filter) is the test oracle: simple
//! and obviously correct, but it decodes typed values and condition groups per filter. Comparing the
//! index with it would flatter the index. This scan is what a careful hand-written classifier
//! does instead: every rule decoded once into five inclusive `[lo, hi]` ranges packed in 24 bytes,
//! checked with one subtraction and compare per field, in priority order, first match wins.
//!
//! It answers exactly like the reference scan for rules loaded with
//! [`crate::classbench::filter_spec`] (the filter at position `i` is rule `i`); the benchmark binary
//! checks that on a sample of every run.

use crate::classbench::{Header, Rule};

/// One rule as ranges: `value - lo <= span` (wrapping) per field.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct Packed {
    src_lo: u32,
    src_span: u32,
    dst_lo: u32,
    dst_span: u32,
    sport_lo: u16,
    sport_span: u16,
    dport_lo: u16,
    dport_span: u16,
    proto_lo: u8,
    proto_span: u8,
    /// Application id number (pre-decoded ALE_APP_ID), 0 for any application.
    app: u8,
}

/// Pre-decoded rules in priority order.
#[derive(Clone, Debug)]
pub struct TightScan {
    rules: Vec<Packed>,
}

impl TightScan {
    /// Decodes `rules` (index = priority, 0 first).
    pub fn new(rules: &[Rule]) -> Self {
        Self::with_apps(rules, &[])
    }

    /// [`TightScan::new`] with an application number per rule (`apps[i]`, 0 or missing: any
    /// application), the application ids pre-decoded to small numbers.
    pub fn with_apps(rules: &[Rule], apps: &[u8]) -> Self {
        let prefix = |(a, len): (u32, u8)| {
            let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            (a & !host, host)
        };
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (src_lo, src_span) = prefix(r.src);
                let (dst_lo, dst_span) = prefix(r.dst);
                let (proto_lo, proto_span) = r.proto.map_or((0, u8::MAX), |p| (p, 0));
                Packed {
                    src_lo,
                    src_span,
                    dst_lo,
                    dst_span,
                    sport_lo: r.sport.0,
                    sport_span: r.sport.1.wrapping_sub(r.sport.0),
                    dport_lo: r.dport.0,
                    dport_span: r.dport.1.wrapping_sub(r.dport.0),
                    proto_lo,
                    proto_span,
                    app: apps.get(i).copied().unwrap_or(0),
                }
            })
            .collect();
        Self { rules }
    }

    /// The first rule (priority order) containing `h`.
    #[inline]
    pub fn first_match(&self, h: &Header) -> Option<usize> {
        self.rules.iter().position(|r| {
            (h.src.wrapping_sub(r.src_lo) <= r.src_span)
                & (h.dst.wrapping_sub(r.dst_lo) <= r.dst_span)
                & (h.sport.wrapping_sub(r.sport_lo) <= r.sport_span)
                & (h.dport.wrapping_sub(r.dport_lo) <= r.dport_span)
                & (h.proto.wrapping_sub(r.proto_lo) <= r.proto_span)
        })
    }

    /// The first rule (priority order) containing `h` for application number `app` (≥ 1).
    #[inline]
    pub fn first_match_app(&self, h: &Header, app: u8) -> Option<usize> {
        self.rules.iter().position(|r| {
            (h.src.wrapping_sub(r.src_lo) <= r.src_span)
                & (h.dst.wrapping_sub(r.dst_lo) <= r.dst_span)
                & (h.sport.wrapping_sub(r.sport_lo) <= r.sport_span)
                & (h.dport.wrapping_sub(r.dport_lo) <= r.dport_span)
                & (h.proto.wrapping_sub(r.proto_lo) <= r.proto_span)
                & ((r.app == 0) | (r.app == app))
        })
    }

    /// Rules held.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// No rule held.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_containing_rule_wins() {
        let any = Rule {
            src: (0, 0),
            dst: (0, 0),
            sport: (0, u16::MAX),
            dport: (0, u16::MAX),
            proto: None,
        };
        let web = Rule {
            dst: (0x0A00_0000, 8),
            dport: (80, 80),
            proto: Some(6),
            ..any
        };
        let scan = TightScan::new(&[web, any]);
        let h = Header {
            src: 1,
            dst: 0x0A01_0203,
            sport: 5000,
            dport: 80,
            proto: 6,
            rule: 0,
        };
        assert_eq!(scan.first_match(&h), Some(0));
        assert_eq!(scan.first_match(&Header { dport: 81, ..h }), Some(1));
        assert_eq!(scan.first_match(&Header { proto: 17, ..h }), Some(1));
        assert_eq!(
            TightScan::new(&[web]).first_match(&Header { dst: 1, ..h }),
            None
        );
    }
}
