//! Management through wfpd's socket (`wfp-api`): `show`, `add`, `delete`, `watch`, `apply`.
//!
//! ```text
//!   wfpctl show state|filters|sublayers|providers|callouts|providercontexts|sessions|flows|
//!               netevents [--json]
//!   wfpctl show filters --layer L [--where FIELD=VALUE]... [--contained]   (a §11.4 template)
//!   wfpctl add filter --layer L --action A [--name N] [--sublayer KEY] [--weight N]
//!                     [--condition FIELD=VALUE]... [--provider-context KEY]
//!                     [--persistent | --boottime]
//!   wfpctl add providercontext --name N [--data TEXT | --data-hex HEX] [--context-type T]
//!                     [--persistent]   |  add filter|providercontext --json FILE|-
//!   wfpctl delete filter|providercontext ID|KEY  |  delete sublayer|provider|callout KEY
//!   wfpctl show filters --boottime | --boottime-only   (FWP_FILTER_ENUM_FLAG_*_BOOTTIME)
//!   wfpctl watch [--json] [--kind K]... [--layer L] ...   (net events as they happen)
//!   wfpctl apply POLICY.toml [--dry-run]   (one transaction; the diff with --dry-run)
//! ```
//!
//! Every command takes `--socket PATH` (default `/run/wfpd/wfpd.sock`).
//! Tables are for people; `--json` prints the API's JSON unchanged for scripts.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use serde::Serialize;
use wfp_api::{
    Client, ConditionDto, FilterDto, FilterEnumRequest, FilterEnumTypeDto, Key, ProviderContextDto,
    ValueDto, WeightDto,
};
use wfp_core::catalogue;
use wfp_policy::lit::{condition_value, Lit};

use crate::live::{event_rows, flow_rows, NetEventQuery, EVENT_HEADER, FLOW_HEADER};
use crate::views::{FlowDto, NetEventDto};

/// Where the daemon listens.
#[derive(clap::Args, Debug, Clone)]
pub struct Connect {
    /// wfpd's management socket.
    #[arg(long, default_value = "/run/wfpd/wfpd.sock")]
    pub socket: PathBuf,
}

impl Connect {
    /// A connection (one management session) to the daemon.
    pub fn client(&self) -> anyhow::Result<Client> {
        Client::connect(&self.socket).context("is wfpd running with [api] socket set?")
    }
}

/// What `show` lists.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// Counts, versions, the policy epoch.
    State,
    /// Filters, by id.
    Filters,
    /// Sublayers (built-in ones included).
    Sublayers,
    /// Providers.
    Providers,
    /// Management callouts.
    Callouts,
    /// Provider contexts (§11.4: typed data filters carry to callouts).
    Providercontexts,
    /// Open management sessions and their owners.
    Sessions,
    /// The data path's live flows (5-tuple, layers, application, packets and bytes each way).
    Flows,
    /// Stored net events (drops, vetoes, ...), filtered by the conditions below.
    Netevents,
}

/// `wfpctl show`.
#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// What to list.
    pub what: What,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// `show filters`: boot-time filters too (FWP_FILTER_ENUM_FLAG_INCLUDE_BOOTTIME).
    #[arg(long)]
    pub boottime: bool,
    /// `show filters`: only boot-time filters (FWP_FILTER_ENUM_FLAG_BOOTTIME_ONLY).
    #[arg(long, conflicts_with = "boottime")]
    pub boottime_only: bool,
    /// Conditions of `show netevents` (`--layer` also narrows `show filters`).
    #[command(flatten, next_help_heading = "Net event conditions (show netevents)")]
    pub query: NetEventQuery,
    /// The filter template of `show filters`.
    #[command(flatten, next_help_heading = "Filter template (show filters)")]
    pub template: FilterTemplateArgs,
    #[command(flatten)]
    connect: Connect,
}

/// `show filters` with an enumeration template (`FWPM_FILTER_ENUM_TEMPLATE0`, §11.4).
#[derive(clap::Args, Debug, Default)]
pub struct FilterTemplateArgs {
    /// Template condition `FIELD=VALUE` at `--layer` (values as in policy files: `10.0.0.0/8`,
    /// `tcp`, `443`); several on one field are OR-ed. Lists the filters that overlap them.
    #[arg(long = "where", value_name = "FIELD=VALUE")]
    pub conditions: Vec<String>,
    /// Only filters that match all the traffic the conditions describe
    /// (FWP_FILTER_ENUM_FULLY_CONTAINED) instead of some of it (OVERLAPPING).
    #[arg(long)]
    pub contained: bool,
}

/// The template request `show filters` sends; `None` for a plain listing.
fn filter_template(
    layer: Option<&str>,
    t: &FilterTemplateArgs,
) -> anyhow::Result<Option<FilterEnumRequest>> {
    let Some(layer) = layer else {
        if t.conditions.is_empty() {
            return Ok(None);
        }
        bail!("--where needs --layer");
    };
    let conditions = t
        .conditions
        .iter()
        .map(|text| condition(layer, text))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some(FilterEnumRequest {
        layer: Some(layer.to_string()),
        conditions,
        enum_type: if t.contained {
            FilterEnumTypeDto::FullyContained
        } else {
            FilterEnumTypeDto::Overlapping
        },
        include_disabled: true,
        ..FilterEnumRequest::default()
    }))
}

/// `wfpctl add`.
#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// What to add: `filter` or `providercontext`.
    #[arg(value_parser = ["filter", "providercontext"])]
    pub kind: String,
    /// The object as `wfp-api` JSON (a file or `-`); replaces the options below.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Layer (WFP name, e.g. ALE_AUTH_CONNECT_V4).
    #[arg(long)]
    pub layer: Option<String>,
    /// Action (BLOCK, PERMIT, ...).
    #[arg(long)]
    pub action: Option<String>,
    /// Display name.
    #[arg(long, default_value = "wfpctl filter")]
    pub name: String,
    /// Sublayer key (default: FWPM_SUBLAYER_UNIVERSAL).
    #[arg(long)]
    pub sublayer: Option<Key>,
    /// Exact weight (default: automatic).
    #[arg(long)]
    pub weight: Option<u64>,
    /// `FIELD=VALUE` (FWP_MATCH_EQUAL; values as in policy files: `10.0.0.0/8`, `tcp`, `443`).
    #[arg(long = "condition")]
    pub conditions: Vec<String>,
    /// A filter's provider context (key): sets FWPM_FILTER_FLAG_HAS_PROVIDER_CONTEXT.
    #[arg(long)]
    pub provider_context: Option<Key>,
    /// A provider context's data, as text (its UTF-8 bytes).
    #[arg(long, conflicts_with = "data_hex")]
    pub data: Option<String>,
    /// A provider context's data, as hex digits.
    #[arg(long)]
    pub data_hex: Option<String>,
    /// A provider context's FWPM_PROVIDER_CONTEXT_TYPE (default GENERAL).
    #[arg(long, default_value = "GENERAL")]
    pub context_type: String,
    /// PERSISTENT flag: kept across daemon restarts.
    #[arg(long)]
    pub persistent: bool,
    /// FWPM_FILTER_FLAG_BOOTTIME: enforced by the kernel from boot until wfpd has loaded its
    /// store (never by the running daemon).
    #[arg(long, conflicts_with = "persistent")]
    pub boottime: bool,
    #[command(flatten)]
    connect: Connect,
}

/// `wfpctl delete`.
#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// filter, sublayer, provider, callout or providercontext.
    #[arg(value_parser = ["filter", "sublayer", "provider", "callout", "providercontext"])]
    pub kind: String,
    /// A filter or provider context id, or a key (GUID).
    pub id: String,
    #[command(flatten)]
    connect: Connect,
}

/// `wfpctl watch`.
#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// One JSON object per event instead of a line for people.
    #[arg(long)]
    pub json: bool,
    /// Conditions the daemon applies to the stream (`--limit` does not apply).
    #[command(flatten, next_help_heading = "Net event conditions")]
    pub query: NetEventQuery,
    #[command(flatten)]
    connect: Connect,
}

pub(crate) fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Prints rows under a header, columns padded to their widest cell.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| (*h).to_string()).collect());
    rows.iter().for_each(|r| line(r.clone()));
}

fn value_text(v: &ValueDto) -> String {
    match v {
        ValueDto::Uint8 { value } => value.to_string(),
        ValueDto::Uint16 { value } => value.to_string(),
        ValueDto::Uint32 { value } => value.to_string(),
        ValueDto::Uint64 { value } => value.to_string(),
        ValueDto::V4AddrMask { addr, mask } => format!("{addr}/{mask}"),
        ValueDto::V6AddrMask { addr, prefix_len } => format!("{addr}/{prefix_len}"),
        ValueDto::Range { low, high } => format!("[{}, {}]", value_text(low), value_text(high)),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// `wfpctl show`.
pub fn show(a: &ShowArgs) -> anyhow::Result<ExitCode> {
    // `--layer` is shared: it also narrows `show filters` (a §11.4 template).
    let layer_only = a.what == What::Filters
        && NetEventQuery {
            layer: None,
            ..a.query.clone()
        }
        .pairs()
        .is_empty();
    if a.what != What::Netevents && !a.query.pairs().is_empty() && !layer_only {
        bail!("--kind, --layer, --filter-id, --addr, ... apply to `show netevents` only");
    }
    if a.what != What::Filters && (!a.template.conditions.is_empty() || a.template.contained) {
        bail!("--where and --contained apply to `show filters` only");
    }
    let mut c = a.connect.client()?;
    match a.what {
        What::State => {
            let s = c.state()?;
            if a.json {
                return print_json(&s).map(|()| ExitCode::SUCCESS);
            }
            table(
                &[
                    "VERSION",
                    "API",
                    "FILTERS",
                    "SUBLAYERS",
                    "PROVIDERS",
                    "CALLOUTS",
                    "SESSIONS",
                    "PERSISTENT",
                    "EPOCH",
                ],
                &[vec![
                    s.version,
                    s.api,
                    s.filters.to_string(),
                    s.sublayers.to_string(),
                    s.providers.to_string(),
                    s.callouts.to_string(),
                    s.sessions.to_string(),
                    s.persistent_objects.to_string(),
                    s.policy_epoch.to_string(),
                ]],
            );
        }
        What::Filters => {
            let mut template = filter_template(a.query.layer.as_deref(), &a.template)?;
            if a.boottime || a.boottime_only {
                let t = template.get_or_insert_with(FilterEnumRequest::default);
                t.include_boottime = a.boottime;
                t.boottime_only = a.boottime_only;
            }
            let list = match template {
                Some(t) => c.enum_filters(&t)?,
                None => c.filters()?,
            };
            if a.json {
                return print_json(&list).map(|()| ExitCode::SUCCESS);
            }
            let rows = list
                .iter()
                .map(|f| {
                    let conds: Vec<String> = f
                        .filter
                        .conditions
                        .iter()
                        .map(|c| format!("{} {} {}", c.field, c.match_type, value_text(&c.value)))
                        .collect();
                    vec![
                        f.id.to_string(),
                        f.filter.name.clone(),
                        f.filter.layer.clone(),
                        f.filter.action.clone(),
                        format!("{:#x}", f.effective_weight),
                        f.filter.flags.join("|"),
                        conds.join(" AND "),
                    ]
                })
                .collect::<Vec<_>>();
            table(
                &[
                    "ID",
                    "NAME",
                    "LAYER",
                    "ACTION",
                    "WEIGHT",
                    "FLAGS",
                    "CONDITIONS",
                ],
                &rows,
            );
        }
        What::Flows => show_flows(&mut c, a.json)?,
        What::Netevents => show_net_events(&mut c, &a.query, a.json)?,
        other => show_objects(&mut c, other, a.json)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `show flows`: `GET /v1/flows`.
fn show_flows(c: &mut Client, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&c.flows::<serde_json::Value>()?);
    }
    let flows: Vec<FlowDto> = c.flows()?;
    table(&FLOW_HEADER, &flow_rows(&flows));
    Ok(())
}

/// `show netevents`: `GET /v1/netevents` with the query's conditions (§11.5 enumeration).
fn show_net_events(c: &mut Client, q: &NetEventQuery, json: bool) -> anyhow::Result<()> {
    let pairs = q.pairs();
    if json {
        return print_json(&c.net_events::<serde_json::Value>(&pairs)?);
    }
    let events: Vec<NetEventDto> = c.net_events(&pairs)?;
    table(&EVENT_HEADER, &event_rows(&events));
    Ok(())
}

/// Prints `list` as the API's JSON, or as a table with one `row` per item.
fn listing<T: Serialize>(
    list: &[T],
    json: bool,
    header: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    if json {
        return print_json(&list);
    }
    table(header, &list.iter().map(row).collect::<Vec<_>>());
    Ok(())
}

fn show_objects(c: &mut Client, what: What, json: bool) -> anyhow::Result<()> {
    let opt = |k: Option<Key>| k.map_or_else(String::new, |k| k.to_string());
    match what {
        What::Sublayers => listing(
            &c.sublayers()?,
            json,
            &["KEY", "NAME", "WEIGHT", "BUILTIN"],
            |s| {
                let sl = &s.sublayer;
                vec![
                    opt(sl.key),
                    sl.name.clone(),
                    sl.weight.to_string(),
                    s.builtin.to_string(),
                ]
            },
        ),
        What::Providers => listing(&c.providers()?, json, &["KEY", "NAME", "FLAGS"], |p| {
            vec![opt(p.key), p.name.clone(), format!("{:#x}", p.flags)]
        }),
        What::Providercontexts => listing(
            &c.provider_contexts()?,
            json,
            &["ID", "KEY", "NAME", "TYPE", "FLAGS", "DATA"],
            |v| {
                let pc = &v.provider_context;
                vec![
                    v.id.to_string(),
                    opt(pc.key),
                    pc.name.clone(),
                    pc.context_type.clone(),
                    format!("{:#x}", pc.flags),
                    pc.data_hex.clone(),
                ]
            },
        ),
        What::Callouts => listing(
            &c.callouts()?,
            json,
            &["ID", "KEY", "NAME", "LAYER", "FLAGS"],
            |v| {
                let co = &v.callout;
                vec![
                    v.callout_id.to_string(),
                    opt(co.key),
                    co.name.clone(),
                    co.layer.clone(),
                    format!("{:#x}", co.flags),
                ]
            },
        ),
        _ => listing(
            &c.sessions()?,
            json,
            &["KEY", "NAME", "USER", "PID", "DYNAMIC", "OBJECTS"],
            |s| {
                vec![
                    s.key.to_string(),
                    s.name.clone(),
                    s.username.clone(),
                    s.process_id.to_string(),
                    s.dynamic.to_string(),
                    s.dynamic_objects.to_string(),
                ]
            },
        ),
    }
}

/// `FIELD=VALUE` at `layer` → an EQUAL condition, the value typed by the field.
fn condition(layer: &str, text: &str) -> anyhow::Result<ConditionDto> {
    let (field, value) = text
        .split_once('=')
        .with_context(|| format!("--condition {text:?} is not FIELD=VALUE"))?;
    let def =
        catalogue::layer_by_name(layer).with_context(|| format!("unknown layer {layer:?}"))?;
    let index = def
        .field_index_by_name(field.trim())
        .with_context(|| format!("{field:?} is not a field of {}", def.name))?;
    let f = def.fields.get(index).context("field index out of range")?;
    let v = condition_value(
        f.name,
        f.data_type,
        None,
        &Lit::Str(value.trim().to_string()),
    )
    .map_err(|e| anyhow::anyhow!("--condition {text:?}: {e}"))?;
    Ok(ConditionDto {
        field: f.name.to_string(),
        match_type: "EQUAL".into(),
        value: (&v).into(),
    })
}

fn filter_from_args(a: &AddArgs) -> anyhow::Result<FilterDto> {
    if let Some(path) = &a.json {
        return serde_json::from_str(&read_json(path)?).context("the filter JSON");
    }
    let (Some(layer), Some(action)) = (&a.layer, &a.action) else {
        bail!("add filter needs --layer and --action (or --json)");
    };
    let mut flags = Vec::new();
    if a.persistent {
        flags.push("PERSISTENT".to_string());
    }
    if a.boottime {
        flags.push("BOOTTIME".to_string());
    }
    if a.provider_context.is_some() {
        flags.push("HAS_PROVIDER_CONTEXT".to_string());
    }
    Ok(FilterDto {
        key: None,
        name: a.name.clone(),
        description: String::new(),
        flags,
        provider: None,
        layer: layer.clone(),
        sublayer: a.sublayer,
        weight: a.weight.map_or(WeightDto::Auto, WeightDto::Exact),
        conditions: a
            .conditions
            .iter()
            .map(|c| condition(layer, c))
            .collect::<anyhow::Result<_>>()?,
        action: action.clone(),
        callout: None,
        raw_context: 0,
        provider_context: a.provider_context,
    })
}

/// A JSON document from a file or `-` (stdin).
fn read_json(path: &std::path::Path) -> anyhow::Result<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    }
    Ok(text)
}

/// `add providercontext`: the options (or `--json`) as a `FWPM_PROVIDER_CONTEXT3` DTO.
fn provider_context_from_args(a: &AddArgs) -> anyhow::Result<ProviderContextDto> {
    if let Some(path) = &a.json {
        return serde_json::from_str(&read_json(path)?).context("the provider context JSON");
    }
    let data_hex = match (&a.data, &a.data_hex) {
        (Some(text), _) => text.bytes().map(|b| format!("{b:02x}")).collect(),
        (None, Some(hex)) => hex.clone(),
        (None, None) => String::new(),
    };
    Ok(ProviderContextDto {
        key: None,
        name: a.name.clone(),
        description: String::new(),
        flags: u32::from(a.persistent),
        provider: None,
        provider_data_hex: String::new(),
        context_type: a.context_type.clone(),
        data_hex,
    })
}

/// `wfpctl add filter`: prints the new filter's id and key.
pub fn add(a: &AddArgs) -> anyhow::Result<ExitCode> {
    let added = if a.kind == "providercontext" {
        let pc = provider_context_from_args(a)?;
        a.connect.client()?.add_provider_context(&pc)?
    } else {
        let filter = filter_from_args(a)?;
        a.connect.client()?.add_filter(&filter)?
    };
    println!("{} {}", added.id.unwrap_or_default(), added.key);
    Ok(ExitCode::SUCCESS)
}

/// `wfpctl delete`.
pub fn delete(a: &DeleteArgs) -> anyhow::Result<ExitCode> {
    let mut c = a.connect.client()?;
    let key = || a.id.parse::<Key>().map_err(anyhow::Error::msg);
    match a.kind.as_str() {
        "filter" => match a.id.parse::<u64>() {
            Ok(id) => c.delete_filter(id)?,
            Err(_) => c.delete_filter_by_key(key()?)?,
        },
        "providercontext" => match a.id.parse::<u64>() {
            Ok(id) => c.delete_provider_context_by_id(id)?,
            Err(_) => c.delete_object("providercontexts", key()?)?,
        },
        kind => c.delete_object(&format!("{kind}s"), key()?)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `wfpctl watch`: prints net events until the daemon ends the stream (or Ctrl-C).
pub fn watch(a: &WatchArgs) -> anyhow::Result<ExitCode> {
    let mut pairs = a.query.pairs();
    pairs.retain(|(name, _)| *name != "limit");
    let stream = a
        .connect
        .client()?
        .events_matching::<serde_json::Value>(&pairs)?;
    for event in stream {
        let raw = event?;
        if a.json {
            println!("{}", serde_json::to_string(&raw)?);
            continue;
        }
        let e: NetEventDto = serde_json::from_value(raw)?;
        let id = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| v.to_string());
        println!(
            "#{} {} layer={} filter={} overridden={} callout={} flow={}",
            e.seq,
            e.kind,
            e.layer,
            id(e.filter_id),
            id(e.overridden_filter_id),
            e.callout_id.map_or_else(|| "-".into(), |v| v.to_string()),
            id(e.flow)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `wfpctl apply`.
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// The policy file.
    pub policy: PathBuf,
    /// Print what would change, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    connect: Connect,
}

/// One object of the policy, compared by key with the running daemon.
#[derive(Debug)]
enum Change {
    Sublayer(wfp_api::SublayerDto),
    Provider(wfp_api::ProviderDto),
    ProviderContext(ProviderContextDto),
    Filter(FilterDto),
}

/// The policy's objects as the engine resolves them (keys, weights, typed values), through a
/// scratch engine.
fn policy_objects(path: &std::path::Path) -> anyhow::Result<Vec<Change>> {
    let policy = wfp_policy::Policy::load(path)?;
    let (engine, _) = policy.build_engine(&wfp_callouts::Host::new())?;
    if !engine.callouts().is_empty() {
        bail!("apply does not manage callouts yet: the policy declares [[callout]] tables");
    }
    let mut out: Vec<Change> = engine
        .providers()
        .iter()
        .map(|p| Change::Provider(p.into()))
        .collect();
    out.extend(
        engine
            .sublayers()
            .iter()
            .filter(|s| !s.builtin)
            .map(|s| Change::Sublayer(wfp_api::SublayerView::from(s).sublayer)),
    );
    out.extend(engine.provider_contexts().iter().map(|pc| {
        Change::ProviderContext(wfp_api::ProviderContextView::from(&**pc).provider_context)
    }));
    out.extend(
        engine
            .filters()
            .iter()
            .map(|f| Change::Filter(wfp_api::FilterView::from(&**f).filter)),
    );
    Ok(out)
}

/// `wfpctl apply POLICY.toml [--dry-run]`: adds the policy's providers, sublayers, provider
/// contexts and filters
/// that the daemon lacks and replaces the ones that differ (same key), in **one transaction**
/// (all or nothing). Objects of the daemon the policy does not name are left alone.
pub fn apply(a: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let wanted = policy_objects(&a.policy)?;
    let mut c = a.connect.client()?;
    let filters = c.filters()?;
    let sublayers = c.sublayers()?;
    let providers = c.providers()?;
    let contexts = c.provider_contexts()?;
    let mut plan: Vec<(&'static str, &Change)> = Vec::new();
    for w in &wanted {
        let (exists, same) = match w {
            Change::Provider(p) => {
                let found = providers.iter().find(|x| x.key == p.key);
                (found.is_some(), found == Some(p))
            }
            Change::Sublayer(s) => {
                let found = sublayers.iter().find(|x| x.sublayer.key == s.key);
                (found.is_some(), found.is_some_and(|x| &x.sublayer == s))
            }
            Change::ProviderContext(pc) => {
                let found = contexts.iter().find(|x| x.provider_context.key == pc.key);
                (
                    found.is_some(),
                    found.is_some_and(|x| &x.provider_context == pc),
                )
            }
            Change::Filter(f) => {
                let found = filters.iter().find(|x| x.filter.key == f.key);
                (found.is_some(), found.is_some_and(|x| &x.filter == f))
            }
        };
        match (exists, same) {
            (false, _) => plan.push(("add", w)),
            (true, false) => plan.push(("replace", w)),
            (true, true) => {}
        }
    }
    for (what, change) in &plan {
        let (kind, name, key) = match change {
            Change::Provider(p) => ("provider", &p.name, p.key),
            Change::Sublayer(s) => ("sublayer", &s.name, s.key),
            Change::ProviderContext(pc) => ("providercontext", &pc.name, pc.key),
            Change::Filter(f) => ("filter", &f.name, f.key),
        };
        let key = key.map_or_else(String::new, |k| k.to_string());
        println!("{what:<8} {kind:<9} {key} {name:?}");
    }
    if plan.is_empty() {
        println!(
            "the running policy already has every object of {}",
            a.policy.display()
        );
    }
    if a.dry_run || plan.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    c.begin(false)?;
    let result = plan
        .iter()
        .try_for_each(|(what, change)| execute(&mut c, what, change));
    match result {
        Ok(()) => c.commit()?,
        Err(e) => {
            let _ = c.abort();
            return Err(e.context("nothing was changed"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn execute(c: &mut Client, what: &str, change: &Change) -> anyhow::Result<()> {
    let replace = what == "replace";
    match change {
        Change::Provider(p) => {
            if let (true, Some(k)) = (replace, p.key) {
                c.delete_object("providers", k)?;
            }
            c.add_provider(p)?;
        }
        Change::Sublayer(s) => {
            if let (true, Some(k)) = (replace, s.key) {
                c.delete_object("sublayers", k)?;
            }
            c.add_sublayer(s)?;
        }
        Change::ProviderContext(pc) => {
            if let (true, Some(k)) = (replace, pc.key) {
                c.delete_object("providercontexts", k)?;
            }
            c.add_provider_context(pc)?;
        }
        Change::Filter(f) => {
            if let (true, Some(k)) = (replace, f.key) {
                c.delete_filter_by_key(k)?;
            }
            c.add_filter(f)?;
        }
    }
    Ok(())
}
