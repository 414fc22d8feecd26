//! Hard rule sets: nearly every rule has its own combination of prefix lengths and port ranges.
//!
//! ClassBench sets reuse a few dozen (source length, destination length, port class) shapes, which
//! is what tuple-space indexes thrive on. This generator produces the opposite, the worst case the
//! index must guard (issue 15, "rules built to maximise distinct tuples"):
//!
//! - source and destination prefix lengths are drawn independently and uniformly from 0..=32, the
//!   addresses uniformly at random (so 33 × 33 length pairs);
//! - each port field is, with equal probability, a wildcard, one exact port, or a random range
//!   `[lo, lo + w]` whose width `w` is log-uniform in 1..=65535 (so its common-prefix length — the
//!   "tuple" of a range — spreads over 0..=16 too);
//! - the protocol is TCP, UDP or any (mask 0x00), one third each;
//! - rule order (priority) is the generation order.
//!
//! At 10k rules nearly all rules differ in (source length, destination length, source-port range,
//! destination-port range) — [`shape_count`] counts them — and most even in the coarser tuple of
//! prefix lengths (ranges reduced to the length of their common prefix, [`tuple_count`]).
//!
//! The output is plain [`Rule`]s: [`format_rules`] writes them as a ClassBench rule file, so the
//! sets can be stored and replayed like any other ([`format_trace`] writes headers as a trace).
//! Generation is deterministic for a given seed.

use std::collections::HashSet;

use crate::classbench::{Header, Rule};

/// A small deterministic generator (xorshift64); the seed 0 is replaced by a fixed non-zero one.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// `count` hard rules from `seed` (see the module doc).
pub fn generate(count: usize, seed: u64) -> Vec<Rule> {
    let mut rng = XorShift::new(seed);
    (0..count)
        .map(|_| {
            let prefix = |rng: &mut XorShift| {
                let len = rng.below(33) as u8;
                let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                (rng.next_u64() as u32 & !host, len)
            };
            let src = prefix(&mut rng);
            let dst = prefix(&mut rng);
            let sport = port_range(&mut rng);
            let dport = port_range(&mut rng);
            let proto = match rng.below(3) {
                0 => Some(6),
                1 => Some(17),
                _ => None,
            };
            Rule {
                src,
                dst,
                sport,
                dport,
                proto,
            }
        })
        .collect()
}

fn port_range(rng: &mut XorShift) -> (u16, u16) {
    match rng.below(3) {
        0 => (0, u16::MAX),
        1 => {
            let p = rng.next_u64() as u16;
            (p, p)
        }
        _ => {
            // Log-uniform width: 2^(0..16) scaled by a random fraction.
            let bits = rng.below(16) as u32 + 1;
            let width = (1u64 << bits) - 1 - rng.below(1u64 << (bits - 1));
            let width = u16::try_from(width.max(1)).unwrap_or(u16::MAX);
            let lo = rng.below(u64::from(u16::MAX - width) + 1) as u16;
            (lo, lo + width)
        }
    }
}

/// Distinct (source length, destination length, source-port range, destination-port range).
pub fn shape_count(rules: &[Rule]) -> usize {
    rules
        .iter()
        .map(|r| (r.src.1, r.dst.1, r.sport, r.dport))
        .collect::<HashSet<_>>()
        .len()
}

/// Distinct tuples: prefix lengths, port ranges reduced to the length of the common prefix of their
/// bounds, and whether the protocol is exact.
pub fn tuple_count(rules: &[Rule]) -> usize {
    let cpl = |(lo, hi): (u16, u16)| (lo ^ hi).leading_zeros();
    rules
        .iter()
        .map(|r| {
            (
                r.src.1,
                r.dst.1,
                cpl(r.sport),
                cpl(r.dport),
                r.proto.is_some(),
            )
        })
        .collect::<HashSet<_>>()
        .len()
}

/// `per_rule` headers for every rule, each field taken at a corner of the rule's range (its lowest
/// or highest value) or, one time in three, inside it; shuffled. A rule without a trace file gets
/// these (the header's `rule` is the rule it was drawn from).
pub fn corner_headers(rules: &[Rule], per_rule: usize, seed: u64) -> Vec<Header> {
    let mut rng = XorShift::new(seed);
    let mut out = Vec::with_capacity(rules.len().saturating_mul(per_rule));
    for (i, r) in rules.iter().enumerate() {
        for _ in 0..per_rule {
            let mut pick = |lo: u64, hi: u64| match rng.below(3) {
                0 => lo,
                1 => hi,
                _ => lo + rng.below(hi - lo + 1),
            };
            let addr = |(a, len): (u32, u8)| {
                let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                (u64::from(a & !host), u64::from(a | host))
            };
            let (s0, s1) = addr(r.src);
            let (d0, d1) = addr(r.dst);
            let h = Header {
                src: pick(s0, s1) as u32,
                dst: pick(d0, d1) as u32,
                sport: pick(u64::from(r.sport.0), u64::from(r.sport.1)) as u16,
                dport: pick(u64::from(r.dport.0), u64::from(r.dport.1)) as u16,
                proto: r.proto.unwrap_or([6, 17, 1][rng.below(3) as usize]),
                rule: i,
            };
            out.push(h);
        }
    }
    for i in (1..out.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        out.swap(i, j);
    }
    out
}

/// Rules as a ClassBench rule file (the format [`crate::classbench::parse_rules`] reads).
pub fn format_rules(rules: &[Rule]) -> String {
    let mut out = String::with_capacity(rules.len() * 64);
    for r in rules {
        let (proto, mask) = r.proto.map_or((0, 0), |p| (p, 0xFF));
        out.push_str(&format!(
            "@{}/{}\t{}/{}\t{} : {}\t{} : {}\t0x{proto:02X}/0x{mask:02X}\t0x0000/0x0000\n",
            std::net::Ipv4Addr::from(r.src.0),
            r.src.1,
            std::net::Ipv4Addr::from(r.dst.0),
            r.dst.1,
            r.sport.0,
            r.sport.1,
            r.dport.0,
            r.dport.1,
        ));
    }
    out
}

/// Headers as a ClassBench trace file (the format [`crate::classbench::parse_trace`] reads).
pub fn format_trace(headers: &[Header]) -> String {
    let mut out = String::with_capacity(headers.len() * 40);
    for h in headers {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t0\t{}\n",
            h.src, h.dst, h.sport, h.dport, h.proto, h.rule
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classbench::{parse_rules, parse_trace};

    #[test]
    fn nearly_every_hard_rule_has_its_own_shape() {
        let rules = generate(10_000, 7);
        assert!(shape_count(&rules) > 9_500, "{}", shape_count(&rules));
        assert!(tuple_count(&rules) > 5_000, "{}", tuple_count(&rules));
        assert_eq!(generate(10_000, 7), rules, "deterministic");
    }

    #[test]
    fn generated_sets_round_trip_through_the_classbench_format() {
        let rules = generate(500, 3);
        assert_eq!(parse_rules(&format_rules(&rules)).expect("parses"), rules);
        let headers = corner_headers(&rules, 2, 5);
        assert_eq!(headers.len(), 1_000);
        assert_eq!(
            parse_trace(&format_trace(&headers)).expect("parses"),
            headers
        );
        // Every header lies inside the rule it was drawn from.
        for h in &headers {
            let r = rules[h.rule];
            let inside = |a: u32, (p, len): (u32, u8)| {
                let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                a & !host == p & !host
            };
            assert!(inside(h.src, r.src) && inside(h.dst, r.dst));
            assert!((r.sport.0..=r.sport.1).contains(&h.sport));
            assert!((r.dport.0..=r.dport.1).contains(&h.dport));
            assert!(r.proto.is_none_or(|p| p == h.proto));
        }
    }
}
