//! Boot-time filters → one nftables table (§11.3, arbitration §7.3–7.5). Pure: text in, text out.
//!
//! Every WFP layer a kernel hook can stand for gets its own run of chains, one per sublayer in
//! evaluation order (sublayer weight descending, then creation order); each sublayer chain holds
//! its filters in evaluation order (weight descending, then filter id), so the first rule that
//! matches is the filter WFP's arbitration picks in that sublayer:
//!
//! ```text
//!  hook chain (priority -1) ── meta nfproto ipv4 jump l12_s0
//!  l12_s0: [conditions] drop                  BLOCK (static: hard, §7.4)  → packet dropped
//!          [conditions] return                PERMIT + CLEAR_ACTION_RIGHT → layer done, hard
//!          [conditions] goto l12_s1           PERMIT (soft)               → next sublayer
//!          goto l12_s1                        nothing matched             → next sublayer
//!  l12_s1: ...; the last sublayer's soft permit is `return`, its end returns too
//! ```
//!
//! Within a layer this is §7.5 for static filters: a block or a hard permit decides, a soft
//! permit lets a lower sublayer's block win, nothing is the layer's default (permit). Layers are
//! arbitrated separately, as in WFP (a hard permit ends only its own layer's chains).
//!
//! Conditions (§8.5: OR inside a run of conditions on the same field, AND across runs) become
//! rule alternatives (the cartesian product of the runs). What a kernel rule cannot match without
//! the daemon is refused, never widened: see [`BootError`].

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use wfp_core::catalogue::{self, layers, LayerId};
use wfp_core::condition::Condition;
use wfp_core::{ActionType, ConditionValue, FilterFlags, MatchType, RtFilter, Value};

/// The table the boot-time filters live in (family `inet`).
pub const TABLE: &str = "wfp_boottime";
/// The hook priority: just before iptables' `filter` table (0), where wfpd's queue rules are, and
/// after the flow-offload table (-5).
pub const PRIORITY: i32 = -1;
/// The most rules one filter may expand to (its OR groups multiplied).
pub const MAX_RULES_PER_FILTER: usize = 64;

/// Why a boot-time filter cannot be compiled. Each maps to the WFP status the management API
/// answers ([`BootError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BootError {
    /// No kernel hook stands for the layer (stream, datagram-data, ICMP-error, other ALE layers).
    #[error("FWP_E_INCOMPATIBLE_LAYER: boot-time filters are not supported at layer {layer}")]
    Layer {
        /// The layer's name.
        layer: String,
    },
    /// Only PERMIT and BLOCK: no callout can run before wfpd does.
    #[error("FWP_E_INVALID_ACTION_TYPE: a boot-time filter must PERMIT or BLOCK, not {action}")]
    Action {
        /// The action's name.
        action: String,
    },
    /// A condition a kernel rule cannot match without the daemon.
    #[error("FWP_E_CONDITION_NOT_FOUND: boot-time condition {field} {match_type}: {reason}")]
    Condition {
        /// The field's name.
        field: String,
        /// The match type's name.
        match_type: String,
        /// Why.
        reason: &'static str,
    },
    /// The OR groups multiply into too many rules.
    #[error("FWP_E_INVALID_PARAMETER: boot-time filter expands to {rules} rules (at most {max})")]
    TooManyRules {
        /// Rules it would need.
        rules: usize,
        /// [`MAX_RULES_PER_FILTER`].
        max: usize,
    },
}

impl BootError {
    /// The WFP status answered for it.
    pub fn code(&self) -> u32 {
        match self {
            Self::Layer { .. } => 0x8032_0014,
            Self::Action { .. } => 0x8032_0024,
            Self::Condition { .. } => 0x8032_0002,
            Self::TooManyRules { .. } => 0x8032_0035,
        }
    }

    /// The status's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Layer { .. } => "FWP_E_INCOMPATIBLE_LAYER",
            Self::Action { .. } => "FWP_E_INVALID_ACTION_TYPE",
            Self::Condition { .. } => "FWP_E_CONDITION_NOT_FOUND",
            Self::TooManyRules { .. } => "FWP_E_INVALID_PARAMETER",
        }
    }
}

/// A kernel hook of the `inet` family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hook {
    /// `input`: inbound packets for this host.
    Input,
    /// `output`: packets this host sends.
    Output,
    /// `forward`: packets routed through.
    Forward,
}

impl Hook {
    fn name(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
            Self::Forward => "forward",
        }
    }
}

/// Where a layer's filters run in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerPlan {
    /// The hook.
    pub hook: Hook,
    /// IPv6 layer.
    pub v6: bool,
    /// ALE authorization layers see only a flow's first packet (`ct state new`).
    pub new_flows: bool,
}

/// The kernel layers a hook stands for (§8.2 layer order; ALE per new flow, §8.3).
const PLANS: [(LayerId, Hook, bool, bool); 14] = [
    (layers::INBOUND_IPPACKET_V4, Hook::Input, false, false),
    (layers::INBOUND_IPPACKET_V6, Hook::Input, true, false),
    (layers::INBOUND_TRANSPORT_V4, Hook::Input, false, false),
    (layers::INBOUND_TRANSPORT_V6, Hook::Input, true, false),
    (layers::ALE_AUTH_RECV_ACCEPT_V4, Hook::Input, false, true),
    (layers::ALE_AUTH_RECV_ACCEPT_V6, Hook::Input, true, true),
    (layers::OUTBOUND_IPPACKET_V4, Hook::Output, false, false),
    (layers::OUTBOUND_IPPACKET_V6, Hook::Output, true, false),
    (layers::OUTBOUND_TRANSPORT_V4, Hook::Output, false, false),
    (layers::OUTBOUND_TRANSPORT_V6, Hook::Output, true, false),
    (layers::ALE_AUTH_CONNECT_V4, Hook::Output, false, true),
    (layers::ALE_AUTH_CONNECT_V6, Hook::Output, true, true),
    (layers::IPFORWARD_V4, Hook::Forward, false, false),
    (layers::IPFORWARD_V6, Hook::Forward, true, false),
];

/// The plan of `layer`, or [`BootError::Layer`].
pub fn plan(layer: LayerId) -> Result<LayerPlan, BootError> {
    PLANS
        .iter()
        .find(|(l, ..)| *l == layer)
        .map(|&(_, hook, v6, new_flows)| LayerPlan {
            hook,
            v6,
            new_flows,
        })
        .ok_or_else(|| BootError::Layer {
            layer: catalogue::layer(layer).map_or_else(|| layer.to_string(), |d| d.name.into()),
        })
}

/// What a matching filter does in its sublayer chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Drop,
    HardPermit,
    SoftPermit,
}

fn verdict(action: ActionType, flags: FilterFlags) -> Result<Verdict, BootError> {
    if action == ActionType::BLOCK {
        Ok(Verdict::Drop)
    } else if action == ActionType::PERMIT && flags.contains(FilterFlags::CLEAR_ACTION_RIGHT) {
        Ok(Verdict::HardPermit)
    } else if action == ActionType::PERMIT {
        Ok(Verdict::SoftPermit)
    } else {
        Err(BootError::Action {
            action: action.name(),
        })
    }
}

/// The parts of a filter the compiler reads (a validated spec at add, a run-time filter after).
pub struct BootFilter<'a> {
    /// `filterId` (the rule's comment).
    pub id: u64,
    /// The layer.
    pub layer: LayerId,
    /// The sublayer key (groups filters into chains).
    pub sublayer: wfp_core::Guid,
    /// `action.type`.
    pub action: ActionType,
    /// `FWPM_FILTER_FLAG_*`.
    pub flags: FilterFlags,
    /// The bound conditions in their original order.
    pub conditions: &'a [Condition],
}

impl<'a> From<&'a RtFilter> for BootFilter<'a> {
    fn from(f: &'a RtFilter) -> Self {
        Self {
            id: f.filter_id().0,
            layer: f.layer(),
            sublayer: f.sublayer(),
            action: f.action(),
            flags: f.mgmt_flags(),
            conditions: f.conditions().conditions(),
        }
    }
}

/// The rule bodies (match expressions) of one filter, one per OR alternative; an empty list means
/// the filter can never match.
pub fn matches(f: &BootFilter<'_>) -> Result<Vec<String>, BootError> {
    let plan = plan(f.layer)?;
    verdict(f.action, f.flags)?;
    let mut rules = vec![String::new()];
    let mut i = 0;
    while let Some(first) = f.conditions.get(i) {
        let run = f.conditions[i..]
            .iter()
            .take_while(|c| c.field_index == first.field_index)
            .count();
        let mut alternatives = Vec::new();
        for c in &f.conditions[i..i + run] {
            alternatives.extend(condition(plan, c)?);
        }
        let n = rules.len() * alternatives.len();
        if n > MAX_RULES_PER_FILTER {
            return Err(BootError::TooManyRules {
                rules: n,
                max: MAX_RULES_PER_FILTER,
            });
        }
        rules = rules
            .iter()
            .flat_map(|r| alternatives.iter().map(move |a| join(r, a)))
            .collect();
        i += run;
    }
    Ok(rules)
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a} {b}"),
    }
}

/// The packet field a condition reads.
#[derive(Clone, Copy)]
enum Field {
    Protocol,
    Addr { source: bool },
    Port { local: bool },
}

fn field(
    plan: LayerPlan,
    c: &Condition,
    refuse: &dyn Fn(&'static str) -> BootError,
) -> Result<Field, BootError> {
    let name = catalogue::condition(c.field).map_or("?", |d| d.name);
    // Inbound, the local address is the destination; outbound and forwarded, the source.
    let local_is_source = plan.hook != Hook::Input;
    Ok(match name {
        "IP_PROTOCOL" => Field::Protocol,
        "IP_LOCAL_ADDRESS" => Field::Addr {
            source: local_is_source,
        },
        "IP_REMOTE_ADDRESS" => Field::Addr {
            source: !local_is_source,
        },
        "IP_SOURCE_ADDRESS" => Field::Addr { source: true },
        "IP_DESTINATION_ADDRESS" => Field::Addr { source: false },
        "IP_LOCAL_PORT" => Field::Port { local: true },
        "IP_REMOTE_PORT" => Field::Port { local: false },
        _ => {
            return Err(refuse(
                "only addresses, ports and the protocol are matched at boot",
            ))
        }
    })
}

/// The alternatives of one condition.
fn condition(plan: LayerPlan, c: &Condition) -> Result<Vec<String>, BootError> {
    let refuse = |reason: &'static str| BootError::Condition {
        field: catalogue::condition(c.field).map_or_else(|| "?".into(), |d| d.name.to_string()),
        match_type: c.match_type.name().to_string(),
        reason,
    };
    let cmp = Cmp::of(c.match_type, &c.value).ok_or_else(|| refuse("match type not supported"))?;
    match field(plan, c, &refuse)? {
        Field::Protocol => {
            let (lo, hi) = cmp
                .bounds(&c.value, |v| v.as_u64())
                .ok_or_else(|| refuse("not a number"))?;
            Ok(vec![format!(
                "meta l4proto {}",
                cmp.render(lo, hi, |n| n.to_string())
            )])
        }
        Field::Addr { source } => address(plan, source, cmp, &c.value)
            .ok_or_else(|| refuse("not an address of the layer's family")),
        Field::Port { local } => {
            let (lo, hi) = cmp
                .bounds(&c.value, |v| v.as_u64())
                .ok_or_else(|| refuse("not a number"))?;
            Ok(port(plan, local, cmp, lo, hi))
        }
    }
}

/// A comparison, as nft writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Range,
}

impl Cmp {
    fn of(mt: MatchType, value: &ConditionValue) -> Option<Self> {
        let range = matches!(value, ConditionValue::Range(..));
        Some(match mt {
            MatchType::Range if range => Self::Range,
            _ if range => return None,
            MatchType::Equal => Self::Eq,
            MatchType::NotEqual => Self::Ne,
            MatchType::Greater => Self::Gt,
            MatchType::Less => Self::Lt,
            MatchType::GreaterOrEqual => Self::Ge,
            MatchType::LessOrEqual => Self::Le,
            _ => return None,
        })
    }

    /// The operand(s): one value, or a range's bounds.
    fn bounds<T>(
        self,
        v: &ConditionValue,
        get: impl Fn(&Value) -> Option<T>,
    ) -> Option<(T, Option<T>)> {
        match v {
            ConditionValue::Range(lo, hi) => Some((get(lo)?, Some(get(hi)?))),
            ConditionValue::Value(x) => Some((get(x)?, None)),
            _ => None,
        }
    }

    fn render<T>(self, lo: T, hi: Option<T>, show: impl Fn(T) -> String) -> String {
        let op = match self {
            Self::Eq | Self::Range => "",
            Self::Ne => "!= ",
            Self::Gt => "> ",
            Self::Lt => "< ",
            Self::Ge => ">= ",
            Self::Le => "<= ",
        };
        match hi {
            Some(hi) => format!("{op}{}-{}", show(lo), show(hi)),
            None => format!("{op}{}", show(lo)),
        }
    }
}

fn address(plan: LayerPlan, source: bool, cmp: Cmp, v: &ConditionValue) -> Option<Vec<String>> {
    let dir = if source { "saddr" } else { "daddr" };
    let operand = if plan.v6 {
        v6_operand(cmp, v)?
    } else {
        v4_operand(cmp, v)?
    };
    let family = if plan.v6 { "ip6" } else { "ip" };
    Some(vec![format!("{family} {dir} {operand}")])
}

fn v4_operand(cmp: Cmp, v: &ConditionValue) -> Option<String> {
    let ip = |v: &Value| match v {
        Value::Uint32(a) => Some(Ipv4Addr::from(*a)),
        _ => None,
    };
    match v {
        ConditionValue::V4AddrMask { addr, mask } => {
            let len = mask.leading_ones();
            let neg = match cmp {
                Cmp::Eq => "",
                Cmp::Ne => "!= ",
                _ => return None,
            };
            if mask.checked_shl(len).unwrap_or(0) == 0 {
                Some(format!("{neg}{}/{len}", Ipv4Addr::from(addr & mask)))
            } else {
                let op = if neg.is_empty() { "==" } else { "!=" };
                Some(format!(
                    "& {} {op} {}",
                    Ipv4Addr::from(*mask),
                    Ipv4Addr::from(addr & mask)
                ))
            }
        }
        _ => cmp
            .bounds(v, ip)
            .map(|(lo, hi)| cmp.render(lo, hi, |a| a.to_string())),
    }
}

fn v6_operand(cmp: Cmp, v: &ConditionValue) -> Option<String> {
    let ip = |v: &Value| match v {
        Value::ByteArray16(a) => Some(Ipv6Addr::from(*a)),
        _ => None,
    };
    match v {
        ConditionValue::V6AddrMask { addr, prefix_len } => {
            let len = u32::from((*prefix_len).min(128));
            let bits = u128::from_be_bytes(*addr) & u128::MAX.checked_shl(128 - len).unwrap_or(0);
            let neg = match cmp {
                Cmp::Eq => "",
                Cmp::Ne => "!= ",
                _ => return None,
            };
            Some(format!("{neg}{}/{len}", Ipv6Addr::from(bits)))
        }
        _ => cmp
            .bounds(v, ip)
            .map(|(lo, hi)| cmp.render(lo, hi, |a| a.to_string())),
    }
}

/// Port conditions: TCP and UDP ports; for ICMP the shim puts the type in the local port and the
/// code in the remote port (§8.4), so the ICMP alternative compares those (8 bits wide).
fn port(plan: LayerPlan, local: bool, cmp: Cmp, lo: u64, hi: Option<u64>) -> Vec<String> {
    let inbound = plan.hook == Hook::Input;
    let th = if local == inbound { "dport" } else { "sport" };
    let mut out = vec![format!(
        "meta l4proto {{ tcp, udp }} th {th} {}",
        cmp.render(lo, hi, |n| n.to_string())
    )];
    let (proto, icmp) = if plan.v6 {
        ("icmpv6", "icmpv6")
    } else {
        ("icmp", "icmp")
    };
    let what = if local { "type" } else { "code" };
    match clamp_u8(cmp, lo, hi) {
        Clamped::Never => {}
        Clamped::Always => out.push(format!("meta l4proto {proto}")),
        Clamped::Test(text) => out.push(format!("meta l4proto {proto} {icmp} {what} {text}")),
    }
    out
}

enum Clamped {
    Never,
    Always,
    Test(String),
}

/// `cmp` of an 8-bit field against a 16-bit operand.
fn clamp_u8(cmp: Cmp, lo: u64, hi: Option<u64>) -> Clamped {
    const MAX: u64 = 255;
    let test = |s: String| Clamped::Test(s);
    match (cmp, hi) {
        (Cmp::Range, Some(hi)) if lo > MAX || hi < lo => Clamped::Never,
        (Cmp::Range, Some(hi)) => test(format!("{lo}-{}", hi.min(MAX))),
        (Cmp::Eq, _) if lo > MAX => Clamped::Never,
        (Cmp::Ne, _) if lo > MAX => Clamped::Always,
        (Cmp::Gt, _) if lo >= MAX => Clamped::Never,
        (Cmp::Ge, _) if lo > MAX => Clamped::Never,
        (Cmp::Lt, _) if lo > MAX => Clamped::Always,
        (Cmp::Lt, _) if lo == 0 => Clamped::Never,
        (Cmp::Le, _) if lo >= MAX => Clamped::Always,
        _ => test(cmp.render(lo, None, |n| n.to_string())),
    }
}

/// The whole `nft -f` script for `filters` (given in evaluation order, as
/// [`wfp_core::engine::BoottimeSet`] publishes them): it replaces the table in one transaction,
/// and with no filters only removes it.
pub fn script(filters: &[BootFilter<'_>]) -> Result<String, BootError> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# wfp-engine boot-time filters (§11.3), generated by wfpd: {} filters",
        filters.len()
    );
    let _ = writeln!(out, "table inet {TABLE}\ndelete table inet {TABLE}");
    if filters.is_empty() {
        return Ok(out);
    }
    let mut by_layer: Vec<(LayerId, Vec<Vec<&BootFilter<'_>>>)> = Vec::new();
    for f in filters {
        plan(f.layer)?;
        let i = match by_layer.iter().position(|(l, _)| *l == f.layer) {
            Some(i) => i,
            None => {
                by_layer.push((f.layer, Vec::new()));
                by_layer.len() - 1
            }
        };
        let subs = &mut by_layer[i].1;
        match subs.last_mut() {
            Some(last) if last.first().is_some_and(|g| g.sublayer == f.sublayer) => last.push(f),
            _ => subs.push(vec![f]),
        }
    }
    by_layer.sort_by_key(|(l, _)| *l);
    let _ = writeln!(out, "table inet {TABLE} {{");
    for (layer, subs) in &by_layer {
        layer_chains(&mut out, *layer, subs)?;
    }
    hook_chains(&mut out, &by_layer);
    out.push_str("}\n");
    Ok(out)
}

fn chain_name(layer: LayerId, sublayer: usize) -> String {
    format!("l{}_s{sublayer}", layer.0)
}

fn layer_chains(
    out: &mut String,
    layer: LayerId,
    subs: &[Vec<&BootFilter<'_>>],
) -> Result<(), BootError> {
    for (i, filters) in subs.iter().enumerate() {
        let next = (i + 1 < subs.len()).then(|| chain_name(layer, i + 1));
        let _ = writeln!(out, "\tchain {} {{", chain_name(layer, i));
        for f in filters {
            let action = match (verdict(f.action, f.flags)?, &next) {
                (Verdict::Drop, _) => "drop".to_owned(),
                (Verdict::HardPermit, _) | (Verdict::SoftPermit, None) => "return".to_owned(),
                (Verdict::SoftPermit, Some(n)) => format!("goto {n}"),
            };
            for body in matches(f)? {
                let _ = writeln!(out, "\t\t{} {action} comment \"wfp filter {}\"", body, f.id);
            }
        }
        if let Some(n) = &next {
            let _ = writeln!(out, "\t\tgoto {n}");
        }
        out.push_str("\t}\n");
    }
    Ok(())
}

fn hook_chains(out: &mut String, by_layer: &[(LayerId, Vec<Vec<&BootFilter<'_>>>)]) {
    for hook in [Hook::Input, Hook::Output, Hook::Forward] {
        let jumps: Vec<String> = by_layer
            .iter()
            .filter_map(|(l, _)| {
                let p = plan(*l).ok().filter(|p| p.hook == hook)?;
                let family = if p.v6 { "ipv6" } else { "ipv4" };
                let ct = if p.new_flows { " ct state new" } else { "" };
                Some(format!(
                    "\t\tmeta nfproto {family}{ct} jump {}\n",
                    chain_name(*l, 0)
                ))
            })
            .collect();
        if jumps.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\tchain {name} {{\n\t\ttype filter hook {name} priority {PRIORITY}; policy accept;",
            name = hook.name()
        );
        jumps.iter().for_each(|j| out.push_str(j));
        out.push_str("\t}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfp_core::catalogue::condition_by_name;
    use wfp_core::{ConditionSpec, Engine, FilterSpec, SublayerSpec, WeightSpec};

    fn cond(field: &str, match_type: MatchType, value: ConditionValue) -> ConditionSpec {
        ConditionSpec {
            field: condition_by_name(field).expect(field),
            match_type,
            value,
        }
    }

    fn port(p: u16) -> ConditionValue {
        ConditionValue::Value(Value::Uint16(p))
    }

    fn boot(
        layer: LayerId,
        action: ActionType,
        weight: u64,
        conds: Vec<ConditionSpec>,
    ) -> FilterSpec {
        let mut f = FilterSpec::new("b", layer, action);
        f.flags = FilterFlags::BOOTTIME;
        f.weight = WeightSpec::Exact(weight);
        f.conditions = conds;
        f
    }

    fn script_of(e: &Engine) -> Result<String, BootError> {
        let set = e.boottime();
        let filters: Vec<BootFilter<'_>> =
            set.filters.iter().map(|f| BootFilter::from(&**f)).collect();
        script(&filters)
    }

    fn compile_one(spec: FilterSpec) -> Result<Vec<String>, BootError> {
        let layer = catalogue::layer(spec.layer).unwrap();
        let conditions: Vec<Condition> = spec
            .conditions
            .iter()
            .map(|c| Condition::bind(layer, c).unwrap())
            .collect();
        matches(&BootFilter {
            id: 1,
            layer: spec.layer,
            sublayer: spec.sublayer,
            action: spec.action,
            flags: spec.flags,
            conditions: &conditions,
        })
    }

    #[test]
    fn no_filters_only_remove_the_table() {
        let text = script_of(&Engine::default()).unwrap();
        assert!(text.contains("table inet wfp_boottime\ndelete table inet wfp_boottime\n"));
        assert!(!text.contains("chain"));
    }

    // §11.3 + §8.2: an inbound transport block on a local port is a drop in the input hook;
    // the local port is the destination port inbound, and ICMP (type in the local port) cannot
    // reach 7000.
    #[test]
    fn an_inbound_port_block_is_a_drop_at_input() {
        let e = Engine::default();
        let c = vec![cond("IP_LOCAL_PORT", MatchType::Equal, port(7000))];
        e.add_filter(boot(layers::INBOUND_TRANSPORT_V4, ActionType::BLOCK, 5, c))
            .unwrap();
        let text = script_of(&e).unwrap();
        assert!(
            text.contains("type filter hook input priority -1; policy accept;"),
            "{text}"
        );
        assert!(text.contains("meta nfproto ipv4 jump l12_s0"), "{text}");
        assert!(
            text.contains("meta l4proto { tcp, udp } th dport 7000 drop comment \"wfp filter 1\""),
            "{text}"
        );
        assert!(!text.contains("icmp type"), "{text}");
        assert!(!text.contains("hook output"), "{text}");
    }

    // §7.4/§7.5: sublayers by weight, filters by weight; a soft permit goes on to the next
    // sublayer (where a block still wins), a hard permit ends the layer.
    #[test]
    fn arbitration_order_is_first_match_per_sublayer() {
        let e = Engine::default();
        let high = e
            .add_sublayer(SublayerSpec {
                key: wfp_core::Guid::NULL,
                name: "high".into(),
                description: String::new(),
                flags: wfp_core::filter::SUBLAYER_FLAG_PERSISTENT,
                provider: None,
                weight: 0xF000,
            })
            .unwrap();
        let l = layers::OUTBOUND_TRANSPORT_V4;
        let p22 = || vec![cond("IP_REMOTE_PORT", MatchType::Equal, port(22))];
        e.add_filter(boot(l, ActionType::BLOCK, 1, vec![])).unwrap(); // universal, id 1
        let mut soft = boot(l, ActionType::PERMIT, 2, p22());
        soft.sublayer = high;
        e.add_filter(soft).unwrap(); // id 2
        let mut hard = boot(l, ActionType::PERMIT, 9, p22());
        hard.flags |= FilterFlags::CLEAR_ACTION_RIGHT;
        e.add_filter(hard).unwrap(); // id 3, universal, heavier than id 1
        let text = script_of(&e).unwrap();
        let at = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle}\n{text}"))
        };
        // The high sublayer is the first chain; its soft permit goes on to the universal one.
        assert!(at("chain l16_s0") < at("th dport 22 goto l16_s1 comment \"wfp filter 2\""));
        assert!(at("chain l16_s1") > at("goto l16_s1 comment"));
        // Outbound, the remote port is the destination port; the hard permit (weight 9) is
        // before the block (weight 1) and returns.
        let hard_at = at("th dport 22 return comment \"wfp filter 3\"");
        assert!(hard_at > at("chain l16_s1"));
        assert!(hard_at < at("drop comment \"wfp filter 1\""));
        assert!(text.contains("type filter hook output priority -1;"));
    }

    // §8.5: a run of conditions on one field is an OR (one rule each), runs are ANDed; prefixes,
    // ranges and the per-direction address fields.
    #[test]
    fn or_groups_prefixes_ranges_and_directions() {
        let l = layers::ALE_AUTH_CONNECT_V4;
        let rules = compile_one(boot(
            l,
            ActionType::BLOCK,
            1,
            vec![
                cond(
                    "IP_REMOTE_ADDRESS",
                    MatchType::Equal,
                    ConditionValue::v4_prefix(Ipv4Addr::new(10, 1, 2, 3), 16),
                ),
                cond(
                    "IP_REMOTE_ADDRESS",
                    MatchType::Equal,
                    ConditionValue::Value(Value::Uint32(0xC0A8_0001)),
                ),
                cond(
                    "IP_REMOTE_PORT",
                    MatchType::Range,
                    ConditionValue::Range(Value::Uint16(1000), Value::Uint16(2000)),
                ),
                cond(
                    "IP_PROTOCOL",
                    MatchType::Equal,
                    ConditionValue::Value(Value::Uint8(6)),
                ),
            ],
        ))
        .unwrap();
        assert_eq!(rules.len(), 2, "{rules:?}");
        assert_eq!(
            rules[0],
            "ip daddr 10.1.0.0/16 meta l4proto { tcp, udp } th dport 1000-2000 meta l4proto 6"
        );
        assert_eq!(
            rules[1],
            "ip daddr 192.168.0.1 meta l4proto { tcp, udp } th dport 1000-2000 meta l4proto 6"
        );
        let v6 = compile_one(boot(
            layers::INBOUND_IPPACKET_V6,
            ActionType::BLOCK,
            1,
            vec![cond(
                "IP_REMOTE_ADDRESS",
                MatchType::NotEqual,
                ConditionValue::V6AddrMask {
                    addr: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1).octets(),
                    prefix_len: 8,
                },
            )],
        ))
        .unwrap();
        assert_eq!(v6, vec!["ip6 saddr != fd00::/8".to_owned()]);
    }

    // ICMP carries its type in the local port and its code in the remote port (§8.4).
    #[test]
    fn small_port_values_also_match_icmp_type_and_code() {
        let l = layers::INBOUND_TRANSPORT_V4;
        let rules = compile_one(boot(
            l,
            ActionType::BLOCK,
            1,
            vec![cond("IP_LOCAL_PORT", MatchType::Equal, port(8))],
        ))
        .unwrap();
        assert_eq!(rules[1], "meta l4proto icmp icmp type 8");
        let rules = compile_one(boot(
            l,
            ActionType::BLOCK,
            1,
            vec![cond("IP_REMOTE_PORT", MatchType::NotEqual, port(300))],
        ))
        .unwrap();
        assert_eq!(rules[0], "meta l4proto { tcp, udp } th sport != 300");
        assert_eq!(
            rules[1], "meta l4proto icmp",
            "every ICMP code differs from 300"
        );
    }

    #[test]
    fn what_a_kernel_rule_cannot_express_is_refused_with_a_wfp_status() {
        let stream = compile_one(boot(layers::STREAM_V4, ActionType::BLOCK, 1, vec![]));
        assert_eq!(stream.unwrap_err().code(), 0x8032_0014);
        let mut callout = boot(
            layers::INBOUND_TRANSPORT_V4,
            ActionType::CALLOUT_TERMINATING,
            1,
            vec![],
        );
        callout.callout = Some(wfp_core::Guid::NULL);
        assert!(matches!(
            compile_one(callout),
            Err(BootError::Action { .. })
        ));
        let app = cond(
            "ALE_APP_ID",
            MatchType::Equal,
            ConditionValue::Value(Value::ByteBlob(std::sync::Arc::from(&b"/bin/x"[..]))),
        );
        let e = compile_one(boot(
            layers::ALE_AUTH_CONNECT_V4,
            ActionType::BLOCK,
            1,
            vec![app],
        ))
        .unwrap_err();
        assert_eq!(
            (e.code(), e.name()),
            (0x8032_0002, "FWP_E_CONDITION_NOT_FOUND")
        );
        let flags = cond(
            "IP_PROTOCOL",
            MatchType::FlagsAnySet,
            ConditionValue::Value(Value::Uint8(6)),
        );
        let e = compile_one(boot(
            layers::ALE_AUTH_CONNECT_V4,
            ActionType::BLOCK,
            1,
            vec![flags],
        ));
        assert!(matches!(e, Err(BootError::Condition { .. })), "{e:?}");
        // 9 ports OR 9 addresses → 2·9 × 9 rules.
        let mut many: Vec<ConditionSpec> = (1..10)
            .map(|p| cond("IP_LOCAL_PORT", MatchType::Equal, port(p)))
            .collect();
        many.extend((1..10).map(|a| {
            cond(
                "IP_REMOTE_ADDRESS",
                MatchType::Equal,
                ConditionValue::Value(Value::Uint32(a)),
            )
        }));
        let e = compile_one(boot(
            layers::INBOUND_TRANSPORT_V4,
            ActionType::BLOCK,
            1,
            many,
        ))
        .unwrap_err();
        assert!(
            matches!(e, BootError::TooManyRules { rules: 162, .. }),
            "{e}"
        );
    }

    /// The kernel's own parser accepts the scripts (`nft -c`: checked, never applied). Skipped
    /// without `nft` or privileges.
    #[test]
    fn nft_accepts_the_generated_script() {
        let e = Engine::default();
        e.add_filter(boot(
            layers::INBOUND_TRANSPORT_V4,
            ActionType::BLOCK,
            3,
            vec![cond("IP_LOCAL_PORT", MatchType::Equal, port(8))],
        ))
        .unwrap();
        let mut hard = boot(layers::ALE_AUTH_CONNECT_V6, ActionType::PERMIT, 2, vec![]);
        hard.flags |= FilterFlags::CLEAR_ACTION_RIGHT;
        e.add_filter(hard).unwrap();
        e.add_filter(boot(
            layers::IPFORWARD_V4,
            ActionType::BLOCK,
            1,
            vec![cond(
                "IP_SOURCE_ADDRESS",
                MatchType::Equal,
                ConditionValue::V4AddrMask {
                    addr: 0x0A00_0001,
                    mask: 0xFF00_FF00,
                },
            )],
        ))
        .unwrap();
        let text = script_of(&e).unwrap();
        assert!(
            text.contains("ip saddr & 255.0.255.0 == 10.0.0.0"),
            "{text}"
        );
        let check = std::process::Command::new("nft")
            .args(["-c", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = check else {
            eprintln!("skipped: no nft");
            return;
        };
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("Operation not permitted") {
            eprintln!("skipped: {err}");
            return;
        }
        assert!(out.status.success(), "{err}\n{text}");
    }
}
