//! A fake kernel behind [`super::call`] for unit tests (no root, no sockets).
//!
//! [`FakeKernel::install`] routes every [`Op`] made on the current thread to an in-memory model:
//! descriptors are numbers from 1 000 000 up (never real ones), sent buffers are recorded,
//! configuration requests are acknowledged (with an errno chosen by the test), and datagrams or
//! errors queued by the test are returned by `RecvMany`. `Poll` never blocks: it reports the
//! socket readable if something is queued and the stop eventfd if it was signalled.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::rc::Rc;

use super::{Op, Readiness, SockOpt, SysError, SysOk, SysResult};
use crate::wire::{self, NlMsgIter};

type Handler = Box<dyn FnMut(Op<'_>) -> SysResult>;

thread_local! {
    static FAKE: RefCell<Option<Handler>> = const { RefCell::new(None) };
}

/// Called by [`super::call`]: `Ok(result)` if a fake answered, `Err(op)` to go to the kernel.
pub(crate) fn intercept(op: Op<'_>) -> Result<SysResult, Op<'_>> {
    let Some(mut handler) = FAKE.with(|cell| cell.borrow_mut().take()) else {
        return Err(op);
    };
    let result = handler(op);
    FAKE.with(|cell| *cell.borrow_mut() = Some(handler));
    Ok(result)
}

/// Something the fake socket returns on the next receive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// A datagram.
    Datagram(Vec<u8>),
    /// A receive error (e.g. `ENOBUFS`).
    Error(i32),
}

/// The fake's observable state.
pub(crate) struct State {
    next_fd: i32,
    /// Descriptors currently open.
    pub(crate) open: HashSet<i32>,
    /// Every buffer passed to `Send`, in order.
    pub(crate) sent: Vec<Vec<u8>>,
    /// What the next receives return.
    pub(crate) inbox: VecDeque<Inbound>,
    /// Eventfds that were signalled.
    pub(crate) signalled: HashSet<i32>,
    /// Socket options set, in order.
    pub(crate) sockopts: Vec<SockOpt>,
    /// Decides the errno (0 = success) of each acknowledged request, given its config
    /// attributes' flag word (`NFQA_CFG_FLAGS`, if any) and whether it is a bind.
    pub(crate) config_errno: Box<dyn FnMut(ConfigSeen) -> i32>,
    /// Errno for the next `Send` calls (each consumed once).
    pub(crate) send_errors: VecDeque<i32>,
    /// Number of `RecvMany` calls.
    pub(crate) recv_calls: usize,
    /// Number of `Poll` calls.
    pub(crate) poll_calls: usize,
}

/// What the fake saw in an acknowledged configuration request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ConfigSeen {
    /// `NFQA_CFG_CMD` command byte, if present.
    pub(crate) cmd: Option<u8>,
    /// `NFQA_CFG_FLAGS`, if present.
    pub(crate) flags: Option<u32>,
}

/// Handle to an installed fake; uninstalls it on drop.
pub(crate) struct FakeKernel {
    state: Rc<RefCell<State>>,
}

impl FakeKernel {
    /// Installs a fresh fake on the current thread.
    pub(crate) fn install() -> Self {
        let state = Rc::new(RefCell::new(State {
            next_fd: 1_000_000,
            open: HashSet::new(),
            sent: Vec::new(),
            inbox: VecDeque::new(),
            signalled: HashSet::new(),
            sockopts: Vec::new(),
            config_errno: Box::new(|_| 0),
            send_errors: VecDeque::new(),
            recv_calls: 0,
            poll_calls: 0,
        }));
        let handler_state = Rc::clone(&state);
        let handler: Handler = Box::new(move |op| handle(&mut handler_state.borrow_mut(), op));
        FAKE.with(|cell| *cell.borrow_mut() = Some(handler));
        Self { state }
    }

    /// Mutable access to the state.
    pub(crate) fn state(&self) -> std::cell::RefMut<'_, State> {
        self.state.borrow_mut()
    }

    /// Queues a datagram for the socket.
    pub(crate) fn push(&self, datagram: Vec<u8>) {
        self.state().inbox.push_back(Inbound::Datagram(datagram));
    }

    /// Every message sent so far, split into `(msg_type, payload)` pairs.
    pub(crate) fn sent_messages(&self) -> Vec<(u16, Vec<u8>)> {
        let state = self.state.borrow();
        state
            .sent
            .iter()
            .flat_map(|buf| {
                NlMsgIter::new(buf)
                    .filter_map(Result::ok)
                    .map(|m| (m.msg_type, m.payload.to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Drop for FakeKernel {
    fn drop(&mut self) {
        FAKE.with(|cell| *cell.borrow_mut() = None);
    }
}

fn err(call: &'static str, errno: i32) -> SysResult {
    Err(SysError { call, errno })
}

fn handle(state: &mut State, op: Op<'_>) -> SysResult {
    match op {
        Op::NetlinkSocket
        | Op::SockDiagSocket
        | Op::EventFd
        | Op::Dup { .. }
        | Op::RawSocket { .. } => {
            let fd = state.next_fd;
            state.next_fd += 1;
            state.open.insert(fd);
            Ok(SysOk::Fd(fd))
        }
        Op::BindNetlink { fd } => {
            if state.open.contains(&fd) {
                Ok(SysOk::Done)
            } else {
                err("bind", libc::EBADF)
            }
        }
        Op::SetSockOpt { opt, .. } => {
            state.sockopts.push(opt);
            Ok(SysOk::Done)
        }
        Op::Send { buf, .. } => {
            if let Some(errno) = state.send_errors.pop_front() {
                return err("sendto", errno);
            }
            state.sent.push(buf.to_vec());
            for msg in NlMsgIter::new(buf).filter_map(Result::ok) {
                // NLM_F_ACK: answer like the kernel does.
                if msg.flags & 0x4 != 0 {
                    let seen = config_seen(msg.payload);
                    let errno = (state.config_errno)(seen);
                    state
                        .inbox
                        .push_back(Inbound::Datagram(wire::tests::error_msg(msg.seq, errno)));
                }
            }
            Ok(SysOk::Len(buf.len()))
        }
        Op::RecvMany {
            slab,
            slot_size,
            slots,
            ..
        } => {
            state.recv_calls += 1;
            let mut filled = 0;
            for (slot, chunk) in slots.iter_mut().zip(slab.chunks_exact_mut(slot_size)) {
                match state.inbox.front() {
                    None => break,
                    Some(Inbound::Error(errno)) => {
                        if filled == 0 {
                            let errno = *errno;
                            state.inbox.pop_front();
                            return err("recvmmsg", errno);
                        }
                        break;
                    }
                    Some(Inbound::Datagram(_)) => {}
                }
                let Some(Inbound::Datagram(datagram)) = state.inbox.pop_front() else {
                    break;
                };
                let len = datagram.len().min(chunk.len());
                chunk[..len].copy_from_slice(&datagram[..len]);
                slot.len = len;
                slot.truncated = datagram.len() > chunk.len();
                filled += 1;
            }
            if filled == 0 {
                return err("recvmmsg", libc::EAGAIN);
            }
            Ok(SysOk::Len(filled))
        }
        Op::RecvOne { buf, .. } => {
            state.recv_calls += 1;
            match state.inbox.pop_front() {
                None => err("recv", libc::EAGAIN),
                Some(Inbound::Error(errno)) => err("recv", errno),
                Some(Inbound::Datagram(datagram)) => {
                    let len = datagram.len().min(buf.len());
                    buf[..len].copy_from_slice(&datagram[..len]);
                    Ok(SysOk::Len(datagram.len()))
                }
            }
        }
        Op::PollIn { .. } => {
            state.poll_calls += 1;
            Ok(SysOk::Ready(Readiness {
                socket: !state.inbox.is_empty(),
                stop: false,
            }))
        }
        Op::Poll { stop, .. } => {
            state.poll_calls += 1;
            Ok(SysOk::Ready(Readiness {
                socket: !state.inbox.is_empty(),
                stop: state.signalled.contains(&stop),
            }))
        }
        Op::SignalEventFd { fd } => {
            state.signalled.insert(fd);
            Ok(SysOk::Done)
        }
        Op::SetNetns { .. } => Ok(SysOk::Done),
        Op::SendTo { buf, .. } => {
            state.sent.push(buf.to_vec());
            Ok(SysOk::Len(buf.len()))
        }
        Op::Close { fd } => {
            if state.open.remove(&fd) {
                Ok(SysOk::Done)
            } else {
                err("close", libc::EBADF)
            }
        }
    }
}

fn config_seen(payload: &[u8]) -> ConfigSeen {
    let mut seen = ConfigSeen::default();
    for (attr, data) in wire::AttrIter::new(payload.get(4..).unwrap_or(&[])).filter_map(Result::ok)
    {
        match attr {
            wire::NFQA_CFG_CMD => seen.cmd = data.first().copied(),
            wire::NFQA_CFG_FLAGS => {
                seen.flags = data
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            }
            _ => {}
        }
    }
    seen
}
