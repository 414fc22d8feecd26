//! Stream reassembly: byte vectors, bounds, FIN/RST, and model-based property tests (random
//! segmentation, reordering, duplication and conflicting overlaps against a first-copy-wins model).

use std::borrow::Cow;

use proptest::prelude::*;

use crate::reasm::{
    Anomaly, DropReason, Dropped, ReasmConfig, Segment, StreamReassembler, StreamState,
};

fn r(isn: u32) -> StreamReassembler {
    StreamReassembler::after_syn(isn, ReasmConfig::default())
}

fn data(seq: u32, payload: &[u8]) -> Segment<'_> {
    Segment::data(seq, payload)
}

#[test]
fn in_order_data_is_borrowed() {
    let mut s = r(99);
    let out = s.push(data(100, b"hello"));
    let d = out.delivered.unwrap();
    assert_eq!(d.offset, 0);
    assert!(matches!(d.data, Cow::Borrowed(b"hello")));
    let out = s.push(data(105, b" world"));
    assert_eq!(out.delivered.unwrap().offset, 5);
    assert_eq!(s.next_offset(), 11);
    assert_eq!(s.next_seq(), 111);
}

#[test]
fn gap_fill_delivers_owned_run() {
    let mut s = r(0);
    assert!(s.push(data(5, b"EF")).delivered.is_none());
    assert!(s.push(data(9, b"IJ")).delivered.is_none());
    assert_eq!(s.buffered_segments(), 2);
    assert!(s.push(data(7, b"GH")).delivered.is_none()); // merges the two runs
    assert_eq!((s.buffered_segments(), s.buffered_bytes()), (1, 6));
    let out = s.push(data(1, b"ABCD"));
    let d = out.delivered.unwrap();
    assert_eq!((d.offset, &d.data[..]), (0, &b"ABCDEFGHIJ"[..]));
    assert!(matches!(d.data, Cow::Owned(_)));
    assert_eq!(s.buffered_bytes(), 0);
}

#[test]
fn one_segment_filling_several_holes() {
    let mut s = r(0);
    s.push(data(3, b"c"));
    s.push(data(5, b"e"));
    let out = s.push(data(1, b"abXdYf")); // X and Y conflict with c and e
    assert_eq!(out.delivered.unwrap().data.as_ref(), b"abcdef");
    assert_eq!(out.anomaly, Some(Anomaly::Overlap { offset: 2, len: 3 }));
    assert_eq!(s.counters().overlap_anomalies, 1);
}

#[test]
fn syn_with_data_and_retransmitted_syn() {
    let mut s = r(1000);
    let syn = Segment {
        seq: 1000,
        payload: b"tfo",
        syn: true,
        ..Segment::default()
    };
    assert_eq!(s.push(syn).delivered.unwrap().data.as_ref(), b"tfo");
    let again = s.push(syn);
    assert!(again.delivered.is_none() && again.anomaly.is_none());
    assert_eq!(s.counters().duplicate_bytes, 3);
}

#[test]
fn sequence_wraparound() {
    let mut s = r(u32::MAX - 2); // first byte at u32::MAX - 1
    assert_eq!(
        s.push(data(u32::MAX - 1, b"ab")).delivered.unwrap().offset,
        0
    );
    assert_eq!(s.next_seq(), 0);
    assert!(s.push(data(2, b"ef")).delivered.is_none());
    let d = s.push(data(0, b"cd")).delivered.unwrap();
    assert_eq!((d.offset, d.data.as_ref()), (2, &b"cdef"[..]));
    assert_eq!(s.offset_of(1), Some(3));
}

#[test]
fn fin_handling() {
    let mut s = r(0);
    let fin = Segment {
        seq: 4,
        payload: b"d",
        fin: true,
        ..Segment::default()
    };
    let out = s.push(fin);
    assert!(out.delivered.is_none() && !out.finished);
    assert_eq!(s.fin_offset(), Some(4));
    let out = s.push(data(1, b"abc"));
    assert_eq!(out.delivered.unwrap().data.as_ref(), b"abcd");
    assert!(out.finished);
    assert_eq!(s.state(), StreamState::Finished);
    // A FIN retransmission is fine; a FIN elsewhere and data after the FIN are anomalies.
    assert_eq!(s.push(fin).anomaly, None);
    let moved = Segment {
        seq: 6,
        fin: true,
        ..Segment::default()
    };
    assert_eq!(
        s.push(moved).anomaly,
        Some(Anomaly::FinConflict { offset: 5 })
    );
    assert_eq!(
        s.push(data(5, b"xyz")).anomaly,
        Some(Anomaly::DataAfterFin { offset: 4, len: 3 })
    );
    assert!(!s.push(data(1, b"a")).finished, "finished is reported once");
}

#[test]
fn fin_before_buffered_data_is_a_conflict() {
    let mut s = r(0);
    s.push(data(10, b"late"));
    let fin = Segment {
        seq: 5,
        fin: true,
        ..Segment::default()
    };
    assert_eq!(
        s.push(fin).anomaly,
        Some(Anomaly::FinConflict { offset: 4 })
    );
    assert_eq!(s.fin_offset(), None);
}

#[test]
fn rst_discards_and_stops() {
    let mut s = r(0);
    s.push(data(5, b"buffered"));
    let out = s.push(Segment {
        seq: 1,
        rst: true,
        ..Segment::default()
    });
    assert!(out.reset);
    assert_eq!((s.state(), s.buffered_bytes()), (StreamState::Reset, 0));
    assert_eq!(s.push(data(1, b"x")), Default::default());
    assert_eq!(s.counters().after_reset, 1);
}

#[test]
fn buffer_bounds_drop_the_newest() {
    let config = ReasmConfig {
        max_buffered_bytes: 10,
        max_buffered_segments: 2,
        ..ReasmConfig::default()
    };
    let mut s = StreamReassembler::after_syn(0, config);
    s.push(data(11, b"aaaa"));
    s.push(data(21, b"bbbb"));
    let out = s.push(data(31, b"c"));
    assert_eq!(
        out.dropped,
        Some(Dropped {
            offset: 30,
            len: 1,
            reason: DropReason::BufferFull
        })
    );
    // Adjacent to a run: no new run, but too many bytes.
    let out = s.push(data(15, b"ddd"));
    assert_eq!(
        out.dropped,
        Some(Dropped {
            offset: 14,
            len: 3,
            reason: DropReason::BufferFull
        })
    );
    // Adjacent and within the byte bound: accepted.
    assert_eq!(s.push(data(15, b"dd")).dropped, None);
    assert_eq!((s.buffered_segments(), s.buffered_bytes()), (2, 10));
    // In-order data is never refused: it is delivered, and pulls the first run along.
    let out = s.push(data(1, b"0123456789"));
    assert_eq!(out.delivered.unwrap().data.as_ref(), b"0123456789aaaadd");
    assert_eq!(s.counters().buffer_full_drops, 2);
}

#[test]
fn out_of_window_and_before_start() {
    let config = ReasmConfig {
        max_window: 1000,
        ..ReasmConfig::default()
    };
    let mut s = StreamReassembler::after_syn(0, config);
    let out = s.push(data(5000, b"far"));
    assert_eq!(out.dropped.map(|d| d.reason), Some(DropReason::OutOfWindow));
    // Bytes before the first data byte (offset < 0) are ignored.
    let out = s.push(data(u32::MAX - 1, b"xxxab"));
    assert_eq!(out.delivered.unwrap().data.as_ref(), b"ab");
    assert_eq!(s.counters().before_start_bytes, 3);
}

#[test]
fn history_window_bounds_verification() {
    let config = ReasmConfig {
        history_bytes: 4,
        ..ReasmConfig::default()
    };
    let mut s = StreamReassembler::after_syn(0, config);
    s.push(data(1, b"abcdefgh"));
    // Offsets 0..4 are out of history: not compared; 4..8 are compared.
    let out = s.push(data(1, b"XXXXefgY"));
    assert_eq!(out.anomaly, Some(Anomaly::Overlap { offset: 7, len: 1 }));
    assert_eq!(s.counters().unverified_bytes, 4);
    assert_eq!(s.counters().duplicate_bytes, 3);
}

#[test]
fn skip_gap_delivers_after_a_lost_segment() {
    let mut s = r(0);
    s.push(data(1, b"ab"));
    s.push(data(6, b"fg"));
    let fin = Segment {
        seq: 12,
        fin: true,
        ..Segment::default()
    };
    s.push(fin);
    let skip = s.skip_gap().unwrap();
    assert_eq!(skip.missed, 3);
    assert_eq!(
        skip.delivered.map(|d| (d.offset, d.data.into_owned())),
        Some((5, b"fg".to_vec()))
    );
    assert!(!skip.finished);
    let skip = s.skip_gap().unwrap();
    assert_eq!((skip.missed, skip.finished), (4, true));
    assert!(s.skip_gap().is_none());
    assert_eq!(s.counters().skipped_bytes, 7);
}

fn cut_seg(seq: u32, payload: &[u8], cut: u32) -> Segment<'_> {
    Segment {
        cut,
        ..Segment::data(seq, payload)
    }
}

#[test]
fn a_cut_segment_is_skipped_as_missed_bytes_and_the_stream_goes_on() {
    let mut s = r(0);
    // 10 bytes on the wire, 4 captured.
    let out = s.push(cut_seg(1, b"abcd", 6));
    assert_eq!(out.delivered.unwrap().data.as_ref(), b"abcd");
    assert_eq!(s.missing_bytes(), 6);
    let skip = s.skip_missing().unwrap();
    assert_eq!(
        (skip.missed, skip.delivered, skip.finished),
        (6, None, false)
    );
    assert!(s.skip_missing().is_none());
    assert_eq!(s.next_offset(), 10);
    // The next segment is in order, not behind a hole.
    let out = s.push(data(11, b"klm"));
    let d = out.delivered.unwrap();
    assert_eq!((d.offset, d.data.as_ref()), (10, &b"klm"[..]));
    assert!(matches!(d.data, Cow::Borrowed(_)));
    let c = s.counters();
    assert_eq!((c.cut_bytes, c.skipped_bytes, c.delivered_bytes), (6, 6, 7));
    assert_eq!(s.buffered_bytes(), 0);
}

#[test]
fn a_cut_segment_closing_a_hole_delivers_what_waited_behind_its_tail() {
    let mut s = r(0);
    assert!(s.push(data(11, b"klm")).delivered.is_none());
    assert!(s.skip_missing().is_none(), "no cut span reached yet");
    let out = s.push(cut_seg(1, b"abcd", 6));
    assert_eq!(out.delivered.unwrap().data.as_ref(), b"abcd");
    let skip = s.skip_missing().unwrap();
    assert_eq!(skip.missed, 6);
    let d = skip.delivered.unwrap();
    assert_eq!((d.offset, d.data.as_ref()), (10, &b"klm"[..]));
    assert!(s.skip_missing().is_none());
    assert_eq!((s.next_offset(), s.buffered_bytes()), (13, 0));
}

#[test]
fn a_cut_span_reached_later_is_skipped_then() {
    let mut s = r(0);
    // Bytes 0..5 lost for now; a segment 5..15 of which 2 bytes were captured.
    assert!(s.push(cut_seg(6, b"fg", 8)).delivered.is_none());
    assert!(s.skip_missing().is_none());
    assert!(s.push(data(16, b"p")).delivered.is_none());
    let out = s.push(data(1, b"abcde"));
    assert_eq!(out.delivered.unwrap().data.as_ref(), b"abcdefg");
    let skip = s.skip_missing().unwrap();
    assert_eq!(skip.missed, 8);
    assert_eq!(skip.delivered.unwrap().data.as_ref(), b"p");
    assert_eq!(s.next_offset(), 16);
}

#[test]
fn bytes_that_arrive_for_a_cut_span_are_delivered_not_skipped() {
    let mut s = r(0);
    s.push(cut_seg(6, b"fg", 8)); // 5..15, 2 bytes captured
    s.push(data(6, b"fghijklmno")); // the same segment captured whole (a retransmission)
    let out = s.push(data(1, b"abcde"));
    assert_eq!(out.delivered.unwrap().data.as_ref(), b"abcdefghijklmno");
    assert!(s.skip_missing().is_none());
    assert_eq!(s.counters().cut_bytes, 0);
    // A span partly covered: only the uncovered bytes are missed.
    let mut s = r(0);
    s.push(data(8, b"hi")); // 7..9 arrived
    s.push(cut_seg(1, b"ab", 10)); // 0..12, 2 captured
    let skip = s.skip_missing().unwrap();
    assert_eq!(skip.missed, 5);
    assert_eq!(skip.delivered.unwrap().data.as_ref(), b"hi");
    let skip = s.skip_missing().unwrap();
    assert_eq!((skip.missed, skip.delivered), (3, None));
    assert_eq!(s.next_offset(), 12);
}

#[test]
fn a_fin_on_a_cut_segment_ends_the_stream_after_the_cut_bytes() {
    let mut s = r(0);
    let fin = Segment {
        fin: true,
        ..cut_seg(1, b"", 20)
    };
    let out = s.push(fin);
    assert!(out.delivered.is_none() && !out.finished && out.anomaly.is_none());
    assert_eq!(s.fin_offset(), Some(20));
    let skip = s.skip_missing().unwrap();
    assert_eq!((skip.missed, skip.finished), (20, true));
    assert_eq!(s.state(), StreamState::Finished);
    assert!(s.skip_missing().is_none());
}

#[test]
fn cut_spans_are_bounded() {
    let config = ReasmConfig {
        max_buffered_segments: 2,
        ..ReasmConfig::default()
    };
    let mut s = StreamReassembler::after_syn(0, config);
    for k in 1..=3u32 {
        s.push(cut_seg(1 + k * 100, b"x", 50));
    }
    assert_eq!(s.counters().cut_spans_dropped, 1);
    // A reset forgets them.
    s.push(Segment {
        seq: 1,
        rst: true,
        ..Segment::default()
    });
    assert!(s.skip_missing().is_none());
    assert_eq!(s.missing_bytes(), 0);
}

/// Collect delivered bytes, checking offsets are contiguous.
fn collect(out: &mut Vec<u8>, delivered: Option<crate::reasm::Delivery<'_>>) {
    if let Some(d) = delivered {
        assert_eq!(d.offset, out.len() as u64);
        out.extend_from_slice(&d.data);
    }
}

fn stream_and_plan() -> impl Strategy<Value = (u32, Vec<u8>, Vec<(usize, usize)>)> {
    // Random ISN (wraparound is exercised), random bytes, a random segmentation, shuffled, with
    // identical duplicates (retransmissions) and overlapping re-segmentations.
    (
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 1..600),
        any::<u64>(),
    )
        .prop_flat_map(|(isn, bytes, seed)| {
            let n = bytes.len();
            let cuts = proptest::collection::btree_set(1..n.max(2), 0..20);
            let extra = proptest::collection::vec((0..n, 1usize..64), 0..8);
            (Just(isn), Just(bytes), cuts, extra, Just(seed))
        })
        .prop_map(|(isn, bytes, cuts, extra, seed)| {
            let n = bytes.len();
            let mut bounds = vec![0];
            bounds.extend(cuts.into_iter().filter(|&c| c < n));
            bounds.push(n);
            let mut segs: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
            segs.extend(extra.into_iter().map(|(s, l)| (s, (s + l).min(n))));
            let mut x = seed | 1;
            for i in (1..segs.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                segs.swap(i, (x % (i as u64 + 1)) as usize);
            }
            (isn, bytes, segs)
        })
}

proptest! {
    #[test]
    fn random_segmentation_and_order_deliver_the_original(
        (isn, bytes, segs) in stream_and_plan()
    ) {
        let mut s = StreamReassembler::after_syn(isn, ReasmConfig::default());
        let mut out = Vec::new();
        for (start, end) in segs {
            let seq = isn.wrapping_add(1).wrapping_add(start as u32);
            let o = s.push(Segment::data(seq, &bytes[start..end]));
            prop_assert_eq!(o.anomaly, None);
            prop_assert_eq!(o.dropped, None);
            collect(&mut out, o.delivered);
        }
        prop_assert_eq!(out, bytes);
        prop_assert_eq!(s.buffered_bytes(), 0);
    }

    /// Every segment cut at a random point (a capture's snapshot length), in random order with
    /// retransmissions: the stream never stalls — every byte is delivered (equal to the original,
    /// at its offset, once) or skipped as missed — and in capture order exactly the captured bytes
    /// are delivered.
    #[test]
    fn cut_segments_never_stall_the_stream(
        (isn, bytes, segs) in stream_and_plan(),
        keep in proptest::collection::vec(any::<u16>(), 1..64),
        in_order in any::<bool>(),
    ) {
        let n = bytes.len();
        let mut segs = segs;
        if in_order {
            // Capture order without overlaps: sorted, each trimmed to start where the last ended.
            segs.sort_unstable();
            let mut at = 0;
            segs = segs
                .into_iter()
                .filter_map(|(start, end)| {
                    let start = start.max(at);
                    (start < end).then(|| {
                        at = end;
                        (start, end)
                    })
                })
                .collect();
        }
        let mut s = StreamReassembler::after_syn(isn, ReasmConfig::default());
        let mut seen: Vec<Option<u8>> = vec![None; n];
        let mut captured = vec![false; n];
        let mut missed = 0u64;
        let record = |d: Option<crate::reasm::Delivery<'_>>, seen: &mut Vec<Option<u8>>| {
            if let Some(d) = d {
                for (i, b) in d.data.iter().enumerate() {
                    let at = d.offset as usize + i;
                    assert!(seen[at].is_none(), "byte {at} delivered twice");
                    assert_eq!(*b, bytes[at]);
                    seen[at] = Some(*b);
                }
            }
        };
        for (k, (start, end)) in segs.iter().copied().enumerate() {
            let len = end - start;
            let kept = usize::from(keep[k % keep.len()]) % (len + 1);
            for c in &mut captured[start..start + kept] {
                *c = true;
            }
            let seq = isn.wrapping_add(1).wrapping_add(start as u32);
            let o = s.push(cut_seg(seq, &bytes[start..start + kept], (len - kept) as u32));
            prop_assert_eq!(o.anomaly, None);
            prop_assert_eq!(o.dropped, None);
            record(o.delivered, &mut seen);
            while let Some(skip) = s.skip_missing() {
                missed += skip.missed;
                record(skip.delivered, &mut seen);
            }
        }
        let delivered = seen.iter().filter(|b| b.is_some()).count() as u64;
        prop_assert_eq!(s.next_offset(), n as u64, "the stream reached its end");
        prop_assert_eq!(delivered + missed, n as u64);
        prop_assert_eq!(s.buffered_bytes(), 0);
        prop_assert_eq!(s.counters().cut_bytes, missed);
        if in_order {
            let got: Vec<bool> = seen.iter().map(Option::is_some).collect();
            prop_assert_eq!(got, captured);
        }
    }

    /// Segments with random contents at random places: the stream equals a first-copy-wins model
    /// byte for byte, and each push reports exactly the model's conflicting span.
    #[test]
    fn conflicting_overlaps_follow_first_copy_wins(
        isn in any::<u32>(),
        segs in proptest::collection::vec((0usize..200, proptest::collection::vec(0u8..3, 1..40)), 1..40),
    ) {
        let mut s = StreamReassembler::after_syn(isn, ReasmConfig::default());
        let mut model: Vec<Option<u8>> = vec![None; 240];
        let mut out = Vec::new();
        for (start, payload) in &segs {
            let mut first = None;
            let mut last = 0;
            for (i, &b) in payload.iter().enumerate() {
                let at = start + i;
                match model[at] {
                    None => model[at] = Some(b),
                    Some(old) if old != b => {
                        first.get_or_insert(at);
                        last = at;
                    }
                    Some(_) => {}
                }
            }
            let seq = isn.wrapping_add(1).wrapping_add(*start as u32);
            let o = s.push(Segment::data(seq, payload));
            let expected = first.map(|f| Anomaly::Overlap { offset: f as u64, len: (last - f + 1) as u64 });
            prop_assert_eq!(o.anomaly, expected);
            collect(&mut out, o.delivered);
        }
        let prefix: Vec<u8> = model.iter().map_while(|b| *b).collect();
        prop_assert_eq!(out, prefix);
    }
}
