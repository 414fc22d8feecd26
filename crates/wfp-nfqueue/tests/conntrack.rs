//! Conntrack netlink on a real kernel: creating entries, clearing marks by filter, destroy events
//! with counters (expired entries reaped by a dump). Each test runs in its own namespace (`offload-ct-<pid>-<n>`); no packet is sent.
//! Skipped, with a printed reason, unless running as root with `ip`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use wfp_nfqueue::conntrack::{ConntrackSocket, CtTuple, MarkOutcome};
use wfp_nfqueue::TempNetns;

fn in_netns(test: &str, body: impl FnOnce() + Send) {
    if !std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        eprintln!("skipping {test}: not running as root");
        return;
    }
    let ns = TempNetns::create("offload-ct").expect("netns");
    let result = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                ns.enter().expect("enter");
                body();
            })
            .join()
    });
    drop(ns);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn tuple(src: IpAddr, dst: IpAddr, sport: u16) -> CtTuple {
    CtTuple {
        protocol: 6,
        src,
        dst,
        sport,
        dport: 80,
    }
}

#[test]
fn created_entries_end_with_destroy_events_and_marks_clear_by_filter() {
    in_netns("conntrack_roundtrip", || {
        let mut ct = ConntrackSocket::open().expect("open");
        let mut events = ConntrackSocket::subscribe_destroy().expect("subscribe");
        let v4 = (
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        );
        let v6 = (
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
        );
        // Three entries: two with offload epoch 3 (0x30_0000 under 0xf0_0000) and foreign bits,
        // one with epoch 4.
        ct.create(
            &tuple(v4.0, v4.1, 1000),
            0x1031_0001,
            Duration::from_secs(2),
        )
        .expect("create v4");
        ct.create(
            &tuple(v6.0, v6.1, 1001),
            0x0033_0000,
            Duration::from_secs(2),
        )
        .expect("create v6");
        ct.create(
            &tuple(v4.0, v4.1, 1002),
            0x0041_0000,
            Duration::from_secs(2),
        )
        .expect("create other epoch");
        let cleared = ct
            .clear_marks(0x0030_0000, 0x00f0_0000, 0x00ff_0000)
            .expect("clear");
        assert_eq!(cleared, 2, "only epoch 3's entries");
        // The entries time out (2 s): destroy events carry their tuples and (cleared) marks.
        let mut ends = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(8);
        while ends.len() < 3 && Instant::now() < deadline {
            events
                .recv_ends(Duration::from_millis(200), &mut ends)
                .expect("events");
            // The garbage collector may wait a minute; a dump reaps expired entries at once.
            let _ = ct.scan(0, 0).expect("scan");
        }
        assert_eq!(ends.len(), 3, "{ends:?}");
        let mark_of = |sport: u16| {
            ends.iter()
                .find(|e| e.tuple.sport == sport)
                .and_then(|e| e.mark)
        };
        assert_eq!(mark_of(1000), Some(0x1000_0001), "foreign bits kept");
        assert_eq!(
            mark_of(1001).unwrap_or(0),
            0,
            "cleared (a zero mark is not sent)"
        );
        assert_eq!(mark_of(1002), Some(0x0041_0000));
        let six = ends.iter().find(|e| e.tuple.sport == 1001).expect("v6");
        assert_eq!(six.tuple, tuple(v6.0, v6.1, 1001));
        assert_eq!(events.malformed(), 0);
    });
}

/// The offload rules on a real kernel: installed, switched (over nf_tables netlink, no program
/// started: one rule per hook and family in one transaction), removed.
#[test]
fn the_epoch_switch_replaces_the_epoch_rule_in_both_families() {
    use wfp_nfqueue::offload::{Epoch, OffloadMarks, OffloadRules};
    use wfp_nfqueue::rules::{Family, QueueTarget, RuleSet};
    in_netns("epoch_switch", || {
        let mut q = RuleSet::new(QueueTarget::Num(0));
        q.families = vec![Family::Ipv4, Family::Ipv6];
        let rules = OffloadRules::new(q, OffloadMarks::default());
        rules.install(Epoch(1)).expect("install");
        let show = |program: &str, chain: &str| {
            let out = std::process::Command::new(program)
                .args(["-w", "5", "-S", chain])
                .output()
                .expect("iptables");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let mut took = Vec::new();
        for e in [2, 3, 4, 5] {
            took.push(rules.switch_epoch(Epoch(e)).expect("switch"));
            for p in ["iptables", "ip6tables"] {
                for x in ["IN", "OUT"] {
                    let want = format!("-m mark --mark {:#x}/0xf00000 -g WFP_OOK_{x}", e << 20);
                    let listing = show(p, &format!("WFP_OEP_{x}"));
                    assert!(listing.contains(&want), "{p}: {listing}");
                    assert_eq!(listing.lines().filter(|l| l.starts_with("-A")).count(), 1);
                }
            }
        }
        eprintln!("epoch switches took {took:?}");
        rules.remove().expect("remove");
        assert!(show("iptables", "WFP_OEP_IN").is_empty(), "chain removed");
        assert!(show("iptables", "WFP_OFF_OUT").is_empty(), "chain removed");
    });
}

/// Issue 16 (counts while open, withdrawal of one connection): a dump filtered by mark returns
/// the open connections with their marks (counters included when accounting is on); an update by
/// tuple changes only the masked bits of that one connection, and says when there is none.
#[test]
fn open_connections_dump_by_mark_and_one_mark_changes_by_tuple() {
    in_netns("conntrack_dump_set_mark", || {
        let mut ct = ConntrackSocket::open().expect("open");
        let v4 = (
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        );
        let v6 = (
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
        );
        let a = tuple(v4.0, v4.1, 2000);
        let b = tuple(v6.0, v6.1, 2001);
        let c = tuple(v4.0, v4.1, 2002);
        let life = Duration::from_secs(30);
        ct.create(&a, 0x1031_0001, life).expect("create a");
        ct.create(&b, 0x0033_0000, life).expect("create b");
        ct.create(&c, 0x0041_0000, life).expect("create c");
        let mut epoch3 = ct.dump(0x0030_0000, 0x00f0_0000).expect("dump");
        epoch3.sort_by_key(|e| e.tuple.sport);
        let got: Vec<_> = epoch3.iter().map(|e| (e.tuple, e.mark)).collect();
        assert_eq!(
            got,
            vec![(a, Some(0x1031_0001)), (b, Some(0x0033_0000))],
            "only epoch 3's entries, v4 and v6"
        );
        // Clear the offload field of `a` only: its foreign bits stay, `b` is untouched.
        assert!(ct.set_mark(&a, 0, 0x00ff_0000).expect("update a"));
        let all = ct.dump(0, 0).expect("dump all");
        let mark_of = |t: &CtTuple| all.iter().find(|e| e.tuple == *t).and_then(|e| e.mark);
        assert_eq!(mark_of(&a), Some(0x1000_0001));
        assert_eq!(mark_of(&b), Some(0x0033_0000));
        // Set bits inside the mask only (a value outside it is ignored).
        assert!(ct.set_mark(&c, 0xff52_0000, 0x00ff_0000).expect("update c"));
        let all = ct.dump(0, 0).expect("dump all");
        let mark_of = |t: &CtTuple| all.iter().find(|e| e.tuple == *t).and_then(|e| e.mark);
        assert_eq!(mark_of(&c), Some(0x0052_0000));
        // No such connection.
        let none = tuple(v4.0, v4.1, 2999);
        assert!(!ct.set_mark(&none, 0, 0x00ff_0000).expect("update none"));
        assert_eq!(ct.malformed(), 0);
    });
}

/// Issue 16 (the worker's connection mark updates, one netlink batch per verdict batch): many
/// updates by tuple in one message batch, v4 and v6 mixed, one connection missing in between;
/// each gets its own outcome in order, and only the masked bits change.
#[test]
fn a_batch_of_mark_updates_answers_each_update_in_order() {
    in_netns("conntrack_set_marks", || {
        let mut ct = ConntrackSocket::open().expect("open");
        let v4 = (
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        );
        let v6 = (
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
        );
        let life = Duration::from_secs(30);
        let mut updates = Vec::new();
        for i in 0..40u16 {
            let (src, dst) = if i % 2 == 0 { v4 } else { v6 };
            let t = tuple(src, dst, 3000 + i);
            if i != 17 {
                ct.create(&t, 0x1000_0000 | u32::from(i), life)
                    .expect("create");
            }
            updates.push((t, 0x0021_0000 | u32::from(i)));
        }
        let outcomes = ct.set_marks(&updates, 0x00ff_0000).expect("set marks");
        let expected: Vec<MarkOutcome> = (0..40)
            .map(|i| {
                if i == 17 {
                    MarkOutcome::NoSuchConnection
                } else {
                    MarkOutcome::Set
                }
            })
            .collect();
        assert_eq!(outcomes, expected);
        let all = ct.dump(0, 0).expect("dump all");
        for (i, (t, _)) in updates.iter().enumerate() {
            let mark = all.iter().find(|e| e.tuple == *t).and_then(|e| e.mark);
            let want = (i != 17).then_some(0x1021_0000 | i as u32);
            assert_eq!(mark, want, "connection {i}");
        }
        assert!(ct.set_marks(&[], 0x00ff_0000).expect("empty").is_empty());
        assert_eq!(ct.malformed(), 0);
    });
}
