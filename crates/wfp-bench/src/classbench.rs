//! ClassBench rule sets and traces, turned into WFP filters and incoming values.
//!
//! A rule file has one rule a line (`@src/len dst/len slo : shi dlo : dhi proto/mask flags/mask`);
//! a trace file one header a line (`src dst sport dport proto x rule`). Each rule becomes one filter
//! at [`LAYER`] (see [`filter_spec`]); each header the incoming values at that layer (see
//! [`header_values`]). Parsing never panics: a malformed line is a [`ClassBenchError`].

use wfp_core::catalogue::{self, layers, ConditionId};
use wfp_core::{
    ActionType, ConditionSpec, ConditionValue, FilterSpec, MatchType, Value, WeightSpec,
};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_line_becomes_a_rule_and_a_filter() {
        let text = "@10.1.0.0/16\t0.0.0.0/0\t0 : 65535\t80 : 80\t0x06/0xFF\t0x0000/0x0000\n\n";
        let rules = parse_rules(text).expect("parses");
        let rule = Rule {
            src: (0x0A01_0000, 16),
            dst: (0, 0),
            sport: (0, u16::MAX),
            dport: (80, 80),
            proto: Some(6),
        };
        assert_eq!(rules, vec![rule]);
        let f = filter_spec(&rule, 1, 10);
        assert_eq!(f.action, ActionType::BLOCK);
        assert_eq!(f.weight, WeightSpec::Exact(9));
        // Wildcards (dst /0, the full source port range) are omitted.
        assert_eq!(f.conditions.len(), 3);
    }

    #[test]
    fn a_trace_line_becomes_a_header_and_values() {
        let headers = parse_trace("167772161 3232235777 1024 80 6 0 4\n").expect("parses");
        let h = Header {
            src: 0x0A00_0001,
            dst: 0xC0A8_0101,
            sport: 1024,
            dport: 80,
            proto: 6,
            rule: 4,
        };
        assert_eq!(headers, vec![h]);
        let v = header_values(&h);
        let layer = catalogue::layer(LAYER).expect("layer");
        let at = |name: &str| layer.field_index_by_name(name).and_then(|i| v.get(i));
        assert_eq!(at("IP_REMOTE_PORT"), Some(&Value::Uint16(80)));
        assert_eq!(at("IP_LOCAL_ADDRESS"), Some(&Value::Uint32(0x0A00_0001)));
    }

    #[test]
    fn malformed_lines_are_errors_with_their_line_number() {
        let bad_rule = parse_rules("@10.1.0.0/16 0.0.0.0/0 0 : 65535\n");
        assert!(matches!(
            bad_rule,
            Err(ClassBenchError::BadLine { line: 1, .. })
        ));
        let bad_trace = parse_trace("1 2 3 4 5 0 6\n1 2 70000 4 5 0 6\n");
        assert!(matches!(
            bad_trace,
            Err(ClassBenchError::BadLine { line: 2, .. })
        ));
    }
}
