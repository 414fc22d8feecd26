//! The per-flow TCP state machine of an observer that sees both directions.

use super::{EndReason, Side, TcpMeta, TcpState};

const SYN_SEEN: u16 = 0x001; // << side
const SYN_ACKED: u16 = 0x004; // << side: that side's SYN was acknowledged
const FIN_SEEN: u16 = 0x010; // << side
const FIN_ACKED: u16 = 0x040; // << side: that side's FIN was acknowledged
const ESTABLISHED: u16 = 0x100;
const RESET: u16 = 0x200;
/// A one-sided flow may be established by its initiator's ACK (`Midstream::Pickup`).
const ONE_SIDED: u16 = 0x400;
/// << side: a stream callout blocked that side's FIN (§9.2): the peer never got it, so an
/// acknowledgement of it does not close the side ([`TcpTrack::withhold_fin`]).
const FIN_WITHHELD: u16 = 0x800;

/// Handshake and teardown tracking, 18 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TcpTrack {
    /// Initial sequence number of each side (index: [`Side`]).
    isn: [u32; 2],
    /// Sequence number of each side's FIN; until it is seen, the end of the side's SYN data
    /// (TCP Fast Open: the SYN's acknowledgment may cover it).
    fin_seq: [u32; 2],
    bits: u16,
}

/// What one segment did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TcpStep {
    pub(crate) state: TcpState,
    pub(crate) established: bool,
    pub(crate) ended: Option<EndReason>,
}

impl TcpTrack {
    /// Tracking for a flow first seen mid-connection: established from the start.
    pub(crate) fn picked_up() -> Self {
        Self {
            bits: ESTABLISHED,
            ..Self::default()
        }
    }

    /// Tracking for a flow opened by a bare SYN; `one_sided`: the initiator's first ACK without
    /// SYN establishes it even if the responder's SYN was never seen.
    pub(crate) fn opened(one_sided: bool) -> Self {
        Self {
            bits: if one_sided { ONE_SIDED } else { 0 },
            ..Self::default()
        }
    }

    /// Apply one segment sent by `side`.
    pub(crate) fn on_segment(&mut self, side: Side, seg: &TcpMeta) -> TcpStep {
        let before = self.state();
        let was_live = !matches!(before, TcpState::Closed | TcpState::TimeWait);
        let was_established = self.has(ESTABLISHED);
        let s = side.index();
        let o = side.other().index();
        if seg.flags.rst() {
            self.bits |= RESET;
        } else if was_live {
            if seg.flags.syn() && !self.has(SYN_SEEN << s) {
                self.bits |= SYN_SEEN << s;
                self.set_isn(s, seg.seq, seg.payload_len);
            } else if seg.flags.syn() && !was_established && !self.has(SYN_ACKED << s) {
                // A SYN retransmitted with a new ISN replaces the old one.
                self.set_isn(s, seg.seq, seg.payload_len);
            }
            if self.one_sided_ack(side, seg) {
                // The initiator acknowledges the responder's SYN, which this observer never saw:
                // the responder's direction is absent (asymmetric routing, a one-way capture).
                self.bits |= SYN_SEEN << o | SYN_ACKED << o | SYN_ACKED << s;
                self.set_isn(o, seg.ack.wrapping_sub(1), 0);
            }
            if seg.flags.ack() {
                // The SYN is acknowledged by ISN + 1, or up to the end of its data (Fast Open).
                let acked = seg.ack.wrapping_sub(self.isn(o).wrapping_add(1));
                let syn_data = if self.has(FIN_SEEN << o) {
                    0
                } else {
                    self.fin_seq(o).wrapping_sub(self.isn(o).wrapping_add(1))
                };
                if self.has(SYN_SEEN << o) && !self.has(SYN_ACKED << o) && acked <= syn_data {
                    self.bits |= SYN_ACKED << o;
                }
                if self.has(FIN_SEEN << o)
                    && !self.has(FIN_ACKED << o)
                    && seg.ack.wrapping_sub(self.fin_seq(o).wrapping_add(1)) as i32 >= 0
                {
                    self.bits |= FIN_ACKED << o;
                }
            }
            if seg.flags.fin() && !self.has(FIN_SEEN << s) {
                self.bits |= FIN_SEEN << s;
                let fin = seg
                    .seq
                    .wrapping_add(u32::from(seg.flags.syn()))
                    .wrapping_add(seg.payload_len);
                self.set_fin_seq(s, fin);
            }
            let both = |bit: u16| self.has(bit) && self.has(bit << 1);
            if !was_established && both(SYN_SEEN) && both(SYN_ACKED) {
                self.bits |= ESTABLISHED;
            }
        }
        let state = self.state();
        let ended = match state {
            TcpState::Closed if was_live => Some(EndReason::Rst),
            TcpState::TimeWait if was_live => Some(EndReason::Fin),
            _ => None,
        };
        TcpStep {
            state,
            established: !was_established && self.has(ESTABLISHED),
            ended,
        }
    }

    /// The state the tracked bits amount to.
    pub(crate) fn state(&self) -> TcpState {
        let both = |bit: u16| self.has(bit) && self.has(bit << 1);
        if self.has(RESET) {
            TcpState::Closed
        } else if self.fin_acked(0) && self.fin_acked(1) {
            TcpState::TimeWait
        } else if both(FIN_SEEN) {
            TcpState::LastAck
        } else if self.bits & (FIN_SEEN | FIN_SEEN << 1) != 0 {
            let acked = (0..2).any(|s| self.has(FIN_SEEN << s) && self.fin_acked(s));
            if acked {
                TcpState::CloseWait
            } else {
                TcpState::FinWait
            }
        } else if self.has(ESTABLISHED) {
            TcpState::Established
        } else if self.has(SYN_SEEN << Side::Responder.index()) {
            TcpState::SynReceived
        } else {
            TcpState::SynSent
        }
    }

    /// A stream callout blocked `side`'s FIN (`withheld`), or an injected FIN replaced it: while
    /// withheld, acknowledgements of it do not close the side. Returns [`EndReason::Fin`] when
    /// lifting it closes the connection (both FINs were acknowledged meanwhile).
    pub(crate) fn withhold_fin(&mut self, side: Side, withheld: bool) -> Option<EndReason> {
        let before = self.state();
        self.bits = (self.bits & !(FIN_WITHHELD << side.index()))
            | if withheld {
                FIN_WITHHELD << side.index()
            } else {
                0
            };
        (before != TcpState::TimeWait
            && before != TcpState::Closed
            && self.state() == TcpState::TimeWait)
            .then_some(EndReason::Fin)
    }

    /// `side`'s FIN was acknowledged and not withheld.
    fn fin_acked(&self, side: usize) -> bool {
        self.has(FIN_ACKED << side) && !self.has(FIN_WITHHELD << side)
    }

    /// A one-sided flow's initiator acknowledging a SYN never seen (see [`TcpTrack::opened`]).
    fn one_sided_ack(&self, side: Side, seg: &TcpMeta) -> bool {
        let (s, o) = (side.index(), side.other().index());
        self.has(ONE_SIDED)
            && side == Side::Initiator
            && seg.flags.ack()
            && !seg.flags.syn()
            && self.has(SYN_SEEN << s)
            && !self.has(SYN_SEEN << o)
            && !self.has(ESTABLISHED)
    }

    fn has(&self, bit: u16) -> bool {
        self.bits & bit == bit
    }

    fn isn(&self, side: usize) -> u32 {
        self.isn.get(side).copied().unwrap_or(0)
    }

    fn set_isn(&mut self, side: usize, seq: u32, payload_len: u32) {
        if let Some(v) = self.isn.get_mut(side) {
            *v = seq;
        }
        self.set_fin_seq(side, seq.wrapping_add(1).wrapping_add(payload_len));
    }

    fn fin_seq(&self, side: usize) -> u32 {
        self.fin_seq.get(side).copied().unwrap_or(0)
    }

    fn set_fin_seq(&mut self, side: usize, seq: u32) {
        if let Some(v) = self.fin_seq.get_mut(side) {
            *v = seq;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::TcpFlags;

    const I: Side = Side::Initiator;
    const R: Side = Side::Responder;

    fn seg(flags: TcpFlags, seq: u32, ack: u32, payload_len: u32) -> TcpMeta {
        TcpMeta {
            flags,
            seq,
            ack,
            payload_len,
        }
    }

    fn syn() -> TcpFlags {
        TcpFlags::SYN
    }
    fn ack() -> TcpFlags {
        TcpFlags::ACK
    }

    #[test]
    fn three_way_handshake_and_fin_close() {
        let mut t = TcpTrack::default();
        assert_eq!(
            t.on_segment(I, &seg(syn(), 100, 0, 0)).state,
            TcpState::SynSent
        );
        assert_eq!(
            t.on_segment(R, &seg(syn() | ack(), 500, 101, 0)).state,
            TcpState::SynReceived
        );
        let step = t.on_segment(I, &seg(ack(), 101, 501, 0));
        assert_eq!(
            (step.state, step.established),
            (TcpState::Established, true)
        );
        assert!(!t.on_segment(I, &seg(ack(), 101, 501, 10)).established);
        let fin = TcpFlags::FIN | ack();
        assert_eq!(
            t.on_segment(I, &seg(fin, 111, 501, 0)).state,
            TcpState::FinWait
        );
        assert_eq!(
            t.on_segment(R, &seg(ack(), 501, 112, 0)).state,
            TcpState::CloseWait
        );
        assert_eq!(
            t.on_segment(R, &seg(fin, 501, 112, 0)).state,
            TcpState::LastAck
        );
        let step = t.on_segment(I, &seg(ack(), 112, 502, 0));
        assert_eq!(
            (step.state, step.ended),
            (TcpState::TimeWait, Some(EndReason::Fin))
        );
        // A retransmitted ACK in TIME_WAIT ends nothing again.
        assert_eq!(t.on_segment(I, &seg(ack(), 112, 502, 0)).ended, None);
    }

    /// §9.2: a FIN a stream callout withheld is not closed by its acknowledgement; the
    /// connection closes when the withholding ends (an injected FIN replaced it).
    #[test]
    fn a_withheld_fin_does_not_close_until_released() {
        let mut t = TcpTrack::default();
        t.on_segment(I, &seg(syn(), 100, 0, 0));
        t.on_segment(R, &seg(syn() | ack(), 500, 101, 0));
        t.on_segment(I, &seg(ack(), 101, 501, 0));
        let fin = TcpFlags::FIN | ack();
        t.on_segment(I, &seg(fin, 101, 501, 0));
        assert_eq!(t.withhold_fin(I, true), None);
        assert_eq!(t.state(), TcpState::FinWait);
        assert_eq!(
            t.on_segment(R, &seg(fin, 501, 102, 0)).state,
            TcpState::LastAck
        );
        let step = t.on_segment(I, &seg(ack(), 102, 502, 0));
        assert_eq!((step.state, step.ended), (TcpState::LastAck, None));
        assert_eq!(t.withhold_fin(I, false), Some(EndReason::Fin));
        assert_eq!(t.state(), TcpState::TimeWait);
    }

    #[test]
    fn simultaneous_open() {
        let mut t = TcpTrack::default();
        t.on_segment(I, &seg(syn(), 1000, 0, 0));
        assert_eq!(
            t.on_segment(R, &seg(syn(), 2000, 0, 0)).state,
            TcpState::SynReceived
        );
        assert!(
            !t.on_segment(I, &seg(syn() | ack(), 1000, 2001, 0))
                .established
        );
        let step = t.on_segment(R, &seg(syn() | ack(), 2000, 1001, 0));
        assert_eq!(
            (step.state, step.established),
            (TcpState::Established, true)
        );
    }

    #[test]
    fn wrong_ack_does_not_complete_the_handshake() {
        let mut t = TcpTrack::default();
        t.on_segment(I, &seg(syn(), 7, 0, 0));
        t.on_segment(R, &seg(syn() | ack(), 9, 99, 0));
        assert_eq!(t.state(), TcpState::SynReceived);
        // The SYN-ACK did not acknowledge the SYN, so the final ACK does not establish.
        assert!(!t.on_segment(I, &seg(ack(), 8, 10, 0)).established);
        // A correct SYN-ACK retransmission completes it (the initiator already acked the SYN).
        assert!(t.on_segment(R, &seg(syn() | ack(), 9, 8, 0)).established);
    }

    #[test]
    fn rst_closes_once() {
        let mut t = TcpTrack::picked_up();
        assert_eq!(t.state(), TcpState::Established);
        let step = t.on_segment(R, &seg(TcpFlags::RST, 5, 0, 0));
        assert_eq!(
            (step.state, step.ended),
            (TcpState::Closed, Some(EndReason::Rst))
        );
        assert_eq!(t.on_segment(I, &seg(TcpFlags::RST, 5, 0, 0)).ended, None);
    }

    #[test]
    fn fin_ack_with_sequence_wraparound() {
        let mut t = TcpTrack::picked_up();
        let fin = TcpFlags::FIN | ack();
        t.on_segment(I, &seg(fin, u32::MAX - 5, 0, 5)); // FIN at u32::MAX
        assert_eq!(t.state(), TcpState::FinWait);
        t.on_segment(R, &seg(ack(), 0, 0, 0)); // acks FIN + 1 = 0 after wrap
        assert_eq!(t.state(), TcpState::CloseWait);
    }
}
