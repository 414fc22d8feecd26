//! # `wfp.dns-blocker` — blocks DNS queries for listed names
//!
//! | | |
//! |---|---|
//! | layers | `DATAGRAM_DATA_V4`, `DATAGRAM_DATA_V6` (both directions) |
//! | layerData | `LayerData::Packet(payload)`: the **UDP payload**, i.e. the DNS message starts at byte 0, in **both** directions. (WFP itself indicates outbound datagrams at the UDP header; this engine's data paths strip it. Anything else, including `LayerData::None`, gets "no opinion".) |
//! | filter action | `FWP_ACTION_CALLOUT_UNKNOWN` (recommended), with a condition such as `IP_REMOTE_PORT == 53` (clients) or `IP_LOCAL_PORT == 53` (a local resolver) |
//! | registration | no flags, no flowDeleteFn |
//!
//! The callout parses the DNS header and question section ([`parse`]) and, when the message is a
//! query (QR = 0, any opcode) with a QNAME in its [`NameSet`] (exact or `*.suffix`,
//! case-insensitive), answers **BLOCK** and clears the write right. Otherwise it has no opinion:
//! CONTINUE under CALLOUT_UNKNOWN / INSPECTION, PERMIT under CALLOUT_TERMINATING (where CONTINUE
//! would become BLOCK, §2.5). Responses are never blocked.
//!
//! Without FWPS_RIGHT_ACTION_WRITE (a higher sublayer already decided hard) it leaves `actionType`
//! unchanged — it never vetoes (rule 2.6-1; brief decision 11).
//!
//! Malformed messages (truncated, compression loops or forward pointers, reserved label types,
//! names over 255 bytes, more than [`MAX_QUESTIONS`] questions) never panic: they are counted in
//! [`DnsStats::malformed`] and get "no opinion", or BLOCK with [`OnMalformed::Block`].

use std::sync::atomic::AtomicU64;

use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::{Callout, RtFilter};

use crate::names::NameSet;
use crate::support::{block, bump, no_opinion};

/// Most questions parsed; a message claiming more is malformed (real queries carry one).
pub const MAX_QUESTIONS: usize = 16;
/// Most compression pointers followed while reading one name.
pub const MAX_POINTERS: usize = 16;
/// Longest name in wire form (RFC 1035 §2.3.4).
pub const MAX_WIRE_NAME: usize = 255;

/// Why a DNS message could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The message ends before the header, a label, a pointer or a question's type/class.
    #[error("DNS message truncated at byte {offset}")]
    Truncated {
        /// Where more bytes were needed.
        offset: usize,
    },
    /// A label length byte uses the reserved 0x40 / 0x80 label types.
    #[error("reserved DNS label type {byte:#04x} at byte {offset}")]
    LabelType {
        /// Position of the length byte.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// A name is longer than 255 bytes in wire form.
    #[error("DNS name starting at byte {offset} is longer than 255 bytes")]
    NameTooLong {
        /// Where the name starts.
        offset: usize,
    },
    /// More than [`MAX_POINTERS`] compression pointers in one name.
    #[error("too many compression pointers in the DNS name at byte {offset}")]
    PointerLoop {
        /// Where the name starts.
        offset: usize,
    },
    /// A compression pointer that does not point before the labels it continues (which would loop).
    #[error("DNS compression pointer at byte {offset} points forward to {target}")]
    ForwardPointer {
        /// Position of the pointer.
        offset: usize,
        /// Its target.
        target: usize,
    },
    /// QDCOUNT above [`MAX_QUESTIONS`].
    #[error("DNS message claims {count} questions (at most {MAX_QUESTIONS} are parsed)")]
    TooManyQuestions {
        /// QDCOUNT.
        count: u16,
    },
}

/// One entry of the question section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// QNAME as dotted text bytes, case as on the wire, no trailing dot (empty for the root).
    pub name: Vec<u8>,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
}

/// The parts of a DNS message the blocker looks at: header and question section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// ID.
    pub id: u16,
    /// QR: false for a query, true for a response.
    pub is_response: bool,
    /// OPCODE (0 = QUERY).
    pub opcode: u8,
    /// The question section.
    pub questions: Vec<Question>,
}

/// Parses the header and question section of a DNS message (`msg` starts at the DNS header). The
/// answer, authority and additional sections are not read.
pub fn parse(msg: &[u8]) -> Result<Message, DnsError> {
    let header = msg
        .get(..12)
        .ok_or(DnsError::Truncated { offset: msg.len() })?;
    let id = u16::from_be_bytes([header[0], header[1]]);
    let flags = u16::from_be_bytes([header[2], header[3]]);
    let qdcount = u16::from_be_bytes([header[4], header[5]]);
    if usize::from(qdcount) > MAX_QUESTIONS {
        return Err(DnsError::TooManyQuestions { count: qdcount });
    }
    let mut pos = 12;
    let mut questions = Vec::with_capacity(usize::from(qdcount));
    for _ in 0..qdcount {
        let (name, next) = read_name(msg, pos)?;
        let tc = msg
            .get(next..next + 4)
            .ok_or(DnsError::Truncated { offset: next })?;
        questions.push(Question {
            name,
            qtype: u16::from_be_bytes([tc[0], tc[1]]),
            qclass: u16::from_be_bytes([tc[2], tc[3]]),
        });
        pos = next + 4;
    }
    Ok(Message {
        id,
        is_response: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0xF) as u8,
        questions,
    })
}

/// Reads the (possibly compressed) name at `start`; returns it as dotted text bytes and the offset
/// just after it in the original byte sequence.
///
/// Loops are impossible: every pointer must point strictly before the first byte of the label run
/// it continues, so targets strictly decrease; [`MAX_POINTERS`] bounds the work anyway.
pub fn read_name(msg: &[u8], start: usize) -> Result<(Vec<u8>, usize), DnsError> {
    let mut out = Vec::new();
    let mut pos = start;
    let mut run_start = start;
    let mut after: Option<usize> = None;
    let mut wire_len = 0usize;
    let mut jumps = 0usize;
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Truncated { offset: pos })?;
        match len & 0xC0 {
            0x00 => {
                wire_len += 1 + usize::from(len);
                if wire_len > MAX_WIRE_NAME {
                    return Err(DnsError::NameTooLong { offset: start });
                }
                if len == 0 {
                    return Ok((out, after.unwrap_or(pos + 1)));
                }
                let end = pos + 1 + usize::from(len);
                let label = msg
                    .get(pos + 1..end)
                    .ok_or(DnsError::Truncated { offset: msg.len() })?;
                if !out.is_empty() {
                    out.push(b'.');
                }
                out.extend_from_slice(label);
                pos = end;
            }
            0xC0 => {
                let low = *msg
                    .get(pos + 1)
                    .ok_or(DnsError::Truncated { offset: pos + 1 })?;
                let target = usize::from(u16::from_be_bytes([len & 0x3F, low]));
                jumps += 1;
                if jumps > MAX_POINTERS {
                    return Err(DnsError::PointerLoop { offset: start });
                }
                if target >= run_start {
                    return Err(DnsError::ForwardPointer {
                        offset: pos,
                        target,
                    });
                }
                after.get_or_insert(pos + 2);
                run_start = target;
                pos = target;
            }
            _ => {
                return Err(DnsError::LabelType {
                    offset: pos,
                    byte: len,
                })
            }
        }
    }
}

/// What to do with a datagram that is not a parseable DNS message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnMalformed {
    /// Block it (with the write right).
    Block,
    /// No opinion (the default): other filters decide.
    #[default]
    Continue,
}

/// Counters.
#[derive(Debug, Default)]
pub struct DnsStats {
    /// Datagrams inspected.
    pub inspected: AtomicU64,
    /// Queries whose name matched (blocked when the callout had the write right).
    pub matched: AtomicU64,
    /// Datagrams that were not parseable DNS messages.
    pub malformed: AtomicU64,
    /// Classifies without packet data (`LayerData` other than `Packet`).
    pub no_data: AtomicU64,
}

/// The `wfp.dns-blocker` callout.
#[derive(Debug)]
pub struct DnsBlocker {
    names: NameSet,
    on_malformed: OnMalformed,
    stats: DnsStats,
}

impl DnsBlocker {
    /// Blocks queries for `names` (exact names and `*.suffix` wildcards, see [`NameSet`]).
    pub fn new<I, S>(names: I) -> Result<Self, crate::ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(Self::with_names(NameSet::new(names)?))
    }

    /// Blocks queries for the names in `names`.
    pub fn with_names(names: NameSet) -> Self {
        Self {
            names,
            on_malformed: OnMalformed::default(),
            stats: DnsStats::default(),
        }
    }

    /// Sets what happens to datagrams that do not parse.
    #[must_use]
    pub fn on_malformed(mut self, on: OnMalformed) -> Self {
        self.on_malformed = on;
        self
    }

    /// The name list.
    pub fn names(&self) -> &NameSet {
        &self.names
    }

    /// Counters.
    pub fn stats(&self) -> &DnsStats {
        &self.stats
    }

    /// True when `msg` is a query for a listed name (the decision `classify` makes).
    pub fn is_blocked_query(&self, msg: &Message) -> bool {
        !msg.is_response && msg.questions.iter().any(|q| self.names.matches(&q.name))
    }
}

impl Callout for DnsBlocker {
    fn classify(
        &self,
        _ctx: &ClassifyContext<'_>,
        _values: &IncomingValues<'_>,
        _meta: &Metadata,
        layer_data: &mut LayerData<'_>,
        filter: &RtFilter,
        _flow_context: u64,
        out: &mut ClassifyOut,
    ) {
        let LayerData::Packet(payload) = layer_data else {
            bump(&self.stats.no_data);
            return no_opinion(out, filter);
        };
        bump(&self.stats.inspected);
        let blocked = match parse(payload) {
            Ok(msg) => {
                let hit = self.is_blocked_query(&msg);
                if hit {
                    bump(&self.stats.matched);
                }
                hit
            }
            Err(_) => {
                bump(&self.stats.malformed);
                self.on_malformed == OnMalformed::Block
            }
        };
        if blocked && out.can_write() {
            block(out);
        } else {
            no_opinion(out, filter);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(names: &[&str]) -> Vec<u8> {
        let mut m = vec![
            0x12,
            0x34,
            0x01,
            0x00,
            0x00,
            names.len() as u8,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        for n in names {
            for l in n.split('.') {
                m.push(l.len() as u8);
                m.extend_from_slice(l.as_bytes());
            }
            m.extend_from_slice(&[0, 0, 1, 0, 1]);
        }
        m
    }

    #[test]
    fn parses_a_plain_query() {
        let m = parse(&query(&["www.Example.com"])).unwrap();
        assert_eq!(m.id, 0x1234);
        assert!(!m.is_response);
        assert_eq!(m.opcode, 0);
        assert_eq!(m.questions.len(), 1);
        assert_eq!(m.questions[0].name, b"www.Example.com");
        assert_eq!((m.questions[0].qtype, m.questions[0].qclass), (1, 1));
    }

    #[test]
    fn follows_backward_pointers() {
        let mut m = query(&["example.com"]);
        m[5] = 2;
        // second question: "www" + pointer to offset 12
        m.extend_from_slice(&[3, b'w', b'w', b'w', 0xC0, 12, 0, 28, 0, 1]);
        let p = parse(&m).unwrap();
        assert_eq!(p.questions[1].name, b"www.example.com");
        assert_eq!(p.questions[1].qtype, 28);
    }

    #[test]
    fn rejects_loops_forward_pointers_and_bad_labels() {
        let mut self_loop = query(&[]);
        self_loop[5] = 1;
        self_loop.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        assert!(matches!(
            parse(&self_loop),
            Err(DnsError::ForwardPointer { .. })
        ));
        let mut fwd = query(&[]);
        fwd[5] = 1;
        fwd.extend_from_slice(&[0xC0, 20, 0, 1, 0, 1, 0, 0, 1, b'a', 0]);
        assert!(matches!(parse(&fwd), Err(DnsError::ForwardPointer { .. })));
        let mut ext = query(&[]);
        ext[5] = 1;
        ext.extend_from_slice(&[0x41, 0]);
        assert!(matches!(parse(&ext), Err(DnsError::LabelType { .. })));
        let long = format!("{}x", "abcdefghi.".repeat(26));
        assert!(matches!(
            parse(&query(&[&long])),
            Err(DnsError::NameTooLong { .. })
        ));
        let mut many = query(&["a"]);
        many[5] = 17;
        assert!(matches!(
            parse(&many),
            Err(DnsError::TooManyQuestions { count: 17 })
        ));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let q = query(&["a.b.example"]);
        for n in 0..q.len() {
            assert!(parse(&q[..n]).is_err(), "prefix {n}");
        }
        assert!(parse(&q).is_ok());
    }
}
