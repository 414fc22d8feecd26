//! Reader + link decoder throughput on an in-memory classic capture of small Ethernet/IPv4
//! frames, against an in-process baseline that only walks the record headers (the least any
//! reader must do). Prints packets per second and the ratio; asserts nothing.
//!
//! Run: `cargo bench -p wfp-pcap --bench read_throughput`

use std::hint::black_box;
use std::time::Instant;

use wfp_pcap::{CaptureReader, CaptureWriter, LinkType};

const PACKETS: u64 = 500_000;
const ROUNDS: usize = 5;

fn capture() -> Vec<u8> {
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 46]);
    frame.resize(64, 0);
    let mut writer = CaptureWriter::new(Vec::with_capacity(50_000_000), LinkType::ETHERNET)
        .unwrap_or_else(|e| panic!("{e}"));
    for i in 0..PACKETS {
        writer
            .write_packet(i * 1_000, 64, &frame)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    writer.finish().unwrap_or_default()
}

/// Walks record headers only: the floor for any reader of this format.
fn baseline(bytes: &[u8]) -> u64 {
    let mut at = 24usize;
    let mut count = 0;
    while let Some(len) = bytes.get(at + 8..at + 12) {
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        at += 16 + len;
        count += 1;
    }
    count
}

fn reader(bytes: &[u8]) -> u64 {
    let mut reader = CaptureReader::new(bytes).unwrap_or_else(|e| panic!("{e}"));
    let mut ip_bytes = 0u64;
    while let Ok(Some(packet)) = reader.next_packet_ref() {
        if let Ok(l3) = packet.decode_link() {
            ip_bytes += l3.network.len() as u64;
        }
    }
    black_box(ip_bytes);
    reader.packets_read()
}

fn best_mpps(f: impl Fn(&[u8]) -> u64, bytes: &[u8]) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let n = f(black_box(bytes));
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(n, PACKETS);
        best = best.min(secs);
    }
    PACKETS as f64 / best / 1e6
}

fn main() {
    let bytes = capture();
    let base = best_mpps(baseline, &bytes);
    let ours = best_mpps(reader, &bytes);
    println!("read_throughput: {PACKETS} x 64-byte Ethernet/IPv4 records, best of {ROUNDS}");
    println!("  baseline (header walk only): {base:8.1} Mpps");
    println!(
        "  CaptureReader + decode_link: {ours:8.1} Mpps  ({:.2}x of baseline)",
        ours / base
    );
}
