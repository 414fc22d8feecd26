//! nf_tables over netlink, for one thing: the offload epoch switch
//! ([`crate::offload::OffloadRules::switch_epoch`]) without starting a program.
//!
//! iptables-nft stores `-m mark --mark E/MASK` as native expressions (`meta load mark`,
//! `bitwise`, `cmp eq E`). The switch reads each epoch chain's only rule (`NFT_MSG_GETRULE`),
//! changes the value its `cmp` expression compares with, and replaces the rule by its handle
//! (`NFT_MSG_NEWRULE` + `NLM_F_REPLACE`) — every other attribute (the counter, the `goto`,
//! iptables' user data) is sent back as it was read, so `iptables -S` still shows the rule as
//! iptables wrote it. One dump per chain (one per hook and family) and one batch for all of
//! them, each answered in microseconds; the kernel applies the batch atomically. The socket is kept
//! open between switches: closing an nfnetlink socket waits for an RCU grace period (milliseconds
//! on a busy machine).

use std::time::{Duration, Instant};

use crate::error::NfqError;
use crate::sys::{self, Fd, Op, SysOk};

const NLMSG_HDRLEN: usize = 16;
const NFGEN_HDRLEN: usize = 4;
const NLA_HDRLEN: usize = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_REPLACE: u16 = 0x100;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWRULE: u16 = (NFNL_SUBSYS_NFTABLES << 8) | 6;
const NFT_MSG_GETRULE: u16 = (NFNL_SUBSYS_NFTABLES << 8) | 7;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_DATA_VALUE: u16 = 1;
/// Attributes of a dumped rule that a replace must not carry (the kernel sets them).
const NFTA_RULE_POSITION: u16 = 6;
const NFTA_RULE_ID: u16 = 8;

/// Errors of the nf_tables path (the caller falls back to `iptables-restore`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum NftError {
    /// A syscall failed.
    #[error(transparent)]
    Sys(#[from] NfqError),
    /// The kernel refused a request.
    #[error("nf_tables refused {what}: {source}")]
    Refused {
        /// The request.
        what: &'static str,
        /// The error it answered.
        #[source]
        source: std::io::Error,
    },
    /// The chain does not hold one rule with one `cmp` of 4 bytes.
    #[error("chain {chain}: {reason}")]
    Shape {
        /// The chain.
        chain: String,
        /// What is unexpected.
        reason: &'static str,
    },
    /// No answer in time.
    #[error("nf_tables did not answer {what} in time")]
    Timeout {
        /// The request.
        what: &'static str,
    },
}

/// A netlink socket for nf_tables requests, in the calling thread's network namespace.
#[derive(Debug)]
pub(crate) struct NftSocket {
    fd: Fd,
    seq: u32,
    buf: Vec<u8>,
}

impl NftSocket {
    /// Opens and binds the socket.
    pub(crate) fn open() -> Result<Self, NftError> {
        let fd = Fd::from_ok(
            sys::call(Op::NetlinkSocket).map_err(sys::SysError::into_nfq)?,
            "socket",
        )
        .map_err(sys::SysError::into_nfq)?;
        sys::call(Op::BindNetlink { fd: fd.raw() }).map_err(sys::SysError::into_nfq)?;
        Ok(Self {
            fd,
            seq: 0x4f00_0000,
            buf: vec![0; 1 << 16],
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sets the value compared by the `cmp` expression of the only rule of each chain named in
    /// `targets` — (nfproto: 2 IPv4, 10 IPv6; table; chain) — to `value` (host byte order, as a
    /// mark is), in one batch: one transaction, one commit for all of them.
    pub(crate) fn set_cmp_values(
        &mut self,
        targets: &[(u8, &str, &str)],
        value: u32,
    ) -> Result<(), NftError> {
        let begin = self.next_seq();
        let mut batch = message(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            begin,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        let mut acks = Vec::new();
        for &(family, table, chain) in targets {
            let rule = self.get_rule(family, table, chain)?;
            let mut attrs = Vec::with_capacity(rule.len());
            let mut cmp_found = 0;
            for (kind, _, raw) in nlattrs(&rule) {
                match kind {
                    NFTA_RULE_POSITION | NFTA_RULE_ID => {}
                    NFTA_RULE_EXPRESSIONS => {
                        let mut patched = raw.to_vec();
                        cmp_found += patch_cmp(&mut patched, value);
                        push_raw(&mut attrs, &patched);
                    }
                    _ => push_raw(&mut attrs, raw),
                }
            }
            if cmp_found != 1 {
                return Err(NftError::Shape {
                    chain: chain.to_owned(),
                    reason: "the rule does not have exactly one 4-byte cmp",
                });
            }
            let seq = self.next_seq();
            let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE;
            let mut m = message(NFT_MSG_NEWRULE, flags, seq, family, 0);
            m.extend_from_slice(&attrs);
            finish(&mut m);
            batch.extend_from_slice(&m);
            acks.push(seq);
        }
        let end = self.next_seq();
        batch.extend(message(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            end,
            0,
            NFNL_SUBSYS_NFTABLES,
        ));
        self.send(&batch)?;
        for seq in acks {
            self.ack(seq, "the rule replacement")?;
        }
        Ok(())
    }

    /// The attributes of the only rule of `chain`.
    fn get_rule(&mut self, family: u8, table: &str, chain: &str) -> Result<Vec<u8>, NftError> {
        let seq = self.next_seq();
        let mut m = message(NFT_MSG_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, seq, family, 0);
        attr(&mut m, NFTA_RULE_TABLE, &cstr(table));
        attr(&mut m, NFTA_RULE_CHAIN, &cstr(chain));
        finish(&mut m);
        self.send(&m)?;
        let mut rules: Vec<Vec<u8>> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let data = self.recv(deadline, "the rule dump")?;
            for (kind, s, body) in messages(&data) {
                if s != seq {
                    continue;
                }
                match kind {
                    NLMSG_DONE => {
                        let [rule] =
                            <[Vec<u8>; 1]>::try_from(rules).map_err(|_| NftError::Shape {
                                chain: chain.to_owned(),
                                reason: "not exactly one rule",
                            })?;
                        return Ok(rule);
                    }
                    NLMSG_ERROR => check_error(body, "the rule dump")?,
                    _ => {
                        let attrs = body.get(NFGEN_HDRLEN..).unwrap_or(&[]);
                        // The dump is filtered by table and chain; the handle must be there.
                        if nlattrs(attrs)
                            .iter()
                            .any(|(k, _, _)| *k == NFTA_RULE_HANDLE)
                        {
                            rules.push(attrs.to_vec());
                        }
                    }
                }
            }
        }
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), NftError> {
        sys::call(Op::Send {
            fd: self.fd.raw(),
            buf: msg,
        })
        .map_err(sys::SysError::into_nfq)?;
        Ok(())
    }

    fn recv(&mut self, deadline: Instant, what: &'static str) -> Result<Vec<u8>, NftError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NftError::Timeout { what });
            }
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
            let _ = sys::call(Op::PollIn {
                fd: self.fd.raw(),
                timeout_ms: ms,
            });
            match sys::call(Op::RecvOne {
                fd: self.fd.raw(),
                buf: &mut self.buf,
            }) {
                Ok(SysOk::Len(n)) => {
                    return Ok(self
                        .buf
                        .get(..n.min(self.buf.len()))
                        .unwrap_or(&[])
                        .to_vec())
                }
                Ok(_) => {}
                Err(e) if e.errno == libc::EAGAIN => {}
                Err(e) => return Err(e.into_nfq().into()),
            }
        }
    }

    fn ack(&mut self, seq: u32, what: &'static str) -> Result<(), NftError> {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let data = self.recv(deadline, what)?;
            for (kind, s, body) in messages(&data) {
                if kind == NLMSG_ERROR && s == seq {
                    return check_error(body, what);
                }
            }
        }
    }
}

fn check_error(body: &[u8], what: &'static str) -> Result<(), NftError> {
    let errno = body
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, i32::from_ne_bytes);
    if errno == 0 {
        Ok(())
    } else {
        Err(NftError::Refused {
            what,
            source: std::io::Error::from_raw_os_error(-errno),
        })
    }
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// A message header and nfgenmsg (`res_id` big-endian, for batch messages).
fn message(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(256);
    m.extend_from_slice(&(NLMSG_HDRLEN as u32 + NFGEN_HDRLEN as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.push(family);
    m.push(0);
    m.extend_from_slice(&res_id.to_be_bytes());
    m
}

fn finish(m: &mut [u8]) {
    let len = u32::try_from(m.len()).unwrap_or(u32::MAX);
    if let Some(slot) = m.get_mut(..4) {
        slot.copy_from_slice(&len.to_ne_bytes());
    }
}

fn attr(m: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = u16::try_from(NLA_HDRLEN + data.len()).unwrap_or(u16::MAX);
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(data);
    while m.len() % 4 != 0 {
        m.push(0);
    }
}

fn push_raw(m: &mut Vec<u8>, raw: &[u8]) {
    m.extend_from_slice(raw);
    while m.len() % 4 != 0 {
        m.push(0);
    }
}

/// (type, seq, body after the netlink header) of each message of a datagram.
fn messages(data: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= NLMSG_HDRLEN {
        let word = |at: usize| rest.get(at..at + 4).and_then(|b| b.try_into().ok());
        let len = word(0).map_or(0, u32::from_ne_bytes) as usize;
        let kind = rest
            .get(4..6)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u16::from_ne_bytes);
        let seq = word(8).map_or(0, u32::from_ne_bytes);
        if len < NLMSG_HDRLEN || len > rest.len() {
            break;
        }
        out.push((kind, seq, rest.get(NLMSG_HDRLEN..len).unwrap_or(&[])));
        rest = rest.get((len + 3) & !3..).unwrap_or(&[]);
    }
    out
}

/// (type, payload offset, whole attribute) of each attribute of `data`.
fn nlattrs(data: &[u8]) -> Vec<(u16, usize, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(head) = data.get(at..at + NLA_HDRLEN) {
        let len = usize::from(u16::from_ne_bytes([head[0], head[1]]));
        let kind = u16::from_ne_bytes([head[2], head[3]]) & NLA_TYPE_MASK;
        let Some(raw) = data.get(at..at + len).filter(|_| len >= NLA_HDRLEN) else {
            break;
        };
        out.push((kind, at + NLA_HDRLEN, raw));
        at += (len + 3) & !3;
    }
    out
}

/// Rewrites the 4-byte value of every `cmp` expression in an `NFTA_RULE_EXPRESSIONS` attribute
/// (`expressions`, header included) to `value`; returns how many it rewrote.
fn patch_cmp(expressions: &mut [u8], value: u32) -> usize {
    let mut offsets = Vec::new();
    let body = expressions.get(NLA_HDRLEN..).unwrap_or(&[]);
    for (kind, elem_at, elem) in nlattrs(body) {
        if kind != NFTA_LIST_ELEM {
            continue;
        }
        let inner = elem.get(NLA_HDRLEN..).unwrap_or(&[]);
        let fields = nlattrs(inner);
        let is_cmp = fields.iter().any(|(k, _, raw)| {
            *k == NFTA_EXPR_NAME
                && raw
                    .get(NLA_HDRLEN..)
                    .is_some_and(|n| n.starts_with(b"cmp\0"))
        });
        let Some((_, data_at, data)) = fields.iter().find(|(k, _, _)| *k == NFTA_EXPR_DATA) else {
            continue;
        };
        if !is_cmp {
            continue;
        }
        for (k, cmp_at, cmp) in nlattrs(data.get(NLA_HDRLEN..).unwrap_or(&[])) {
            if k != NFTA_CMP_DATA {
                continue;
            }
            for (k, value_at, raw) in nlattrs(cmp.get(NLA_HDRLEN..).unwrap_or(&[])) {
                if k == NFTA_DATA_VALUE && raw.len() == NLA_HDRLEN + 4 {
                    // Relative to `expressions`: its header, then each level's payload offset.
                    offsets.push(NLA_HDRLEN + elem_at + data_at + cmp_at + value_at);
                }
            }
        }
    }
    let mut n = 0;
    for at in offsets {
        if let Some(slot) = expressions.get_mut(at..at + 4) {
            slot.copy_from_slice(&value.to_ne_bytes());
            n += 1;
        }
    }
    n
}
