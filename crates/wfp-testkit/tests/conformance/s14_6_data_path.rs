//! §14.6 vectors that need packets: T-CL-6 (ALE_CLASSIFY_REQUIRED at INBOUND_TRANSPORT), T-CL-7
//! (four fragments, nine INBOUND_IPPACKET classifications) and T-CL-8 (a forwarded fragment at
//! IPFORWARD), through `wfp_shim::Shim` over the harness's engine.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, LayerData, Metadata};
use wfp_core::constants::{ConditionFlags, MetadataFields};
use wfp_core::{Callout, RtFilter};
use wfp_shim::wire::build::ip_packet;
use wfp_shim::{PacketContext, PacketDirection, Reason, Shim, ShimConfig, Timestamp};
use wfp_testkit::prelude::*;
use wfp_testkit::CalloutImpl;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20));

/// One classify as a callout saw it.
#[derive(Clone, Debug)]
struct Seen {
    layer: LayerId,
    flags: u32,
    meta: MetadataFields,
}

/// Records every classify and answers `action` (with the write right).
struct Recorder {
    seen: Mutex<Vec<Seen>>,
    action: ActionType,
}

impl Callout for Recorder {
    fn classify(
        &self,
        _: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        _: &mut LayerData<'_>,
        _: &RtFilter,
        _: u64,
        out: &mut ClassifyOut,
    ) {
        self.seen.lock().unwrap().push(Seen {
            layer: values.layer,
            flags: values.by_name("FLAGS").as_u64().unwrap_or(0) as u32,
            meta: meta.present,
        });
        if out.can_write() {
            out.action_type = self.action;
        }
    }
}

fn recorder(action: ActionType) -> Arc<Recorder> {
    Arc::new(Recorder {
        seen: Mutex::default(),
        action,
    })
}

fn install(h: &Harness, layer: LayerId, action: ActionType, r: &Arc<Recorder>) -> FilterId {
    install_with(h, layer, action, r, |b| b)
}

fn install_with(
    h: &Harness,
    layer: LayerId,
    action: ActionType,
    r: &Arc<Recorder>,
    adjust: impl FnOnce(FilterBuilder) -> FilterBuilder,
) -> FilterId {
    let sl = h.sublayer("dp", 1);
    let imp = CalloutImpl::Custom {
        callout: r.clone(),
        flags: CalloutFlags::default(),
        flow_delete: false,
    };
    h.callout_filter_with(layer, sl, 1, action, imp, adjust).0
}

fn udp(src: IpAddr, dst: IpAddr, payload: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    let mut t = vec![0, 53, 0x9c, 0x40];
    t.extend_from_slice(&len.to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(payload);
    ip_packet(src, dst, 17, &t).expect("ipv4")
}

/// `whole` (an IPv4 packet with a 20-byte header) cut into fragments at the payload offsets
/// `cuts` (multiples of 8), identification `id`.
fn fragments(whole: &[u8], cuts: &[usize], id: u16) -> Vec<Vec<u8>> {
    let (hdr, payload) = whole.split_at(20);
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(payload.len());
    bounds
        .windows(2)
        .map(|w| {
            let (from, to) = (w[0], w[1]);
            let mut f = hdr.to_vec();
            f.extend_from_slice(&payload[from..to]);
            let total = f.len() as u16;
            f[2..4].copy_from_slice(&total.to_be_bytes());
            f[4..6].copy_from_slice(&id.to_be_bytes());
            let more = if to < payload.len() { 0x2000 } else { 0 };
            f[6..8].copy_from_slice(&(more | (from / 8) as u16).to_be_bytes());
            f[10..12].copy_from_slice(&[0, 0]);
            let mut acc: u32 = f[..20]
                .chunks(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .sum();
            while acc > 0xffff {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            f[10..12].copy_from_slice(&(!(acc as u16)).to_be_bytes());
            f
        })
        .collect()
}

struct Path {
    shim: Shim,
    now: Timestamp,
}

impl Path {
    fn new(h: &Harness) -> Self {
        Self::with(h, ShimConfig::default())
    }
    fn with(h: &Harness, config: ShimConfig) -> Self {
        Self {
            shim: Shim::new(h.engine().clone(), config),
            now: Timestamp::from_secs(10),
        }
    }
    fn packet(&mut self, dir: PacketDirection, bytes: &[u8]) -> wfp_shim::PacketVerdict {
        self.now = self.now + Duration::from_millis(1);
        self.shim
            .handle_packet(self.now, dir, bytes, &PacketContext::default())
    }
}

/// §14.6 T-CL-6 (§8.2): the first inbound packet of a new flow reaches INBOUND_TRANSPORT with
/// FWPS_METADATA_FIELD_ALE_CLASSIFY_REQUIRED (0x00400000) in currentMetadataValues; the callout
/// permits; ALE_AUTH_RECV_ACCEPT then classifies it. A later packet of the authorized flow has no
/// such bit and skips ALE.
#[test]
fn t_cl_6_ale_classify_required_at_inbound_transport() {
    assert_eq!(MetadataFields::ALE_CLASSIFY_REQUIRED.0, 0x0040_0000);
    let h = Harness::new();
    let transport = recorder(ActionType::PERMIT);
    let accept = recorder(ActionType::PERMIT);
    install(
        &h,
        layers::INBOUND_TRANSPORT_V4,
        ActionType::CALLOUT_TERMINATING,
        &transport,
    );
    install(
        &h,
        layers::ALE_AUTH_RECV_ACCEPT_V4,
        ActionType::CALLOUT_TERMINATING,
        &accept,
    );
    let mut p = Path::new(&h);
    let pkt = udp(CLIENT, SERVER, b"hello");
    assert_eq!(
        p.packet(PacketDirection::Inbound, &pkt).verdict,
        wfp_shim::Verdict::Permit
    );
    assert_eq!(
        p.packet(PacketDirection::Inbound, &pkt).verdict,
        wfp_shim::Verdict::Permit
    );
    let t = transport.seen.lock().unwrap().clone();
    assert_eq!(t.len(), 2);
    assert!(
        t[0].meta.contains(MetadataFields::ALE_CLASSIFY_REQUIRED),
        "{t:?}"
    );
    assert!(
        !t[1].meta.contains(MetadataFields::ALE_CLASSIFY_REQUIRED),
        "authorized by then"
    );
    let a = accept.seen.lock().unwrap().clone();
    assert_eq!(a.len(), 1, "RECV_ACCEPT classified the first packet only");
    assert_eq!(a[0].layer, layers::ALE_AUTH_RECV_ACCEPT_V4);
}

/// §14.6 T-CL-7 (§8.2): four fragments give nine INBOUND_IPPACKET classifications — four raw,
/// four with FWP_CONDITION_FLAG_IS_FRAGMENT, one reassembled; a FLAGS NONE_SET IS_FRAGMENT
/// condition leaves the four fragment indications out.
#[test]
fn t_cl_7_four_fragments_give_nine_ippacket_classifications() {
    for (with_condition, want) in [(false, 9), (true, 5)] {
        let h = Harness::new();
        let r = recorder(ActionType::CONTINUE);
        install_with(
            &h,
            layers::INBOUND_IPPACKET_V4,
            ActionType::CALLOUT_INSPECTION,
            &r,
            |b| {
                if with_condition {
                    b.condition(
                        "FLAGS",
                        MatchType::FlagsNoneSet,
                        Value::Uint32(ConditionFlags::IS_FRAGMENT.0),
                    )
                } else {
                    b
                }
            },
        );
        let mut p = Path::new(&h);
        let whole = udp(CLIENT, SERVER, &[7u8; 100]);
        let frags = fragments(&whole, &[32, 64, 96], 77);
        assert_eq!(frags.len(), 4);
        let verdicts: Vec<_> = frags
            .iter()
            .map(|f| p.packet(PacketDirection::Inbound, f))
            .collect();
        assert!(verdicts[..3]
            .iter()
            .all(|v| v.reason == Reason::FragmentHeld));
        assert_eq!(verdicts[3].verdict, wfp_shim::Verdict::Permit);
        let seen = r.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), want, "condition: {with_condition}");
        let frag_flag = ConditionFlags::IS_FRAGMENT.0;
        let fragment_indications = seen.iter().filter(|s| s.flags & frag_flag != 0).count();
        assert_eq!(fragment_indications, if with_condition { 0 } else { 4 });
        let last = seen.last().unwrap();
        assert_ne!(last.flags & ConditionFlags::IS_REASSEMBLED.0, 0, "{seen:?}");
    }
}

/// §14.6 T-CL-8 (§8.2 IPFORWARD) with fragment grouping off (the default, as Windows'
/// `groupforwardedfragments`): a forwarded fragment is indicated once at IPFORWARD, without
/// FWP_CONDITION_FLAG_IS_FRAGMENT_GROUP.
#[test]
fn t_cl_8_forwarded_fragment_indicated_once_without_grouping() {
    let h = Harness::new();
    let r = recorder(ActionType::PERMIT);
    install(
        &h,
        layers::IPFORWARD_V4,
        ActionType::CALLOUT_TERMINATING,
        &r,
    );
    let mut p = Path::new(&h);
    let whole = udp(CLIENT, SERVER, &[1u8; 64]);
    let frags = fragments(&whole, &[32], 9);
    let v = p.packet(PacketDirection::Forward, &frags[0]);
    assert_eq!(v.verdict, wfp_shim::Verdict::Permit);
    let seen = r.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].layer, layers::IPFORWARD_V4);
    assert_eq!(seen[0].flags & ConditionFlags::IS_FRAGMENT_GROUP.0, 0);
}

fn grouping() -> ShimConfig {
    ShimConfig {
        group_forwarded_fragments: true,
        ..ShimConfig::default()
    }
}

/// §14.6 T-CL-8 with fragment grouping on: each forwarded fragment is indicated at IPFORWARD as
/// a fragment (IS_FRAGMENT), and once all of its datagram's fragments were seen, inside their
/// group (FWP_CONDITION_FLAG_IS_FRAGMENT_GROUP) — so the fragment completing the group is
/// indicated twice, and the others are held (passed) meanwhile.
#[test]
fn t_cl_8_forwarded_fragment_indicated_twice_with_grouping() {
    let h = Harness::new();
    let r = recorder(ActionType::PERMIT);
    install(
        &h,
        layers::IPFORWARD_V4,
        ActionType::CALLOUT_TERMINATING,
        &r,
    );
    let mut p = Path::with(&h, grouping());
    let whole = udp(CLIENT, SERVER, &[1u8; 64]);
    let frags = fragments(&whole, &[32], 9);
    let first = p.packet(PacketDirection::Forward, &frags[0]);
    assert_eq!(
        (first.verdict, first.reason),
        (wfp_shim::Verdict::Permit, Reason::FragmentHeld)
    );
    let flags =
        |r: &Recorder| -> Vec<u32> { r.seen.lock().unwrap().iter().map(|s| s.flags).collect() };
    let (frag, group) = (
        ConditionFlags::IS_FRAGMENT.0,
        ConditionFlags::IS_FRAGMENT_GROUP.0,
    );
    assert_eq!(flags(&r), [frag], "the first fragment: once, as a fragment");
    let last = p.packet(PacketDirection::Forward, &frags[1]);
    assert_eq!(last.verdict, wfp_shim::Verdict::Permit);
    assert_eq!(
        flags(&r),
        [frag, frag, group],
        "the completing fragment: as a fragment, then inside the group"
    );
    let seen = r.seen.lock().unwrap().clone();
    assert!(seen.iter().all(|s| s.layer == layers::IPFORWARD_V4));
    // A packet that is no fragment is indicated once, grouping or not.
    let before = seen.len();
    p.packet(PacketDirection::Forward, &whole);
    assert_eq!(r.seen.lock().unwrap().len(), before + 1);
}

/// T-CL-8, grouping on: a filter on FLAGS IS_FRAGMENT_GROUP decides the group — the fragment
/// completing it is blocked (its datagram never completes downstream); the fragments alone are
/// not matched.
#[test]
fn t_cl_8_group_indication_is_matched_by_the_fragment_group_flag() {
    let h = Harness::new();
    let r = recorder(ActionType::BLOCK);
    install_with(
        &h,
        layers::IPFORWARD_V4,
        ActionType::CALLOUT_TERMINATING,
        &r,
        |b| {
            b.condition(
                "FLAGS",
                MatchType::FlagsAllSet,
                Value::Uint32(ConditionFlags::IS_FRAGMENT_GROUP.0),
            )
        },
    );
    let mut p = Path::with(&h, grouping());
    let whole = udp(CLIENT, SERVER, &[2u8; 96]);
    let frags = fragments(&whole, &[32, 64], 10);
    let verdicts: Vec<_> = frags
        .iter()
        .map(|f| p.packet(PacketDirection::Forward, f).verdict)
        .collect();
    use wfp_shim::Verdict::{Block, Permit};
    assert_eq!(verdicts, [Permit, Permit, Block]);
    let seen = r.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "only the group matched: {seen:?}");
    assert_ne!(seen[0].flags & ConditionFlags::IS_FRAGMENT_GROUP.0, 0);
}
