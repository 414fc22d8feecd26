//! `wfpctl top`: a terminal view of the running daemon that refreshes the data path's flows,
//! verdict rates and recent net events (ratatui over crossterm). `q`, Esc or Ctrl-C quits.
//!
//! ```text
//!   every --interval-ms:  GET /v1/state ─┐
//!                         GET /v1/flows ─┤
//!                         GET /v1/metrics ─► wfp_packets_total{layer,verdict} ─► rate = Δ/Δt
//!                         GET /v1/netevents?limit=N ─┤
//!                                                    ▼
//!                                    Model ─► draw() ─► terminal (alternate screen)
//! ```
//!
//! A source the daemon does not answer (an older daemon, a viewer without access) shows its error
//! in its pane; the others keep refreshing. Fetching ([`Fetcher`]) and drawing ([`draw`]) are
//! separate so the screen can be rendered from a fixed [`Model`] in tests.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::Frame;
use wfp_api::{Client, StateView};

use crate::live::{event_rows, flow_rows, EVENT_HEADER, FLOW_HEADER};
use crate::mgmt::Connect;
use crate::views::{parse_metrics, FlowDto, NetEventDto};

/// `wfpctl top`.
#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// Refresh interval in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..))]
    pub interval_ms: u64,
    /// Recent net events shown.
    #[arg(long, default_value_t = 10)]
    pub events: usize,
    #[command(flatten)]
    connect: Connect,
}

/// Packets of one layer (or queue) and verdict (`wfp_packets_total`, `wfp_queue_packets_total`).
#[derive(Clone, Debug, PartialEq)]
pub struct Rate {
    /// WFP layer name, or `queue N`.
    pub layer: String,
    /// `permit`, `block`, `none`.
    pub verdict: String,
    /// Packets since the daemon started.
    pub total: f64,
    /// Packets per second since the previous refresh (`None` at the first).
    pub per_sec: Option<f64>,
}

/// What one refresh shows; each source is its data or the error that replaced it.
#[derive(Clone, Debug)]
pub struct Model {
    /// `GET /v1/state`.
    pub state: Result<StateView, String>,
    /// `GET /v1/flows`.
    pub flows: Result<Vec<FlowDto>, String>,
    /// Verdict rates from `GET /v1/metrics`, busiest first.
    pub rates: Result<Vec<Rate>, String>,
    /// The newest net events, oldest first.
    pub events: Result<Vec<NetEventDto>, String>,
    /// Refreshes so far.
    pub refreshes: u64,
}

/// Fetches models from the daemon, keeping the previous counters to compute rates.
pub struct Fetcher {
    client: Client,
    events: usize,
    rates: RateTracker,
    refreshes: u64,
}

/// `wfp_packets_total` by (layer, verdict).
type Counters = BTreeMap<(String, String), f64>;

/// Verdict counters of the previous refresh, to turn the next ones into rates.
#[derive(Default)]
pub struct RateTracker {
    previous: Option<(Instant, Counters)>,
}

impl Fetcher {
    /// Fetches through `client`, showing the newest `events` net events.
    pub fn new(client: Client, events: usize) -> Self {
        Self {
            client,
            events,
            rates: RateTracker::default(),
            refreshes: 0,
        }
    }

    /// One refresh.
    pub fn refresh(&mut self) -> Model {
        self.refreshes += 1;
        let err = |e: wfp_api::ClientError| e.to_string();
        let state = self.client.state().map_err(err);
        let flows = self.client.flows().map_err(err);
        let rates = self.client.metrics().map_err(err);
        let rates = rates.map(|text| self.rates.update(Instant::now(), &text));
        let limit = [("limit", self.events.to_string())];
        let events = self.client.net_events(&limit).map_err(err);
        Model {
            state,
            flows,
            rates,
            events,
            refreshes: self.refreshes,
        }
    }
}

impl RateTracker {
    /// The verdict counters of the metrics `text` read at `now` — `wfp_packets_total` by layer
    /// and verdict, `wfp_queue_packets_total` by queue and verdict — with their rates against the
    /// previous update, busiest first.
    pub fn update(&mut self, now: Instant, text: &str) -> Vec<Rate> {
        let counters: Counters = parse_metrics(text)
            .into_iter()
            .filter_map(|s| {
                let label = |n: &str| s.labels.get(n).cloned().unwrap_or_else(|| "-".into());
                let place = match s.name.as_str() {
                    "wfp_packets_total" => label("layer"),
                    // What each queue's worker answered (fed even when classify is not timed).
                    "wfp_queue_packets_total" => format!("queue {}", label("queue")),
                    _ => return None,
                };
                Some(((place, label("verdict")), s.value))
            })
            .collect();
        let mut rates: Vec<Rate> = counters
            .iter()
            .map(|((layer, verdict), total)| {
                let per_sec = self.previous.as_ref().and_then(|(at, prev)| {
                    let dt = now.duration_since(*at).as_secs_f64();
                    let before = prev.get(&(layer.clone(), verdict.clone())).copied()?;
                    (dt > 0.0).then(|| ((total - before) / dt).max(0.0))
                });
                Rate {
                    layer: layer.clone(),
                    verdict: verdict.clone(),
                    total: *total,
                    per_sec,
                }
            })
            .collect();
        rates.sort_by(|a, b| {
            let key = |r: &Rate| r.per_sec.unwrap_or(0.0);
            key(b)
                .total_cmp(&key(a))
                .then(b.total.total_cmp(&a.total))
                .then_with(|| (&a.layer, &a.verdict).cmp(&(&b.layer, &b.verdict)))
        });
        self.previous = Some((now, counters));
        rates
    }
}

fn header_cells<'a>(h: &'a [&'a str]) -> Row<'a> {
    Row::new(h.iter().copied()).style(Style::default().add_modifier(Modifier::BOLD))
}

/// Column widths for `header` and `rows`: each column as wide as its widest cell.
fn widths(header: &[&str], rows: &[Vec<String>]) -> Vec<Constraint> {
    header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let w = rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(1);
            Constraint::Length(u16::try_from(w).unwrap_or(u16::MAX))
        })
        .collect()
}

fn table<'a>(title: String, header: &'a [&'a str], rows: Vec<Vec<String>>) -> Table<'a> {
    let w = widths(header, &rows);
    Table::new(rows.into_iter().map(Row::new), w)
        .header(header_cells(header))
        .block(Block::bordered().title(title))
}

fn error_pane(title: &str, e: &str) -> Paragraph<'static> {
    Paragraph::new(format!("not available: {e}")).block(Block::bordered().title(title.to_string()))
}

fn status_line(m: &Model) -> Line<'static> {
    let text = match &m.state {
        Ok(s) => format!(
            "wfpd {} ({})  filters {}  sublayers {}  callouts {}  sessions {}  epoch {}  \
             net events lost {}  refresh #{}",
            s.version,
            s.api,
            s.filters,
            s.sublayers,
            s.callouts,
            s.sessions,
            s.policy_epoch,
            s.net_events_dropped,
            m.refreshes
        ),
        Err(e) => format!("wfpd: {e}"),
    };
    Line::from(text).style(Style::default().add_modifier(Modifier::REVERSED))
}

/// Draws `m` on the whole frame.
pub fn draw(f: &mut Frame<'_>, m: &Model) {
    let rate_rows = m.rates.as_ref().map_or(1, Vec::len);
    let event_rows_n = m.events.as_ref().map_or(1, Vec::len);
    let [status, flows, rates, events, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(4),
        Constraint::Length(u16::try_from(rate_rows.clamp(1, 8) + 3).unwrap_or(11)),
        Constraint::Length(u16::try_from(event_rows_n.clamp(1, 12) + 3).unwrap_or(15)),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(Paragraph::new(status_line(m)), status);
    match &m.flows {
        Ok(list) => f.render_widget(
            table(
                format!(" Flows ({}) ", list.len()),
                &FLOW_HEADER,
                flow_rows(list),
            ),
            flows,
        ),
        Err(e) => f.render_widget(error_pane(" Flows ", e), flows),
    }
    match &m.rates {
        Ok(list) => {
            let rows = list
                .iter()
                .map(|r| {
                    vec![
                        r.verdict.clone(),
                        r.layer.clone(),
                        format!("{:.0}", r.total),
                        r.per_sec.map_or_else(|| "-".into(), |v| format!("{v:.1}")),
                    ]
                })
                .collect();
            let header = &["VERDICT", "LAYER", "PACKETS", "PER SEC"];
            f.render_widget(table(" Verdicts ".into(), header, rows), rates);
        }
        Err(e) => f.render_widget(error_pane(" Verdicts ", e), rates),
    }
    match &m.events {
        Ok(list) => f.render_widget(
            table(
                " Recent net events ".into(),
                &EVENT_HEADER,
                event_rows(list),
            ),
            events,
        ),
        Err(e) => f.render_widget(error_pane(" Recent net events ", e), events),
    }
    f.render_widget(Paragraph::new("q quit"), help);
}

/// Waits up to `interval` for a key; true when it asks to quit.
fn quit_requested(interval: Duration) -> std::io::Result<bool> {
    let deadline = Instant::now() + interval;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !event::poll(left)? {
            return Ok(false);
        }
        match event::read()? {
            Event::Key(k) if k.kind == KeyEventKind::Press => {
                let ctrl_c =
                    k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                if matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c {
                    return Ok(true);
                }
            }
            Event::Resize(..) => return Ok(false),
            _ => {}
        }
    }
}

/// `wfpctl top`: runs until `q`.
pub fn run(a: &TopArgs) -> anyhow::Result<ExitCode> {
    let mut fetcher = Fetcher::new(a.connect.client()?, a.events);
    let mut terminal = ratatui::try_init()?;
    let interval = Duration::from_millis(a.interval_ms);
    let result = (|| -> anyhow::Result<()> {
        loop {
            let model = fetcher.refresh();
            terminal.draw(|f| draw(f, &model))?;
            if quit_requested(interval)? {
                return Ok(());
            }
        }
    })();
    ratatui::try_restore()?;
    result.map(|()| ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::*;

    fn screen(m: &Model) -> String {
        let mut t = Terminal::new(TestBackend::new(140, 30)).unwrap();
        t.draw(|f| draw(f, m)).unwrap();
        let buf = t.backend().buffer().clone();
        let mut out = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                out.push_str(buf[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
    }

    #[test]
    fn rates_are_counter_differences_over_time() {
        let mut t = RateTracker::default();
        let at = Instant::now();
        let first = t.update(
            at,
            "wfp_packets_total{layer=\"A\",verdict=\"permit\"} 10\n\
             wfp_packets_total{layer=\"B\",verdict=\"block\"} 5\nwfp_flows 2\n",
        );
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|r| r.per_sec.is_none()));
        let second = t.update(
            at + Duration::from_secs(2),
            "wfp_packets_total{layer=\"A\",verdict=\"permit\"} 14\n\
             wfp_packets_total{layer=\"B\",verdict=\"block\"} 25\n",
        );
        assert_eq!(
            (second[0].layer.as_str(), second[0].per_sec),
            ("B", Some(10.0))
        );
        assert_eq!(
            (second[1].layer.as_str(), second[1].per_sec),
            ("A", Some(2.0))
        );
        let queues = t.update(
            at + Duration::from_secs(3),
            "wfp_queue_packets_total{queue=\"0\",verdict=\"accept\"} 9\n",
        );
        assert_eq!(
            (queues[0].layer.as_str(), queues[0].verdict.as_str()),
            ("queue 0", "accept")
        );
    }

    #[test]
    fn every_pane_renders_or_shows_its_error() {
        let flow: FlowDto = serde_json::from_str(
            r#"{"flow":3,"protocol":17,"local_addr":"10.0.0.2","local_port":53,
                "remote_addr":"10.0.0.9","remote_port":999,"bytes_out":1,"bytes_in":2}"#,
        )
        .unwrap();
        let m = Model {
            state: Err("cannot connect".into()),
            flows: Ok(vec![flow]),
            rates: Ok(vec![Rate {
                layer: "INBOUND_TRANSPORT_V4".into(),
                verdict: "block".into(),
                total: 40.0,
                per_sec: Some(2.5),
            }]),
            events: Err("HTTP_404".into()),
            refreshes: 1,
        };
        let s = screen(&m);
        assert!(s.contains("wfpd: cannot connect"), "{s}");
        assert!(s.contains("10.0.0.9:999") && s.contains("udp"), "{s}");
        assert!(
            s.contains("block") && s.contains("INBOUND_TRANSPORT_V4") && s.contains("2.5"),
            "{s}"
        );
        assert!(s.contains("not available: HTTP_404"), "{s}");
        assert!(s.contains("q quit"), "{s}");
    }
}
