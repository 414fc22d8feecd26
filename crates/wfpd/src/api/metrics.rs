//! `GET /v1/metrics` (and `[api] metrics_listen`): the Prometheus text exposition format 0.0.4
//! (`# HELP`, `# TYPE`, one sample per line) of the engine's, the API's and the data path's
//! counters. `docs/api.md` lists every metric.
//!
//! ```text
//!  engine stats, net-event counts, prompts ─┐
//!  workers (WorkerShared), kernel queues  ──┼─► render() ─► text/plain; version=0.0.4
//!  ClassifyMetrics (fed by a data path)    ─┘
//! ```

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wfp_core::catalogue;
use wfp_core::{ActionType, LayerId, NetEventKind};

use super::Shared;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the classify latency histogram's buckets (`+Inf` implied).
pub const LATENCY_BUCKETS: [f64; 10] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 5e-4, 1e-3, 1e-2,
];

const VERDICTS: [&str; 3] = ["permit", "block", "none"];

/// Classify results by layer and verdict, and the latency histogram — what a data path feeds
/// with [`ClassifyMetrics::observe`] (the engine reads no clock, so the host times classify).
pub struct ClassifyMetrics {
    by_layer: Vec<[AtomicU64; 3]>,
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Default for ClassifyMetrics {
    fn default() -> Self {
        Self {
            by_layer: catalogue::all_layers()
                .iter()
                .map(|_| Default::default())
                .collect(),
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl ClassifyMetrics {
    /// One classify at `layer` that ended in `action` and took `elapsed`.
    pub fn observe(&self, layer: LayerId, action: ActionType, elapsed: Duration) {
        let v = match action {
            ActionType::PERMIT => 0,
            ActionType::BLOCK => 1,
            _ => 2,
        };
        if let Some(c) = self
            .by_layer
            .get(usize::from(layer.0))
            .and_then(|l| l.get(v))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            if let Some(b) = self.buckets.get(i) {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

/// Builds the exposition text.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// `# HELP` and `# TYPE` of a metric.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample; label values are escaped.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{v}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

// Counters are exposed as f64, Prometheus' sample type; exact up to 2^53.
#[allow(clippy::cast_precision_loss, reason = "Prometheus samples are f64")]
fn f(v: u64) -> f64 {
    v as f64
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn classify_families(e: &mut Exposition, m: &ClassifyMetrics) {
    e.family(
        "wfp_packets_total",
        "counter",
        "Classify results of the data path by WFP layer and verdict.",
    );
    for (id, counts) in m.by_layer.iter().enumerate() {
        let name = u16::try_from(id)
            .ok()
            .and_then(|i| catalogue::layer(LayerId(i)))
            .map_or("UNKNOWN", |l| l.name);
        for (v, c) in VERDICTS.iter().zip(counts) {
            let n = load(c);
            if n > 0 {
                e.sample(
                    "wfp_packets_total",
                    &[("layer", name), ("verdict", v)],
                    f(n),
                );
            }
        }
    }
    let name = "wfp_classify_duration_seconds";
    e.family(
        name,
        "histogram",
        "Time one classify took in the data path.",
    );
    let mut cumulative = 0;
    for (bound, c) in LATENCY_BUCKETS.iter().zip(&m.buckets) {
        cumulative += load(c);
        let le = format!("{bound:e}");
        e.sample(&format!("{name}_bucket"), &[("le", &le)], f(cumulative));
    }
    let count = load(&m.count);
    e.sample(&format!("{name}_bucket"), &[("le", "+Inf")], f(count));
    #[allow(clippy::cast_precision_loss, reason = "Prometheus samples are f64")]
    let sum = load(&m.sum_ns) as f64 / 1e9;
    e.sample(&format!("{name}_sum"), &[], sum);
    e.sample(&format!("{name}_count"), &[], f(count));
}

fn engine_families(e: &mut Exposition, shared: &Shared) {
    let engine = &shared.engine;
    let stats = engine.stats();
    // From the published snapshot: a scrape never waits for a client's open transaction.
    e.single(
        "wfp_filters",
        "gauge",
        "Filters in the published policy.",
        f(engine.published_filter_count() as u64),
    );
    e.single(
        "wfp_vetoes_total",
        "counter",
        "BLOCKs that overrode a hard PERMIT.",
        f(load(&stats.vetoes)),
    );
    e.single(
        "wfp_callout_panics_total",
        "counter",
        "Callout classifyFn panics contained.",
        f(load(&stats.callout_panics)),
    );
    e.single(
        "wfp_callout_contract_violations_total",
        "counter",
        "Callout classify contract violations (CALLOUT_CONTRACT net events).",
        f(load(&stats.contract_violations)),
    );
    e.single(
        "wfp_net_events_dropped_total",
        "counter",
        "Net events lost to a full ring.",
        f(load(&stats.net_events_dropped)),
    );
    let pend = engine.pend_stats();
    e.single(
        "wfp_pended_operations",
        "gauge",
        "ALE operations pended in the engine now.",
        f(pend
            .operations_pended
            .saturating_sub(pend.operations_completed)),
    );
    e.family(
        "wfp_net_events_total",
        "counter",
        "Net events recorded, by kind.",
    );
    for (kind, c) in NetEventKind::ALL.iter().zip(&shared.events.published) {
        e.sample("wfp_net_events_total", &[("kind", kind.name())], f(load(c)));
    }
    e.single(
        "wfp_api_connections",
        "gauge",
        "Management API connections open.",
        f(shared.connections.load(Ordering::Relaxed) as u64),
    );
    e.single(
        "wfp_event_subscriber_lost_total",
        "counter",
        "Net events a slow /v1/events subscriber lost.",
        f(load(&shared.events.lost)),
    );
}

fn prompt_families(e: &mut Exposition, shared: &Shared) {
    let (waiting, s) = shared
        .attached
        .get()
        .and_then(|d| d.prompts.as_ref())
        .map(|p| (p.waiting().len(), p.stats()))
        .unwrap_or_default();
    e.single(
        "wfp_pending_authorizations",
        "gauge",
        "Pended authorizations waiting in /v1/pending.",
        f(waiting as u64),
    );
    let name = "wfp_pending_decisions_total";
    e.family(name, "counter", "Pended authorizations decided.");
    for (d, by, n) in [
        ("permit", "client", s.client_permit),
        ("block", "client", s.client_block),
        ("permit", "timeout", s.timeout_permit),
        ("block", "timeout", s.timeout_block),
    ] {
        e.sample(name, &[("decision", d), ("by", by)], f(n));
    }
}

fn datapath_families(e: &mut Exposition, shared: &Shared) {
    let workers = shared
        .attached
        .get()
        .map(|d| d.workers.as_slice())
        .unwrap_or_default();
    let flows: usize = shared
        .attached
        .get()
        .and_then(|d| d.flows.as_ref())
        .map_or(0, |s| s.flows().len());
    e.single(
        "wfp_flows",
        "gauge",
        "Flows the data path tracks.",
        f(flows as u64),
    );
    let ended = workers.iter().map(|w| load(&w.flows_ended)).sum();
    e.single(
        "wfp_flows_ended_total",
        "counter",
        "Flows the data path ended.",
        f(ended),
    );
    e.family(
        "wfp_queue_packets_total",
        "counter",
        "Packets each queue's worker decided, by verdict.",
    );
    for w in workers {
        let q = w.queue.to_string();
        for (v, c) in [("accept", &w.status.accepted), ("drop", &w.status.dropped)] {
            e.sample(
                "wfp_queue_packets_total",
                &[("queue", &q), ("verdict", v)],
                f(load(c)),
            );
        }
    }
    let kernel = if workers.is_empty() {
        Vec::new()
    } else {
        wfp_nfqueue::kernel_queue_stats().unwrap_or_default()
    };
    e.family(
        "wfp_queue_drops_total",
        "counter",
        "Packets lost before the worker saw them, by queue and reason.",
    );
    for w in workers {
        let q = w.queue.to_string();
        let k = kernel.iter().find(|k| k.queue_num == w.queue);
        let enobufs = w.status.queue_stats().enobufs;
        for (reason, n) in [
            (
                "kernel_queue_full",
                k.map_or(0, |k| u64::from(k.queue_dropped)),
            ),
            ("kernel_user", k.map_or(0, |k| u64::from(k.user_dropped))),
            ("enobufs", enobufs),
        ] {
            e.sample(
                "wfp_queue_drops_total",
                &[("queue", &q), ("reason", reason)],
                f(n),
            );
        }
    }
}

/// The whole exposition.
pub(crate) fn render(shared: &Shared) -> String {
    let mut e = Exposition::default();
    engine_families(&mut e, shared);
    prompt_families(&mut e, shared);
    shared.postures.write_metrics(&mut e);
    datapath_families(&mut e, shared);
    classify_families(&mut e, &shared.classify);
    e.finish()
}

/// `[api] metrics_listen`: answers every `GET` with the exposition (one request per connection,
/// each bounded in time) until the server stops.
pub(crate) fn serve_tcp(shared: &Shared, listener: &std::net::TcpListener) {
    use std::io::{BufReader, ErrorKind};
    let limits = wfp_api::http::Limits {
        max_head: 16 * 1024,
        max_body: 0,
    };
    while !shared.stop.load(Ordering::Relaxed) {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let timeout = Some(Duration::from_millis(shared.config.request_timeout_ms));
        if stream.set_nonblocking(false).is_err()
            || stream.set_read_timeout(timeout).is_err()
            || stream.set_write_timeout(timeout).is_err()
        {
            continue;
        }
        let Ok(mut w) = stream.try_clone() else {
            continue;
        };
        let mut r = BufReader::new(stream);
        let answer = match wfp_api::http::read_message(&mut r, &limits) {
            Ok(m) if m.request_line().is_ok_and(|(method, _)| method == "GET") => {
                (200, CONTENT_TYPE, render(shared).into_bytes())
            }
            Ok(_) => (405, "text/plain", b"only GET\n".to_vec()),
            Err(_) => (400, "text/plain", b"bad request\n".to_vec()),
        };
        let _ = wfp_api::http::write_response_typed(&mut w, answer.0, answer.1, &answer.2, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_histograms_are_cumulative() {
        let m = ClassifyMetrics::default();
        let l = wfp_core::layers::INBOUND_TRANSPORT_V4;
        m.observe(l, ActionType::BLOCK, Duration::from_nanos(800));
        m.observe(l, ActionType::PERMIT, Duration::from_micros(7));
        m.observe(l, ActionType::PERMIT, Duration::from_secs(1));
        let mut e = Exposition::default();
        classify_families(&mut e, &m);
        e.sample("x", &[("a", "q\"uo\\te\n")], 1.0);
        let text = e.finish();
        assert!(text
            .contains("wfp_packets_total{layer=\"INBOUND_TRANSPORT_V4\",verdict=\"permit\"} 2\n"));
        assert!(text.contains("wfp_classify_duration_seconds_bucket{le=\"1e-6\"} 1\n"));
        assert!(text.contains("wfp_classify_duration_seconds_bucket{le=\"1e-5\"} 2\n"));
        assert!(text.contains("wfp_classify_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("wfp_classify_duration_seconds_count 3\n"));
        assert!(text.contains("x{a=\"q\\\"uo\\\\te\\n\"} 1\n"));
    }
}
