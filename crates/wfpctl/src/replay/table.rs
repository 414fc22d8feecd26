//! The report as text: aligned plain-text tables, rendered from the same [`ReportView`] that
//! serde writes as the `--json` object. The table shortens lists (the first [`TOP_FILTERS`]
//! filters, [`LOG_LINES`] flow-log and stream-monitor records) and leaves out zero anomalies;
//! `--json` has everything.

use std::io::{self, Write};

use super::display::{proto_name, secs, since, Head};
use super::layer_name;
use super::report::{
    Anomalies, AsyncCounts, ConnectionEntry, Count, FlowLogEntry, ReportView, SinkView, StreamEntry,
};

/// Filters listed in the text table.
const TOP_FILTERS: usize = 10;
/// Flow-log and stream-monitor records listed in the text table (`--json` lists all).
const LOG_LINES: usize = 20;

/// Writes the whole summary.
pub(crate) fn write(r: &ReportView<'_>, out: &mut dyn Write) -> io::Result<()> {
    write_header(r, out)?;
    write_verdicts(r, out)?;
    write_encapsulations(r, out)?;
    write_layers(r, out)?;
    write_flows(r, out)?;
    write_filters(r, out)?;
    write_anomalies(r.anomalies, out)?;
    write_async(r.asynchronous, out)?;
    write_flow_log(r, out)?;
    write_stream_monitor(&r.stream_monitor, out)?;
    write_connection_monitor(r, out)?;
    write_outputs(r, out)?;
    if let Some(t) = r.trace {
        writeln!(out)?;
        t.write_text(out)?;
    }
    if let Some(e) = &r.error {
        writeln!(out)?;
        writeln!(
            out,
            "INCOMPLETE: reading stopped at byte {} after {} packets: {}",
            e.offset, e.packet_index, e.message
        )?;
    }
    Ok(())
}

/// The capture and policy lines.
fn write_header(r: &ReportView<'_>, out: &mut dyn Write) -> io::Result<()> {
    let c = &r.capture;
    let link_types = c
        .link_types
        .iter()
        .map(|(t, n)| format!("{t}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    writeln!(
        out,
        "capture  {} ({}; {link_types}): {} packets, {} bytes, {} s",
        c.path
            .map_or_else(|| "-".into(), |p| p.display().to_string()),
        c.format.map_or_else(|| "?".into(), |f| f.to_string()),
        c.packets,
        c.bytes,
        secs(c.duration_s),
    )?;
    if let Some(p) = r.policy.path {
        writeln!(
            out,
            "policy   {}: {} filters",
            p.display(),
            r.policy.filters
        )?;
    }
    writeln!(out)
}

/// Final verdicts, then the skip reasons.
fn write_verdicts(r: &ReportView<'_>, out: &mut dyn Write) -> io::Result<()> {
    let v = r.verdicts;
    let mut rows = vec![vec!["verdict".into(), "packets".into(), "bytes".into()]];
    for (name, c) in [
        ("permitted", v.permitted),
        ("blocked", v.blocked),
        ("absorbed", v.absorbed),
        ("skipped", v.skipped),
    ] {
        rows.push(vec![
            name.into(),
            c.packets.to_string(),
            c.bytes.to_string(),
        ]);
    }
    table(out, &rows, &[false, true, true], "")?;
    for (reason, c) in r.skipped {
        writeln!(out, "  skipped: {reason}: {} packets", c.packets)?;
    }
    writeln!(out)
}

/// Encapsulations decoded and not decoded, with their frames (nothing when there were none).
fn write_encapsulations(r: &ReportView<'_>, out: &mut dyn Write) -> io::Result<()> {
    let e = r.encapsulations;
    if e.decoded.is_empty() && e.unsupported.is_empty() {
        return Ok(());
    }
    let mut rows = vec![vec![
        "encapsulation".into(),
        "packets".into(),
        "bytes".into(),
    ]];
    let decoded = e.decoded.iter().map(|(n, c)| (n.clone(), c));
    let unsupported = e
        .unsupported
        .iter()
        .map(|(n, c)| (format!("{n} (not decoded)"), c));
    for (name, c) in decoded.chain(unsupported) {
        rows.push(vec![name, c.packets.to_string(), c.bytes.to_string()]);
    }
    table(out, &rows, &[false, true, true], "")?;
    writeln!(out)
}

/// Packets and bytes per layer and decision (nothing when no layer classified).
fn write_layers(r: &ReportView<'_>, out: &mut dyn Write) -> io::Result<()> {
    if r.layers.is_empty() {
        return Ok(());
    }
    let decisions = ["permitted", "blocked", "absorbed", "no match"];
    let mut names = vec!["layer".to_string()];
    let mut units = vec![String::new()];
    for d in decisions {
        names.extend([d.to_string(), String::new()]);
        units.extend(["pkts".to_string(), "bytes".to_string()]);
    }
    let mut rows = vec![names, units];
    for l in r.layers {
        let mut row = vec![layer_name(l.layer).to_string()];
        for c in [l.permitted, l.blocked, l.absorbed, l.no_match] {
            row.extend(count_cells(c));
        }
        rows.push(row);
    }
    let right = [false, true, true, true, true, true, true, true, true];
    table(out, &rows, &right, "")?;
    writeln!(out)
}

fn count_cells(c: Count) -> [String; 2] {
    [c.packets.to_string(), c.bytes.to_string()]
}

/// How flows ended.
fn write_flows(r: &ReportView<'_>, out: &mut dyn Write) -> io::Result<()> {
    let f = r.flows;
    let e = &f.ended;
    writeln!(
        out,
        "flows    {} (ended: {} FIN, {} RST, {} idle timeout, {} evicted, {} by a block, {} open at \
         capture end); flowDeleteFn ran for {} flow contexts",
        f.total,
        e.fin,
        e.rst,
        e.idle_timeout,
        e.evicted,
        e.blocked,
        e.capture_end,
        f.contexts_deleted
    )?;
    writeln!(out)
}

/// The first [`TOP_FILTERS`] deciding filters.
fn write_filters(r: &ReportView<'_>, out: &mut dyn Write) -> io::Result<()> {
    if r.filters.is_empty() {
        return Ok(());
    }
    writeln!(out, "top deciding filters")?;
    let mut rows = vec![[
        "id", "name", "layer", "action", "permits", "blocks", "final",
    ]
    .map(String::from)
    .to_vec()];
    for f in r.filters.iter().take(TOP_FILTERS) {
        rows.push(vec![
            f.id.0.to_string(),
            f.name.clone(),
            layer_name(f.layer).into(),
            f.action.name(),
            f.permits.to_string(),
            if f.vetoes > 0 {
                format!("{} ({} vetoes)", f.blocks, f.vetoes)
            } else {
                f.blocks.to_string()
            },
            f.final_packets.to_string(),
        ]);
    }
    table(
        out,
        &rows,
        &[true, false, false, false, true, true, true],
        "  ",
    )?;
    write_more(out, r.filters.len(), TOP_FILTERS)?;
    writeln!(out)
}

/// `  ... N more (--json lists all)` when `len` items were cut to `shown`.
fn write_more(out: &mut dyn Write, len: usize, shown: usize) -> io::Result<()> {
    if len > shown {
        writeln!(out, "  ... {} more (--json lists all)", len - shown)?;
    }
    Ok(())
}

/// The anomalies that happened, with their examples.
fn write_anomalies(a: &Anomalies, out: &mut dyn Write) -> io::Result<()> {
    let rows: [(&str, u64); 15] = [
        ("malformed IP packets (blocked)", a.malformed),
        ("link-layer headers unusable (skipped)", a.link_errors),
        ("stream overlaps with different bytes", a.stream_overlaps),
        ("fragments dropped", a.fragments_dropped),
        ("packets not tracked by the flow table", a.untracked),
        (
            "connections dropped by stream callouts",
            a.connections_dropped,
        ),
        ("stream bytes blocked", a.stream_bytes_blocked),
        ("callout vetoes", a.vetoes),
        ("callout panics (contained)", a.callout_panics),
        ("flow reauthorizations", a.reauthorizations),
        ("frames cut by the snapshot length", a.snaplen_truncated),
        (
            "  of them classified from their headers",
            a.truncated_classified,
        ),
        (
            "stream bytes cut by the snapshot length (missed)",
            a.stream_bytes_missed,
        ),
        (
            "IPv4 header checksum mismatches",
            a.ipv4_checksum_mismatches,
        ),
        ("timestamps going backwards", a.timestamps_backwards),
    ];
    let nonzero: Vec<Vec<String>> = rows
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| vec![(*k).to_string(), n.to_string()])
        .collect();
    if nonzero.is_empty() {
        writeln!(out, "anomalies: none")?;
    } else {
        writeln!(out, "anomalies")?;
        table(out, &nonzero, &[false, true], "  ")?;
        for e in &a.malformed_examples {
            writeln!(out, "    malformed: packet {}: {}", e.packet, e.error)?;
        }
        for e in &a.link_error_examples {
            writeln!(out, "    link layer: packet {}: {}", e.packet, e.error)?;
        }
    }
    writeln!(out)
}

/// What callouts did asynchronously (nothing when they did nothing): every counter, zeros
/// included, so held = released + dropped can be read off the table.
fn write_async(a: &AsyncCounts, out: &mut dyn Write) -> io::Result<()> {
    if !a.any() {
        return Ok(());
    }
    let mut rows: Vec<Vec<String>> = [
        ("operations pended", a.pended),
        ("  completed", a.pend_completed),
        ("  dropped at the pend deadline", a.pend_expired),
        ("late completions (ignored)", a.late_completions),
        ("packets held while pended", a.held),
        ("  released", a.held_released),
        ("  dropped", a.held_dropped),
        ("injections delivered", a.injected_delivered),
        ("injections dropped", a.injected_dropped),
        ("packets edited", a.edited),
        ("connections redirected", a.redirected),
        ("redirect classifies pended", a.redirects_pended),
    ]
    .iter()
    .map(|(k, n)| vec![(*k).to_string(), n.to_string()])
    .collect();
    rows.extend(
        a.injected
            .iter()
            .map(|(kind, n)| vec![format!("injected packets out: {kind}"), n.to_string()]),
    );
    writeln!(out, "asynchronous work")?;
    table(out, &rows, &[false, true], "  ")?;
    writeln!(out)
}

/// The first [`LOG_LINES`] `wfp.flow-logger` records (nothing when there are none).
fn write_flow_log(r: &ReportView<'_>, out: &mut dyn Write) -> io::Result<()> {
    let log = &r.flow_log;
    if log.is_empty() {
        return Ok(());
    }
    writeln!(out, "flow log (wfp.flow-logger): {} flows", log.len())?;
    let rows: Vec<Vec<String>> = log
        .iter()
        .take(LOG_LINES)
        .map(|e| flow_log_row(e, r.capture.first_time))
        .collect();
    table(
        out,
        &rows,
        &[false, true, false, false, false, true, false],
        "  ",
    )?;
    write_more(out, log.len(), LOG_LINES)?;
    writeln!(out)
}

fn flow_log_row(e: &FlowLogEntry, first_time: Option<u64>) -> Vec<String> {
    vec![
        proto_name(e.protocol),
        e.local.to_string(),
        "<->".into(),
        e.remote.to_string(),
        format!("start {} s", secs(since(first_time, e.start))),
        format!("{} s", secs(e.duration_s)),
        if e.bytes_counted {
            format!("out {} B in {} B", e.outbound_bytes, e.inbound_bytes)
        } else {
            String::new()
        },
    ]
}

/// The first [`LOG_LINES`] `wfp.stream-monitor` reports (nothing when there are none).
fn write_stream_monitor(reports: &[StreamEntry<'_>], out: &mut dyn Write) -> io::Result<()> {
    if reports.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "stream monitor (wfp.stream-monitor): {} connections",
        reports.len()
    )?;
    for r in reports.iter().take(LOG_LINES) {
        writeln!(
            out,
            "  {} {} <-> {}: out {} B \"{}\", in {} B \"{}\"",
            proto_name(r.protocol),
            r.local,
            r.remote,
            r.outbound_bytes,
            r.outbound_head.printable(Head::TABLE),
            r.inbound_bytes,
            r.inbound_head.printable(Head::TABLE),
        )?;
    }
    write_more(out, reports.len(), LOG_LINES)?;
    writeln!(out)
}

/// The first [`LOG_LINES`] `wfp.connection-monitor` connections: process path, user, bytes each
/// way (nothing when there are none).
fn write_connection_monitor(r: &ReportView<'_>, out: &mut dyn Write) -> io::Result<()> {
    let list = &r.connection_monitor;
    if list.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "connection monitor (wfp.connection-monitor): {} connections",
        list.len()
    )?;
    let mut rows = vec![[
        "proto", "local", "", "remote", "dir", "process", "user", "out B", "in B",
    ]
    .map(String::from)
    .to_vec()];
    rows.extend(list.iter().take(LOG_LINES).map(connection_row));
    table(
        out,
        &rows,
        &[false, true, false, false, false, false, true, true, true],
        "  ",
    )?;
    write_more(out, list.len(), LOG_LINES)?;
    writeln!(out)
}

fn connection_row(c: &ConnectionEntry) -> Vec<String> {
    let process = match (&c.process_path, c.process_id) {
        (Some(p), Some(id)) => format!("{p} ({id})"),
        (Some(p), None) => p.clone(),
        (None, Some(id)) => format!("pid {id}"),
        (None, None) => "-".into(),
    };
    vec![
        proto_name(c.protocol),
        c.local.to_string(),
        "<->".into(),
        c.remote.to_string(),
        c.direction.as_deref().unwrap_or("-").to_lowercase(),
        process,
        c.user.map_or_else(|| "-".into(), |u| u.to_string()),
        c.outbound_bytes.to_string(),
        c.inbound_bytes.to_string(),
    ]
}

/// The files written: `--permitted`, `--blocked`, `--verdicts`.
fn write_outputs(r: &ReportView<'_>, out: &mut dyn Write) -> io::Result<()> {
    let o = &r.outputs;
    for (kind, s) in [("permitted", &o.permitted), ("blocked", &o.blocked)] {
        if let Some(s) = s {
            write_sink(kind, s, out)?;
        }
    }
    if let Some(v) = &o.verdicts {
        writeln!(
            out,
            "verdicts  {} lines written to {}",
            v.lines,
            v.path.display()
        )?;
    }
    Ok(())
}

fn write_sink(kind: &str, s: &SinkView<'_>, out: &mut dyn Write) -> io::Result<()> {
    let types = s
        .link_types
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    write!(
        out,
        "{kind:<9} {} packets written to {} ({}: {types})",
        s.written,
        s.path.display(),
        s.format,
    )?;
    if s.reencapsulated > 0 {
        write!(out, "; {} re-encapsulated", s.reencapsulated)?;
    }
    if s.unwritable > 0 {
        write!(out, "; {} could not be written", s.unwritable)?;
    }
    writeln!(out)
}

/// Writes rows as left/right aligned columns (`right[i]` aligns column `i` to the right).
fn table(
    out: &mut dyn Write,
    rows: &[Vec<String>],
    right: &[bool],
    indent: &str,
) -> io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::from(indent);
        for (c, cell) in row.iter().enumerate() {
            let w = widths.get(c).copied().unwrap_or(0);
            if c > 0 {
                line.push_str("  ");
            }
            if right.get(c).copied().unwrap_or(false) {
                line.push_str(&format!("{cell:>w$}"));
            } else if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}"));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(rows: &[&[&str]], right: &[bool], indent: &str) -> String {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| r.iter().map(|c| (*c).to_string()).collect())
            .collect();
        let mut out = Vec::new();
        table(&mut out, &rows, right, indent).expect("in memory");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn columns_align_and_lines_lose_trailing_spaces() {
        let text = render(
            &[
                &["verdict", "packets"],
                &["permitted", "7"],
                &["x", "12345"],
            ],
            &[false, true],
            "  ",
        );
        assert_eq!(
            text,
            "  verdict    packets\n  permitted        7\n  x            12345\n"
        );
        // The last left-aligned column is not padded.
        let text = render(&[&["a", "b"], &["long", "c"]], &[], "");
        assert_eq!(text, "a     b\nlong  c\n");
    }

    #[test]
    fn cut_lists_say_how_many_more() {
        let mut out = Vec::new();
        write_more(&mut out, 25, LOG_LINES).expect("in memory");
        write_more(&mut out, 20, LOG_LINES).expect("in memory");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "  ... 5 more (--json lists all)\n"
        );
    }

    #[test]
    fn the_async_section_shows_only_when_callouts_did_something() {
        let mut out = Vec::new();
        write_async(&AsyncCounts::default(), &mut out).expect("in memory");
        assert!(out.is_empty());
        let mut a = AsyncCounts {
            pended: 1,
            pend_expired: 1,
            held: 2,
            held_dropped: 2,
            ..AsyncCounts::default()
        };
        a.injected.insert("network-send", 3);
        write_async(&a, &mut out).expect("in memory");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("asynchronous work\n"), "{text}");
        assert!(
            text.contains("    dropped at the pend deadline      1\n"),
            "{text}"
        );
        assert!(
            text.contains("injected packets out: network-send  3\n"),
            "{text}"
        );
    }
}
