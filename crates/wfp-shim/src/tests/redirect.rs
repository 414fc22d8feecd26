//! Connect and bind redirection on the data path (wfp-reference §10.3, §8.2 traversal order,
//! §14.8 T-PEND-5): the redirect layers are classified before AUTH_CONNECT, a changed request
//! rewrites the connection both ways, later layers see the new tuple with the original
//! destination and the redirect records, chained redirectors see each other's versions, the
//! proxy's own leg is recognised (loop prevention), and pended redirect classifies hold packets.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use wfp_core::callout::{ClassifyContext, ClassifyOut, IncomingValues, Metadata};
use wfp_core::catalogue::layers;
use wfp_core::constants::{ConditionFlags, MetadataFields};
use wfp_core::pend::ClassifyHandle;
use wfp_core::redirect::{RedirectHandle, RedirectState};
use wfp_core::{ActionType, FilterId, LayerId, Status};

use super::asyncs::full;
use super::pipeline::{handshake, tcp, ACK, FINACK, H, RST, SYN, SYNACK};
use crate::pipeline::{PacketDirection, PacketVerdict, Reason, Verdict};
use crate::testutil::{self, Tcp, TCP, V4, V6};
use crate::wire::{self, Transport};

const CONNECT_V4: LayerId = LayerId(66);
const CONNECT_V6: LayerId = LayerId(67);
const BIND_V4: LayerId = LayerId(68);

fn proxy() -> SocketAddr {
    "203.0.113.9:8080".parse().unwrap()
}

fn original() -> SocketAddr {
    SocketAddr::new(testutil::SERVER4, TCP.dport)
}

/// Source and destination of a packet's bytes.
fn ends(bytes: &[u8]) -> (SocketAddr, SocketAddr) {
    let p = wire::parse(bytes).expect("valid packet, checksums included");
    let (s, d) = match p.transport {
        Transport::Tcp(t) => (t.src_port, t.dst_port),
        Transport::Udp(u) => (u.src_port, u.dst_port),
        _ => panic!("not TCP/UDP"),
    };
    (SocketAddr::new(p.ip.src, s), SocketAddr::new(p.ip.dst, d))
}

/// What a later layer saw of the connection.
#[derive(Clone, Debug, PartialEq)]
struct Saw {
    remote: Option<u64>,
    remote_port: Option<u64>,
    local_port: Option<u64>,
    redirected_flag: bool,
    original: Option<SocketAddr>,
    state: RedirectState,
}

/// What a redirector saw at each call: the redirect state, and the remote it found (when it
/// redirected).
type Seen = Arc<Mutex<Vec<(RedirectState, Option<SocketAddr>)>>>;

/// A redirector named by `mine`: redirects connections nobody redirected to `to` (unless its
/// records say it did already), applying exactly once; answers PERMIT.
fn redirector(h: &mut H, mine: RedirectHandle, to: SocketAddr) -> Seen {
    redirector_as(h, mine, to, ActionType::CALLOUT_TERMINATING)
}

/// [`redirector`] behind a filter of action `action` (CALLOUT_INSPECTION lets the next one run).
fn redirector_as(h: &mut H, mine: RedirectHandle, to: SocketAddr, action: ActionType) -> Seen {
    let seen: Arc<Mutex<Vec<_>>> = Arc::default();
    let s = seen.clone();
    full(
        h,
        CONNECT_V4,
        action,
        Box::new(move |ctx, _values, meta, _, out| {
            let e = ctx.engine();
            let (state, _) =
                e.query_connection_redirect_state(meta.redirect_records.as_deref(), mine);
            out.action_type = ActionType::PERMIT;
            if state != RedirectState::NotRedirected {
                s.lock().unwrap().push((state, None));
                return;
            }
            let ch = ctx.acquire_classify_handle();
            let fid = ctx.filter_id();
            let mut w = e
                .acquire_writable_layer_data(ch, fid, out)
                .expect("acquire");
            s.lock().unwrap().push((state, w.remote));
            w.remote = Some(to);
            w.redirect_handle = Some(mine);
            w.redirect_context = 7;
            assert_eq!(e.apply_modified_layer_data(ch, fid, w, 0), Status::SUCCESS);
            assert_eq!(e.release_classify_handle(ch), Status::SUCCESS);
            out.action_type = ActionType::PERMIT;
        }),
    );
    seen
}

/// Records what `layer` saw (remote address/port, IS_CONNECTION_REDIRECTED, metadata).
fn watcher(h: &mut H, layer: LayerId, mine: RedirectHandle) -> Arc<Mutex<Vec<Saw>>> {
    let seen: Arc<Mutex<Vec<Saw>>> = Arc::default();
    let s = seen.clone();
    full(
        h,
        layer,
        ActionType::CALLOUT_INSPECTION,
        Box::new(
            move |ctx: &ClassifyContext<'_>,
                  values: &IncomingValues<'_>,
                  meta: &Metadata,
                  _,
                  out: &mut ClassifyOut| {
                let flags = values.by_name("FLAGS").as_u64().unwrap_or(0) as u32;
                let (state, _) = ctx
                    .engine()
                    .query_connection_redirect_state(meta.redirect_records.as_deref(), mine);
                s.lock().unwrap().push(Saw {
                    remote: values.by_name("IP_REMOTE_ADDRESS").as_u64(),
                    remote_port: values.by_name("IP_REMOTE_PORT").as_u64(),
                    local_port: values.by_name("IP_LOCAL_PORT").as_u64(),
                    redirected_flag: flags & ConditionFlags::IS_CONNECTION_REDIRECTED.0 != 0,
                    original: meta
                        .has(MetadataFields::ORIGINAL_DESTINATION)
                        .then_some(meta.original_destination)
                        .flatten(),
                    state,
                });
                out.action_type = ActionType::CONTINUE;
            },
        ),
    );
    seen
}

fn syn(h: &mut H, sport: u16) -> PacketVerdict {
    let t = Tcp {
        sport,
        ..tcp(SYN, 1000, 0)
    };
    h.packet(
        PacketDirection::Outbound,
        &testutil::tcp_packet(&V4, &t, b""),
    )
}

fn synack(h: &mut H) -> PacketVerdict {
    let back = Tcp {
        sport: TCP.dport,
        dport: TCP.sport,
        ..tcp(SYNACK, 5000, 1001)
    };
    h.packet(
        PacketDirection::Inbound,
        &testutil::tcp_packet(&V4.reply(), &back, b""),
    )
}

fn ack(h: &mut H) -> PacketVerdict {
    h.packet(
        PacketDirection::Outbound,
        &testutil::tcp_packet(&V4, &tcp(ACK, 1001, 5001), b""),
    )
}

fn out_of(action_type: ActionType) -> ClassifyOut {
    ClassifyOut {
        action_type,
        out_context: 0,
        filter_id: 0,
        rights: wfp_core::constants::Rights::ACTION_WRITE,
        flags: wfp_core::constants::ClassifyOutFlags::default(),
    }
}

fn v4(a: SocketAddr) -> u64 {
    match a.ip() {
        IpAddr::V4(v) => u64::from(u32::from(v)),
        IpAddr::V6(_) => unreachable!(),
    }
}

#[test]
fn connect_redirect_rewrites_the_connection_both_ways_and_later_layers_see_the_new_remote() {
    let mut h = H::new();
    let mine = h.engine.create_redirect_handle();
    let redirects = redirector(&mut h, mine, proxy());
    let auth = watcher(&mut h, layers::ALE_AUTH_CONNECT_V4, mine);
    let established = watcher(&mut h, layers::ALE_FLOW_ESTABLISHED_V4, mine);
    let transport = watcher(&mut h, layers::OUTBOUND_TRANSPORT_V4, mine);

    let v = syn(&mut h, TCP.sport);
    assert_eq!(v.verdict, Verdict::Permit);
    assert_eq!(
        v.visits[0].layer, CONNECT_V4,
        "CONNECT_REDIRECT comes first"
    );
    let r = v.redirected.clone().expect("redirected");
    assert!(r.first);
    assert_eq!(
        (r.connection.original_remote, r.connection.remote),
        (original(), proxy())
    );
    assert_eq!(r.connection.layer, CONNECT_V4);
    assert!(r.connection.filter.is_some_and(|f| f != FilterId(0)));
    let out = v.edited.expect("the SYN leaves rewritten");
    assert_eq!(
        ends(&out.bytes),
        (SocketAddr::new(testutil::CLIENT4, TCP.sport), proxy())
    );
    assert_eq!(
        *redirects.lock().unwrap(),
        vec![(RedirectState::NotRedirected, Some(original()))]
    );

    let back = synack(&mut h);
    assert_eq!(back.verdict, Verdict::Permit);
    assert_eq!(
        back.flow, v.flow,
        "the answer belongs to the redirected flow"
    );
    assert!(back.redirected.as_ref().is_some_and(|r| !r.first));
    let b = back
        .edited
        .expect("the answer comes back from the original destination");
    assert_eq!(
        ends(&b.bytes).0,
        proxy(),
        "the captured answer, as the proxy's"
    );
    let a = ack(&mut h);
    assert_eq!(a.verdict, Verdict::Permit);
    assert_eq!(ends(&a.edited.expect("rewritten").bytes).1, proxy());

    let want = Saw {
        remote: Some(v4(proxy())),
        remote_port: Some(u64::from(proxy().port())),
        local_port: Some(u64::from(TCP.sport)),
        redirected_flag: true,
        original: Some(original()),
        state: RedirectState::RedirectedBySelf,
    };
    assert_eq!(*auth.lock().unwrap(), vec![want.clone()]);
    assert_eq!(*established.lock().unwrap(), vec![want.clone()]);
    // The transport layer: the new remote and the metadata (no IS_CONNECTION_REDIRECTED there).
    let t = transport.lock().unwrap().clone();
    assert_eq!(t.len(), 2, "SYN and ACK");
    for saw in t {
        assert_eq!(
            saw,
            Saw {
                redirected_flag: false,
                ..want.clone()
            }
        );
    }
    assert_eq!(h.shim.stats().redirected, 1);
    assert_eq!(
        h.shim.redirected_connections(),
        1,
        "no second classify at the redirect layer"
    );
    assert_eq!(redirects.lock().unwrap().len(), 1);
}

#[test]
fn the_translation_ends_with_its_flow() {
    let mut h = H::new();
    let mine = h.engine.create_redirect_handle();
    let _ = redirector(&mut h, mine, proxy());
    let v = syn(&mut h, TCP.sport);
    assert!(v.redirected.is_some());
    let rst = h.packet(
        PacketDirection::Outbound,
        &testutil::tcp_packet(&V4, &tcp(RST, 1001, 0), b""),
    );
    assert_eq!(rst.flow, v.flow);
    assert_eq!(h.shim.redirected_connections(), 0);
}

/// The synack the test sends comes from the original destination: rewritten to come from the
/// proxy. (Named for what the shim does: the application's view stays the original.)
#[test]
fn answers_of_a_redirected_connection_are_rewritten_to_come_from_the_new_remote() {
    let mut h = H::new();
    let mine = h.engine.create_redirect_handle();
    let _ = redirector(&mut h, mine, proxy());
    let _ = syn(&mut h, TCP.sport);
    let back = synack(&mut h);
    let (src, dst) = ends(&back.edited.expect("rewritten").bytes);
    assert_eq!(src, proxy());
    assert_eq!(dst, SocketAddr::new(testutil::CLIENT4, TCP.sport));
}

#[test]
fn chained_redirectors_see_the_previous_version_and_the_proxy_leg_is_not_redirected_again() {
    let mut h = H::new();
    let first = h.engine.create_redirect_handle();
    let second = h.engine.create_redirect_handle();
    let by_first = redirector_as(&mut h, first, proxy(), ActionType::CALLOUT_INSPECTION);
    let later: SocketAddr = "203.0.113.10:3128".parse().unwrap();
    let by_second = redirector(&mut h, second, later);
    let stranger = h.engine.create_redirect_handle();
    let as_first = watcher(&mut h, layers::ALE_AUTH_CONNECT_V4, first);
    let as_stranger = watcher(&mut h, layers::ALE_AUTH_CONNECT_V4, stranger);
    let v = syn(&mut h, TCP.sport);
    assert_eq!(
        as_first.lock().unwrap()[0].state,
        RedirectState::PreviouslyRedirectedBySelf
    );
    assert_eq!(
        as_stranger.lock().unwrap()[0].state,
        RedirectState::RedirectedByOther
    );
    let c = v.redirected.expect("redirected").connection;
    assert_eq!(c.remote, later, "the last version decides");
    assert_eq!(
        c.records.chain.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
        vec![first, second]
    );
    assert_eq!(
        *by_second.lock().unwrap(),
        vec![(RedirectState::NotRedirected, Some(proxy()))],
        "the second callout saw the first one's version"
    );
    // The proxy opens its own connection to the original destination: its redirect classify
    // carries the first connection's records, so neither redirector touches it.
    let leg = syn(&mut h, 41000);
    assert!(leg.redirected.is_none());
    assert!(leg.edited.is_none());
    assert_eq!(
        by_first.lock().unwrap().last().map(|s| s.0),
        Some(RedirectState::PreviouslyRedirectedBySelf),
        "another redirector came after the first"
    );
    assert_eq!(
        by_second.lock().unwrap().last().map(|s| s.0),
        Some(RedirectState::RedirectedBySelf)
    );
}

#[test]
fn a_block_at_connect_redirect_refuses_the_connect() {
    let mut h = H::new();
    h.filter(CONNECT_V4, ActionType::BLOCK, Vec::new());
    let v = syn(&mut h, TCP.sport);
    assert_eq!((v.verdict, v.layer), (Verdict::Block, Some(CONNECT_V4)));
    assert_eq!(
        v.flow, None,
        "no flow: the connect failed before authorization"
    );
    let late = ack(&mut h);
    assert_eq!(late.reason, Reason::ConnectionRefused);
}

#[test]
fn bind_redirect_changes_the_local_endpoint_before_connect_redirect() {
    let mut h = H::new();
    let mine = h.engine.create_redirect_handle();
    let new_local: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 50123);
    let connect_saw: Arc<Mutex<Vec<u16>>> = Arc::default();
    let cs = connect_saw.clone();
    full(
        &mut h,
        BIND_V4,
        ActionType::CALLOUT_TERMINATING,
        Box::new(move |ctx, _, _, _, out| {
            let e = ctx.engine();
            let ch = ctx.acquire_classify_handle();
            let mut w = e
                .acquire_writable_layer_data(ch, ctx.filter_id(), out)
                .expect("acquire");
            w.local = new_local;
            assert_eq!(
                e.apply_modified_layer_data(ch, ctx.filter_id(), w, 0),
                Status::SUCCESS
            );
            e.release_classify_handle(ch);
            out.action_type = ActionType::PERMIT;
        }),
    );
    full(
        &mut h,
        CONNECT_V4,
        ActionType::CALLOUT_INSPECTION,
        Box::new(move |_, values, _, _, out| {
            cs.lock()
                .unwrap()
                .push(values.by_name("IP_LOCAL_PORT").as_u64().unwrap_or(0) as u16);
            out.action_type = ActionType::CONTINUE;
        }),
    );
    let auth = watcher(&mut h, layers::ALE_AUTH_CONNECT_V4, mine);
    let v = syn(&mut h, TCP.sport);
    assert_eq!(v.visits[0].layer, BIND_V4);
    assert_eq!(*connect_saw.lock().unwrap(), vec![50123]);
    let c = v.redirected.expect("redirected").connection;
    assert_eq!(
        (c.local, c.remote, c.layer),
        (new_local, original(), BIND_V4)
    );
    assert_eq!(ends(&v.edited.expect("rewritten").bytes).0, new_local);
    assert_eq!(auth.lock().unwrap()[0].local_port, Some(50123));
    let back = synack(&mut h);
    assert_eq!(ends(&back.edited.expect("rewritten").bytes).1, new_local);
}

#[test]
fn udp_connect_redirect_rewrites_the_flow() {
    let mut h = H::new();
    let mine = h.engine.create_redirect_handle();
    let dns: SocketAddr = "203.0.113.53:5353".parse().unwrap();
    let _ = redirector(&mut h, mine, dns);
    let q = h.packet(
        PacketDirection::Outbound,
        &testutil::udp_packet(&V4, 53000, 53, b"query"),
    );
    assert_eq!(ends(&q.edited.expect("rewritten").bytes).1, dns);
    let a = h.packet(
        PacketDirection::Inbound,
        &testutil::udp_packet(&V4.reply(), 53, 53000, b"answer"),
    );
    assert_eq!(a.flow, q.flow);
    assert_eq!(ends(&a.edited.expect("rewritten").bytes).0, dns);
    let again = h.packet(
        PacketDirection::Outbound,
        &testutil::udp_packet(&V4, 53000, 53, b"query 2"),
    );
    assert_eq!(again.flow, q.flow);
    assert!(again.redirected.is_some_and(|r| !r.first));
}

/// §10.2 / §10.3: a redirector pends the classify, then (from "another thread") modifies the
/// request through the handle, completes and releases it: the held SYN leaves rewritten.
#[test]
fn a_pended_connect_redirect_holds_the_connect_until_completed() {
    let mut h = H::new();
    let pended: Arc<Mutex<Option<(ClassifyHandle, FilterId)>>> = Arc::default();
    let p = pended.clone();
    full(
        &mut h,
        CONNECT_V4,
        ActionType::CALLOUT_TERMINATING,
        Box::new(move |ctx, _, _, _, out| {
            let ch = ctx.acquire_classify_handle();
            let e = ctx.engine();
            assert_eq!(e.pend_classify(ch, ctx.filter_id(), out), Status::SUCCESS);
            *p.lock().unwrap() = Some((ch, ctx.filter_id()));
        }),
    );
    let v = syn(&mut h, TCP.sport);
    assert_eq!(
        (v.verdict, v.reason.clone()),
        (Verdict::Absorb, Reason::Pended)
    );
    let again = syn(&mut h, TCP.sport);
    assert_eq!(
        again.reason,
        Reason::Pended,
        "the retransmission is held too"
    );
    let (ch, fid) = pended.lock().unwrap().take().expect("pended");
    let mut out = out_of(ActionType::CONTINUE);
    let mut w = h
        .engine
        .acquire_writable_layer_data(ch, fid, &mut out)
        .expect("acquire");
    w.remote = Some(proxy());
    assert_eq!(
        h.engine.apply_modified_layer_data(ch, fid, w, 0),
        Status::SUCCESS
    );
    assert_eq!(h.engine.complete_classify(ch, None), Status::SUCCESS);
    assert_eq!(h.engine.release_classify_handle(ch), Status::SUCCESS);
    h.shim.handle_async(h.now);
    let released: Vec<_> = std::iter::from_fn(|| h.shim.poll_output()).collect();
    assert_eq!(released.len(), 2);
    for o in &released {
        assert_eq!(o.verdict.verdict, Verdict::Permit);
        let b = o.verdict.edited.as_ref().expect("released rewritten");
        assert_eq!(ends(&b.bytes).1, proxy());
    }
    assert_eq!(h.shim.stats().redirects_pended, 1);
    assert_eq!(h.shim.stats().redirects_completed, 1);
    assert_eq!(h.engine.classify_handle_count(), 0);
}

#[test]
fn a_pended_connect_redirect_completed_with_block_refuses_the_connect() {
    let mut h = H::new();
    let pended: Arc<Mutex<Option<ClassifyHandle>>> = Arc::default();
    let p = pended.clone();
    full(
        &mut h,
        CONNECT_V4,
        ActionType::CALLOUT_TERMINATING,
        Box::new(move |ctx, _, _, _, out| {
            let ch = ctx.acquire_classify_handle();
            assert_eq!(
                ctx.engine().pend_classify(ch, ctx.filter_id(), out),
                Status::SUCCESS
            );
            *p.lock().unwrap() = Some(ch);
        }),
    );
    let _ = syn(&mut h, TCP.sport);
    let ch = pended.lock().unwrap().take().expect("pended");
    let block = out_of(ActionType::BLOCK);
    assert_eq!(h.engine.complete_classify(ch, Some(block)), Status::SUCCESS);
    h.engine.release_classify_handle(ch);
    h.shim.handle_async(h.now);
    assert!(h.shim.poll_output().is_none(), "the held SYN was dropped");
    assert_eq!(ack(&mut h).reason, Reason::ConnectionRefused);
}

#[test]
fn no_redirect_filters_no_redirect_classify() {
    let mut h = H::new();
    let v = syn(&mut h, TCP.sport);
    assert!(v.redirected.is_none());
    assert!(v
        .visits
        .iter()
        .all(|l| l.layer != CONNECT_V4 && l.layer != BIND_V4));
}

/// §14.8 T-PEND-5 on the data path: FwpsAcquireWritableLayerDataPointer0 at ALE_CONNECT_REDIRECT
/// sets BLOCK and clears the write right; a callout that applies without writing PERMIT leaves
/// that BLOCK, which fails the connect (docs/semantics.md: the layer's verdict is a verdict).
#[test]
fn t_pend_5_acquire_at_connect_redirect_sets_block_and_the_block_stands_on_the_data_path() {
    let mut h = H::new();
    let seen: Arc<Mutex<Vec<(bool, bool)>>> = Arc::default();
    let s = seen.clone();
    full(
        &mut h,
        CONNECT_V4,
        ActionType::CALLOUT_TERMINATING,
        Box::new(move |ctx, _, _, _, out| {
            let e = ctx.engine();
            let ch = ctx.acquire_classify_handle();
            let w = e
                .acquire_writable_layer_data(ch, ctx.filter_id(), out)
                .expect("acquire");
            s.lock()
                .unwrap()
                .push((out.action_type == ActionType::BLOCK, out.can_write()));
            assert_eq!(
                e.apply_modified_layer_data(ch, ctx.filter_id(), w, 0),
                Status::SUCCESS
            );
            e.release_classify_handle(ch);
        }),
    );
    let v = syn(&mut h, TCP.sport);
    assert_eq!(*seen.lock().unwrap(), vec![(true, false)]);
    assert_eq!((v.verdict, v.layer), (Verdict::Block, Some(CONNECT_V4)));
    assert!(
        v.redirected.is_none(),
        "an unchanged request redirects nothing"
    );
    assert_eq!(h.engine.classify_handle_count(), 0);
}

/// A CONNECT_REDIRECT_V6 callout sending every connection to `to`.
fn redirector_v6(h: &mut H, to: SocketAddr) {
    full(
        h,
        CONNECT_V6,
        ActionType::CALLOUT_TERMINATING,
        Box::new(move |ctx, _, _, _, out| {
            let e = ctx.engine();
            let ch = ctx.acquire_classify_handle();
            let mut w = e
                .acquire_writable_layer_data(ch, ctx.filter_id(), out)
                .expect("acquire");
            w.remote = Some(to);
            assert_eq!(
                e.apply_modified_layer_data(ch, ctx.filter_id(), w, 0),
                Status::SUCCESS
            );
            e.release_classify_handle(ch);
            out.action_type = ActionType::PERMIT;
        }),
    );
}

/// IPv6 fragments of a redirected connection are rewritten (module doc, "Fragments"): both get
/// the new destination, the first the new port and an adjusted checksum; reassembled, they are
/// the segment as sent to the new remote (checksums verified by the parser).
#[test]
fn ipv6_fragments_of_a_redirected_connection_are_rewritten() {
    let mut h = H::new();
    let to: SocketAddr = "[2001:db8:9::9]:8443".parse().unwrap();
    redirector_v6(&mut h, to);
    let v = h.packet(
        PacketDirection::Outbound,
        &testutil::tcp_packet(&V6, &tcp(SYN, 1000, 0), b""),
    );
    assert!(v.redirected.is_some());
    let whole = testutil::tcp_packet(&V6, &tcp(ACK, 1001, 5001), &[0x41; 64]);
    let frags = testutil::fragment(&whole, &[24], 99, 40);
    let out: Vec<Vec<u8>> = frags
        .iter()
        .map(|f| {
            let v = h.packet(PacketDirection::Outbound, f);
            v.edited.expect("fragment rewritten").bytes
        })
        .collect();
    let IpAddr::V6(new) = to.ip() else {
        unreachable!()
    };
    for f in &out {
        assert_eq!(&f[24..40], &new.octets(), "destination of every fragment");
        assert_eq!(f[6], 44, "the fragment header stays");
    }
    let mut reassembled = out[0][..40].to_vec();
    reassembled[6] = 6;
    let data: Vec<u8> = out.iter().flat_map(|f| f[48..].to_vec()).collect();
    reassembled[4..6].copy_from_slice(&(data.len() as u16).to_be_bytes());
    reassembled.extend_from_slice(&data);
    assert_eq!(
        ends(&reassembled),
        (SocketAddr::new(testutil::CLIENT6, TCP.sport), to)
    );
}

/// A redirected connection closed by FINs keeps its translation through TIME_WAIT (its flow's
/// tombstone): a late retransmitted FIN is still rewritten; once the tombstone expired, the
/// tuple is no longer translated.
#[test]
fn a_closed_redirected_connection_keeps_its_translation_until_time_wait_ends() {
    let mut h = H::new();
    let mine = h.engine.create_redirect_handle();
    let _ = redirector(&mut h, mine, proxy());
    handshake(&mut h, &V4);
    let back = |flags, seq, ack| Tcp {
        sport: TCP.dport,
        dport: TCP.sport,
        ..tcp(flags, seq, ack)
    };
    let fin_in = testutil::tcp_packet(&V4.reply(), &back(FINACK, 5001, 1002), b"");
    for (dir, bytes) in [
        (
            PacketDirection::Outbound,
            testutil::tcp_packet(&V4, &tcp(FINACK, 1001, 5001), b""),
        ),
        (PacketDirection::Inbound, fin_in.clone()),
        (
            PacketDirection::Outbound,
            testutil::tcp_packet(&V4, &tcp(ACK, 1002, 5002), b""),
        ),
    ] {
        assert_eq!(h.packet(dir, &bytes).verdict, Verdict::Permit);
    }
    assert_eq!(h.shim.redirected_connections(), 1, "in TIME_WAIT");
    let late = h.packet(PacketDirection::Inbound, &fin_in);
    let (src, _) = ends(&late.edited.expect("still rewritten").bytes);
    assert_eq!(src, proxy());

    // Past TIME_WAIT (2 min by default) the tombstone goes, and the translation with it.
    h.now = h.now + std::time::Duration::from_secs(600);
    h.shim.handle_timeout(h.now);
    let after = h.packet(PacketDirection::Inbound, &fin_in);
    assert!(after.edited.is_none(), "not translated any more");
    assert_eq!(h.shim.redirected_connections(), 0);
}

/// A new connect (bare SYN) on the tuple of a redirected connection in TIME_WAIT is a new
/// connection: classified at CONNECT_REDIRECT again.
#[test]
fn a_new_connect_on_a_time_wait_tuple_is_redirected_again() {
    let mut h = H::new();
    let mine = h.engine.create_redirect_handle();
    let seen = redirector(&mut h, mine, proxy());
    handshake(&mut h, &V4);
    for (dir, bytes) in [
        (
            PacketDirection::Outbound,
            testutil::tcp_packet(&V4, &tcp(FINACK, 1001, 5001), b""),
        ),
        (
            PacketDirection::Inbound,
            testutil::tcp_packet(
                &V4.reply(),
                &Tcp {
                    sport: TCP.dport,
                    dport: TCP.sport,
                    ..tcp(FINACK, 5001, 1002)
                },
                b"",
            ),
        ),
        (
            PacketDirection::Outbound,
            testutil::tcp_packet(&V4, &tcp(ACK, 1002, 5002), b""),
        ),
    ] {
        h.packet(dir, &bytes);
    }
    assert_eq!(seen.lock().unwrap().len(), 1);
    let again = syn(&mut h, TCP.sport);
    assert_eq!(seen.lock().unwrap().len(), 2, "classified again");
    assert!(again.redirected.is_some());
    assert_eq!(h.shim.redirected_connections(), 1);
}

#[test]
fn ipv6_connect_redirect_rewrites_the_connection() {
    let mut h = H::new();
    let to: SocketAddr = "[2001:db8:9::9]:8443".parse().unwrap();
    redirector_v6(&mut h, to);
    let v = h.packet(
        PacketDirection::Outbound,
        &testutil::tcp_packet(&V6, &tcp(SYN, 1000, 0), b""),
    );
    assert_eq!(v.visits[0].layer, CONNECT_V6);
    assert_eq!(ends(&v.edited.expect("rewritten").bytes).1, to);
    let back = Tcp {
        sport: TCP.dport,
        dport: TCP.sport,
        ..tcp(SYNACK, 5000, 1001)
    };
    let b = h.packet(
        PacketDirection::Inbound,
        &testutil::tcp_packet(&V6.reply(), &back, b""),
    );
    assert_eq!(b.flow, v.flow);
    assert_eq!(ends(&b.edited.expect("rewritten").bytes).0, to);
}

/// A pended redirect completed with PERMIT and no change lets the connect go on, unchanged,
/// without another redirect classify; completed with no decision (NULL classifyOut) and no
/// change, the connect is classified at the redirect layer again (reauthorized, §10.2).
#[test]
fn a_pended_redirect_completed_without_a_change_goes_on_or_is_reauthorized() {
    for decision in [Some(ActionType::PERMIT), None] {
        let mut h = H::new();
        let pended: Arc<Mutex<Vec<ClassifyHandle>>> = Arc::default();
        let p = pended.clone();
        full(
            &mut h,
            CONNECT_V4,
            ActionType::CALLOUT_TERMINATING,
            Box::new(move |ctx, _, _, _, out| {
                let mut g = p.lock().unwrap();
                if !g.is_empty() {
                    out.action_type = ActionType::PERMIT;
                    g.push(ClassifyHandle(0));
                    return;
                }
                let ch = ctx.acquire_classify_handle();
                assert_eq!(
                    ctx.engine().pend_classify(ch, ctx.filter_id(), out),
                    Status::SUCCESS
                );
                g.push(ch);
            }),
        );
        let _ = syn(&mut h, TCP.sport);
        let ch = pended.lock().unwrap()[0];
        let out = decision.map(out_of);
        assert_eq!(h.engine.complete_classify(ch, out), Status::SUCCESS);
        h.engine.release_classify_handle(ch);
        h.shim.handle_async(h.now);
        let o = h.shim.poll_output().expect("the held SYN released");
        assert_eq!(o.verdict.verdict, Verdict::Permit, "{decision:?}");
        assert!(o.verdict.redirected.is_none() && o.verdict.edited.is_none());
        let calls = pended.lock().unwrap().len();
        assert_eq!(
            calls,
            if decision.is_some() { 1 } else { 2 },
            "{decision:?}"
        );
    }
}
