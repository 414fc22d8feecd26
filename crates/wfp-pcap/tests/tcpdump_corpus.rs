//! Robustness run over tcpdump's regression captures (`../shared/data/pcaps/tcpdump/`).
//!
//! Every file is read to its end and every packet's link layer decoded; nothing may panic. Files
//! that end without error must hold exactly the packet count of `MANIFEST.tsv`, and their first
//! packet's link type must carry the manifest's libpcap name where both sides have one. Skipped,
//! with a note, when the corpus is absent. Run with `--nocapture` to see the counts.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use wfp_pcap::{CaptureReader, LinkError, NetworkProtocol};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/pcaps/tcpdump"
);

/// One `MANIFEST.tsv` row: packet count and link type name (libpcap name or number).
struct ManifestRow {
    packets: u64,
    link_type: String,
}

fn manifest(dir: &Path) -> HashMap<String, ManifestRow> {
    let Ok(text) = fs::read_to_string(dir.join("MANIFEST.tsv")) else {
        println!("note: no MANIFEST.tsv; packet counts not checked");
        return HashMap::new();
    };
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let mut cols = line.split('\t');
            let name = cols.next()?.to_string();
            let _bytes = cols.next()?;
            let packets = cols.next()?.parse().ok()?;
            let link_type = cols.next()?.to_string();
            Some((name, ManifestRow { packets, link_type }))
        })
        .collect()
}

#[derive(Default)]
struct Totals {
    files: u64,
    files_complete: u64,
    files_with_error: u64,
    packets: u64,
    ip_packets: u64,
    non_ip_packets: u64,
    link_errors: u64,
    unsupported_packets: u64,
    unsupported_types: BTreeMap<String, u64>,
    errors_by_kind: BTreeMap<String, u64>,
    tunnels: BTreeMap<String, u64>,
}

#[test]
fn every_tcpdump_capture_reads_without_panic() {
    let dir = Path::new(CORPUS);
    let Ok(entries) = fs::read_dir(dir) else {
        println!("note: {CORPUS} is absent; corpus test skipped");
        return;
    };
    let manifest = manifest(dir);
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name != "MANIFEST.tsv")
        .collect();
    names.sort();

    let mut totals = Totals::default();
    let mut count_mismatches = Vec::new();
    let mut link_type_mismatches = Vec::new();
    for name in &names {
        totals.files += 1;
        let mut reader = match CaptureReader::open(dir.join(name)) {
            Ok(reader) => reader,
            Err(e) => {
                totals.files_with_error += 1;
                *totals.errors_by_kind.entry(kind(&e)).or_default() += 1;
                println!("{name}: {e}");
                continue;
            }
        };
        let mut first_link_type = None;
        let end = loop {
            match reader.next_packet_ref() {
                Ok(Some(packet)) => {
                    totals.packets += 1;
                    first_link_type.get_or_insert(packet.link_type);
                    match packet.decode_link() {
                        Ok(l3) if l3.protocol.ip_version().is_some() => {
                            totals.ip_packets += 1;
                            count_tunnels(l3, &mut totals.tunnels);
                        }
                        Ok(l3) => {
                            totals.non_ip_packets += 1;
                            assert!(matches!(
                                l3.protocol,
                                NetworkProtocol::Llc { .. }
                                    | NetworkProtocol::OtherAddressFamily(_)
                                    | NetworkProtocol::OtherEtherType(_)
                                    | NetworkProtocol::OtherIpVersion(_)
                                    | NetworkProtocol::OtherPppProtocol(_)
                                    | NetworkProtocol::OtherMplsPayload(_)
                            ));
                        }
                        Err(LinkError::UnsupportedLinkType(t)) => {
                            totals.unsupported_packets += 1;
                            *totals.unsupported_types.entry(t.to_string()).or_default() += 1;
                        }
                        Err(_) => totals.link_errors += 1,
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        let read = reader.packets_read();
        match end {
            None => {
                totals.files_complete += 1;
                if let Some(row) = manifest.get(name) {
                    if row.packets != read {
                        count_mismatches
                            .push(format!("{name}: read {read}, manifest {}", row.packets));
                    }
                    let ours = first_link_type.and_then(|t| t.name());
                    let theirs = row.link_type.as_str();
                    if let Some(ours) = ours.filter(|_| theirs.parse::<u32>().is_err()) {
                        if ours != theirs {
                            link_type_mismatches
                                .push(format!("{name}: {ours} vs manifest {theirs}"));
                        }
                    }
                }
            }
            Some(e) => {
                totals.files_with_error += 1;
                *totals.errors_by_kind.entry(kind(&e)).or_default() += 1;
                assert_eq!(
                    e.packet_index(),
                    read,
                    "{name}: error names the next packet index"
                );
                let expected = manifest.get(name).map(|r| r.packets);
                println!("{name}: {e} (manifest: {expected:?} packets)");
            }
        }
    }

    println!(
        "files: {} read, {} complete, {} ended in an error",
        totals.files, totals.files_complete, totals.files_with_error
    );
    println!("errors by kind: {:?}", totals.errors_by_kind);
    println!(
        "packets: {} read; {} IP, {} non-IP, {} link-layer errors, {} of unsupported link types",
        totals.packets,
        totals.ip_packets,
        totals.non_ip_packets,
        totals.link_errors,
        totals.unsupported_packets
    );
    println!(
        "unsupported link types (packets): {:?}",
        totals.unsupported_types
    );
    println!("tunnels (packets, per level): {:?}", totals.tunnels);
    assert!(
        count_mismatches.is_empty(),
        "packet counts differ from MANIFEST.tsv:\n{}",
        count_mismatches.join("\n")
    );
    assert!(
        link_type_mismatches.is_empty(),
        "link types differ from MANIFEST.tsv:\n{}",
        link_type_mismatches.join("\n")
    );
    if !manifest.is_empty() {
        assert_eq!(
            totals.files,
            manifest.len() as u64,
            "files on disk vs MANIFEST.tsv rows"
        );
    }
}

/// Takes `l3`'s tunnels apart, at most `MAX_ENCAP_DEPTH` levels, counting each level by kind
/// (and each tunnel that could not be taken apart by its error).
fn count_tunnels(mut l3: wfp_pcap::L3Packet<'_>, counts: &mut BTreeMap<String, u64>) {
    for _ in 0..wfp_pcap::MAX_ENCAP_DEPTH {
        match wfp_pcap::decapsulate(&l3) {
            Ok(Some(t)) => {
                *counts.entry(t.kind.to_string()).or_default() += 1;
                l3 = t.inner;
            }
            Ok(None) => return,
            Err(e) => {
                *counts.entry(e.to_string()).or_default() += 1;
                return;
            }
        }
    }
}

/// The variant name of an error, for the summary.
fn kind(e: &wfp_pcap::CaptureError) -> String {
    let debug = format!("{e:?}");
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_string()
}
