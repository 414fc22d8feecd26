//! Installs and removes the iptables rules that send traffic to NFQUEUE, in chains of their own.
//!
//! Layout (per address family, in one table, default `filter`):
//!
//! ```text
//! INPUT   ── -j WFP_IN  ──► WFP_IN:  [matches] -j NFQUEUE --queue-num N [--queue-bypass]
//! OUTPUT  ── -j WFP_OUT ──► WFP_OUT: [matches] -j NFQUEUE --queue-balance A:B ...
//! FORWARD ── -j WFP_FWD ──► WFP_FWD: ...
//! ```
//!
//! * [`RuleSet::install`] converges to the configuration: it creates missing chains, appends the
//!   new NFQUEUE rule **before** deleting older rules of the chain (so the chain is never empty
//!   during an update), inserts the jump at position 1 only if missing, and removes the chains
//!   of hooks no longer configured. Running it twice changes nothing the second time.
//! * [`RuleSet::remove`] deletes every jump to the crate's chains (all three hooks, whatever is
//!   configured now), then flushes and deletes the chains. Missing pieces are not errors.
//!
//! **Accounting of uninspected packets** ([`RuleSet::accounting_mark`]): the kernel does not
//! count packets it lets through without asking the reader — `--queue-bypass` while no reader is
//! bound, and a full `FAIL_OPEN` queue. With a mark bit configured, each hook chain first clears
//! the bit and then queues; the reader sets the bit on every packet it accepts (a verdict with a
//! mark); and a counting rule in the `security` table (which runs after `filter`) counts the
//! packets that arrive there without the bit, i.e. accepted without a verdict:
//!
//! ```text
//! WFP_OUT:       [matches] -j MARK --set-xmark 0/BIT ; [matches] -j NFQUEUE ...
//! security OUTPUT ── -j WFP_ACCT_OUT ──► WFP_ACCT_OUT: [matches] -m mark ! --mark BIT/BIT  (count)
//! ```
//!
//! [`RuleSet::uninspected_packets`] reads that counter. It keeps counting while the reader is
//! absent, as long as the rules stay installed, and a reinstall with the same matches keeps the
//! counting rule (and its counter).
//!
//! **The reader's own packets** ([`RuleSet::self_mark`]): packets a callout injected leave through
//! a raw socket with this mark ([`crate::RawSender`]); each chain returns for them first
//! (`-m mark --mark M/M -j RETURN`), so they are not queued and classified twice.
//!
//! **MSS clamp** ([`RuleSet::clamp_mss`]): NFQUEUE copies at most 65531 bytes of a packet, and
//! loopback (MTU 65536) carries TCP segments of up to 65535; with a clamp, each chain first lowers
//! the MSS option of TCP SYNs (`-j TCPMSS --set-mss N`) so that every segment can be inspected
//! whole. Links with ordinary MTUs are unaffected (their MSS is already smaller).
//!
//! Commands are `iptables`/`ip6tables -w 5 -t TABLE ...`, prefixed with `ip netns exec NAME` when
//! [`RuleSet::netns`] is set, run through `std::process::Command` (no shell).
//!
//! This uses iptables (iptables-nft on current distributions) because the kernel the project
//! targets lacks native nft `queue` support.

use std::io;
use std::process::Command;

/// Errors of rule installation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RulesError {
    /// The rule set is not valid (bad chain prefix, table, queue range, match arguments).
    #[error("invalid rule set: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
    /// A program could not be started (not installed?).
    #[error("could not run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A command exited with a failure status.
    #[error("`{command}` failed (exit code {code:?}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit code, if it exited normally.
        code: Option<i32>,
        /// What it printed on stderr.
        stderr: String,
    },
}

/// An address family: which program manages its rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4: `iptables`.
    Ipv4,
    /// IPv6: `ip6tables`.
    Ipv6,
}

impl Family {
    fn program(self) -> &'static str {
        match self {
            Self::Ipv4 => "iptables",
            Self::Ipv6 => "ip6tables",
        }
    }
}

/// A built-in chain that jumps to one of the crate's chains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainHook {
    /// `INPUT` → `<prefix>_IN`.
    Input,
    /// `OUTPUT` → `<prefix>_OUT`.
    Output,
    /// `FORWARD` → `<prefix>_FWD`.
    Forward,
}

impl ChainHook {
    /// All hooks.
    pub const ALL: [Self; 3] = [Self::Input, Self::Output, Self::Forward];

    /// The built-in chain name.
    pub fn builtin(self) -> &'static str {
        match self {
            Self::Input => "INPUT",
            Self::Output => "OUTPUT",
            Self::Forward => "FORWARD",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Self::Input => "IN",
            Self::Output => "OUT",
            Self::Forward => "FWD",
        }
    }
}

/// Which queue(s) the rule sends packets to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueTarget {
    /// `--queue-num N`.
    Num(u16),
    /// `--queue-balance FIRST:LAST`: flows are spread over the queues by hash.
    Balance {
        /// First queue number.
        first: u16,
        /// Last queue number (inclusive, at least `first`).
        last: u16,
    },
}

impl QueueTarget {
    /// The queue numbers covered, e.g. for [`crate::spawn_workers`].
    pub fn queues(self) -> std::ops::RangeInclusive<u16> {
        match self {
            Self::Num(n) => n..=n,
            Self::Balance { first, last } => first..=last,
        }
    }
}

/// One hook to install, with extra iptables match arguments for its NFQUEUE rule (e.g.
/// `["-o", "lo", "-p", "udp", "--dport", "5353"]`). No matches: all traffic of the hook.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HookRule {
    /// The hook.
    pub hook: ChainHook,
    /// Match arguments placed before `-j NFQUEUE` (no `-j`/`-g`).
    pub matches: Vec<String>,
}

impl HookRule {
    /// A rule for `hook` with the given match arguments.
    pub fn new(hook: ChainHook, matches: &[&str]) -> Self {
        Self {
            hook,
            matches: matches.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// The rules to install. Build with [`RuleSet::new`] and adjust fields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuleSet {
    /// Run the commands inside this network namespace (`ip netns exec NAME ...`).
    pub netns: Option<String>,
    /// Address families. Default: IPv4 only.
    pub families: Vec<Family>,
    /// The table. Default `filter`.
    pub table: String,
    /// Chain name prefix. Default `WFP` (chains `WFP_IN`, `WFP_OUT`, `WFP_FWD`).
    pub chain_prefix: String,
    /// Hooks to install. Default: INPUT, OUTPUT and FORWARD, all traffic.
    pub hooks: Vec<HookRule>,
    /// The queue target.
    pub target: QueueTarget,
    /// `--queue-bypass`: if no program has the queue bound, packets **pass** instead of being
    /// dropped. Off by default (fail-closed when the daemon is absent).
    pub bypass: bool,
    /// `--queue-cpu-fanout` (with [`QueueTarget::Balance`]): pick the queue by CPU, not by flow.
    pub cpu_fanout: bool,
    /// A packet-mark bit (or mask) the reader sets on every packet it accepts. When set, the
    /// chains clear it before queueing and `security`-table chains `<prefix>_ACCT_IN/OUT/FWD`
    /// count packets accepted without it (see the module documentation). Default `None`.
    pub accounting_mark: Option<u32>,
    /// Clamp the MSS of TCP SYNs passing the chains to this value (`-j TCPMSS --set-mss`, which
    /// only ever lowers it), so that no TCP segment exceeds what NFQUEUE can deliver whole (at
    /// most 65531 bytes per packet; loopback's MTU of 65536 allows 65535). Skipped for hooks whose
    /// matches select another protocol. Default `None`.
    pub clamp_mss: Option<u16>,
    /// The reader's own packets: a packet carrying every bit of this mark (the mark of the
    /// reader's [`crate::RawSender`], which sends the packets callouts injected) returns from the
    /// chain before anything else (`-m mark --mark M/M -j RETURN`), so it is not queued — it was
    /// classified when it was injected. This is how the engine knows a packet is its own
    /// (wfp-reference §10.4, injection state "by self"). Must not share bits with
    /// [`RuleSet::accounting_mark`]. Default `None`.
    pub self_mark: Option<u32>,
}

/// The table of the accounting chains: it runs after `filter` at every hook.
const ACCOUNTING_TABLE: &str = "security";

impl RuleSet {
    /// Defaults (see each field) for `target`.
    pub fn new(target: QueueTarget) -> Self {
        Self {
            netns: None,
            families: vec![Family::Ipv4],
            table: "filter".to_owned(),
            chain_prefix: "WFP".to_owned(),
            hooks: ChainHook::ALL
                .iter()
                .map(|&hook| HookRule::new(hook, &[]))
                .collect(),
            target,
            bypass: false,
            cpu_fanout: false,
            accounting_mark: None,
            clamp_mss: None,
            self_mark: None,
        }
    }

    /// Installs (or updates) the rules. Idempotent; see the module documentation.
    pub fn install(&self) -> Result<(), RulesError> {
        self.install_with(&mut SystemRunner)
    }

    /// Removes every rule and chain this rule set's prefix owns. Idempotent.
    pub fn remove(&self) -> Result<(), RulesError> {
        self.remove_with(&mut SystemRunner)
    }

    /// True if every configured hook jumps to its chain in every family.
    pub fn is_installed(&self) -> Result<bool, RulesError> {
        self.validate()?;
        let mut runner = SystemRunner;
        for &family in &self.families {
            for rule in &self.hooks {
                let chain = self.chain_name(rule.hook);
                if !self.try_run(
                    &mut runner,
                    family,
                    &["-C", rule.hook.builtin(), "-j", &chain],
                )? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Checks the rule set (prefix, table, queue range, match arguments, namespace name) without
    /// running anything: what [`RuleSet::install`] would reject.
    pub fn check(&self) -> Result<(), RulesError> {
        self.validate()
    }

    /// The crate's chain for `hook`, e.g. `WFP_OUT`.
    pub fn chain_name(&self, hook: ChainHook) -> String {
        format!("{}_{}", self.chain_prefix, hook.suffix())
    }

    /// The accounting chain for `hook` in the `security` table, e.g. `WFP_ACCT_OUT`.
    pub fn accounting_chain_name(&self, hook: ChainHook) -> String {
        format!("{}_ACCT_{}", self.chain_prefix, hook.suffix())
    }

    /// Packets accepted without a reader's verdict so far (summed over hooks and families), as
    /// counted by the accounting chains; `None` when [`RuleSet::accounting_mark`] is not set.
    /// Missing chains count as 0.
    pub fn uninspected_packets(&self) -> Result<Option<u64>, RulesError> {
        self.uninspected_with(&mut SystemRunner)
    }

    pub(crate) fn uninspected_with(
        &self,
        runner: &mut dyn Runner,
    ) -> Result<Option<u64>, RulesError> {
        self.validate()?;
        if self.accounting_mark.is_none() {
            return Ok(None);
        }
        let mut total = 0u64;
        for &family in &self.families {
            for rule in &self.hooks {
                let chain = self.accounting_chain_name(rule.hook);
                let argv = self.argv_in(ACCOUNTING_TABLE, family, &["-S", &chain, "-v"]);
                let ran = runner.run(&argv)?;
                if !ran.success {
                    continue;
                }
                total = total.saturating_add(sum_rule_packets(&ran.stdout));
            }
        }
        Ok(Some(total))
    }

    /// The arguments after `-j NFQUEUE`.
    pub fn target_args(&self) -> Vec<String> {
        let mut args = match self.target {
            QueueTarget::Num(n) => vec!["--queue-num".to_owned(), n.to_string()],
            QueueTarget::Balance { first, last } if first == last => {
                vec!["--queue-num".to_owned(), first.to_string()]
            }
            QueueTarget::Balance { first, last } => {
                vec!["--queue-balance".to_owned(), format!("{first}:{last}")]
            }
        };
        if self.bypass {
            args.push("--queue-bypass".to_owned());
        }
        if self.cpu_fanout
            && matches!(self.target, QueueTarget::Balance { first, last } if first < last)
        {
            args.push("--queue-cpu-fanout".to_owned());
        }
        args
    }

    fn validate(&self) -> Result<(), RulesError> {
        let invalid = |reason: &str| RulesError::Invalid {
            reason: reason.to_owned(),
        };
        let word = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !word(&self.chain_prefix) || self.chain_prefix.len() > 24 {
            return Err(invalid("chain_prefix must be 1-24 of A-Z a-z 0-9 _ -"));
        }
        if !word(&self.table) {
            return Err(invalid("table must be a plain word"));
        }
        if let Some(mark) = self.accounting_mark {
            if mark == 0 {
                return Err(invalid("accounting_mark must have at least one bit set"));
            }
            if self.chain_prefix.len() > 19 {
                return Err(invalid(
                    "chain_prefix must be at most 19 characters with accounting_mark",
                ));
            }
            if self.table == ACCOUNTING_TABLE {
                return Err(invalid(
                    "the security table holds the accounting chains; queue from another table",
                ));
            }
        }
        if let Some(mark) = self.self_mark {
            if mark == 0 {
                return Err(invalid("self_mark must have at least one bit set"));
            }
            if self.accounting_mark.is_some_and(|a| a & mark != 0) {
                return Err(invalid("self_mark and accounting_mark must not share bits"));
            }
        }
        if let Some(ns) = &self.netns {
            crate::netns::check_name(ns).map_err(|e| invalid(&e.to_string()))?;
        }
        if let QueueTarget::Balance { first, last } = self.target {
            if first > last {
                return Err(invalid("queue balance: first must not exceed last"));
            }
        }
        if self.families.is_empty() {
            return Err(invalid("no address family"));
        }
        for rule in &self.hooks {
            for arg in &rule.matches {
                if matches!(arg.as_str(), "-j" | "--jump" | "-g" | "--goto") || arg.contains('\0') {
                    return Err(invalid(
                        "match arguments may not contain a jump, goto or NUL",
                    ));
                }
            }
        }
        Ok(())
    }

    fn argv(&self, family: Family, args: &[&str]) -> Vec<String> {
        self.argv_in(&self.table, family, args)
    }

    fn argv_in(&self, table: &str, family: Family, args: &[&str]) -> Vec<String> {
        let mut argv = Vec::with_capacity(args.len() + 9);
        if let Some(ns) = &self.netns {
            argv.extend(["ip", "netns", "exec", ns.as_str()].map(str::to_owned));
        }
        argv.extend([family.program(), "-w", "5", "-t", table].map(str::to_owned));
        argv.extend(args.iter().map(|s| (*s).to_owned()));
        argv
    }

    /// Runs a command whose failure is an answer (e.g. `-C`): Ok(true) on success.
    fn try_run(
        &self,
        runner: &mut dyn Runner,
        family: Family,
        args: &[&str],
    ) -> Result<bool, RulesError> {
        Ok(runner.run(&self.argv(family, args))?.success)
    }

    /// Runs a command that must succeed; returns its stdout.
    fn must_run(
        &self,
        runner: &mut dyn Runner,
        family: Family,
        args: &[&str],
    ) -> Result<String, RulesError> {
        let argv = self.argv(family, args);
        let ran = runner.run(&argv)?;
        if ran.success {
            Ok(ran.stdout)
        } else {
            Err(RulesError::Command {
                command: argv.join(" "),
                code: ran.code,
                stderr: ran.stderr.trim().to_owned(),
            })
        }
    }

    /// Runs a command in `table` that must succeed.
    fn must_run_in(
        &self,
        runner: &mut dyn Runner,
        table: &str,
        family: Family,
        args: &[&str],
    ) -> Result<(), RulesError> {
        let argv = self.argv_in(table, family, args);
        let ran = runner.run(&argv)?;
        if ran.success {
            Ok(())
        } else {
            Err(RulesError::Command {
                command: argv.join(" "),
                code: ran.code,
                stderr: ran.stderr.trim().to_owned(),
            })
        }
    }

    /// The number of rules in `chain`, or `None` if the chain does not exist.
    fn rule_count(
        &self,
        runner: &mut dyn Runner,
        family: Family,
        chain: &str,
    ) -> Result<Option<usize>, RulesError> {
        self.rule_count_in(runner, &self.table, family, chain)
    }

    fn rule_count_in(
        &self,
        runner: &mut dyn Runner,
        table: &str,
        family: Family,
        chain: &str,
    ) -> Result<Option<usize>, RulesError> {
        let ran = runner.run(&self.argv_in(table, family, &["-S", chain]))?;
        if !ran.success {
            return Ok(None);
        }
        Ok(Some(
            ran.stdout
                .lines()
                .filter(|line| line.starts_with("-A "))
                .count(),
        ))
    }

    pub(crate) fn install_with(&self, runner: &mut dyn Runner) -> Result<(), RulesError> {
        self.validate()?;
        let target = self.target_args();
        for &family in &self.families {
            for rule in &self.hooks {
                let chain = self.chain_name(rule.hook);
                let old = match self.rule_count(runner, family, &chain)? {
                    Some(count) => count,
                    None => {
                        self.must_run(runner, family, &["-N", &chain])?;
                        0
                    }
                };
                if let Some(mark) = self.self_mark {
                    let own = format!("{mark:#x}/{mark:#x}");
                    self.must_run(
                        runner,
                        family,
                        &["-A", &chain, "-m", "mark", "--mark", &own, "-j", "RETURN"],
                    )?;
                }
                if let Some(mss) = self.clamp_mss {
                    if let Some(mut clamp) = mss_clamp_matches(&rule.matches) {
                        let mss = mss.to_string();
                        let mut append: Vec<&str> = vec!["-A", &chain];
                        append.append(&mut clamp);
                        append.extend(["-j", "TCPMSS", "--set-mss", &mss]);
                        self.must_run(runner, family, &append)?;
                    }
                }
                let clear = self.accounting_mark.map(|mark| format!("0x0/{mark:#x}"));
                if let Some(clear) = &clear {
                    let mut append: Vec<&str> = vec!["-A", &chain];
                    append.extend(rule.matches.iter().map(String::as_str));
                    append.extend(["-j", "MARK", "--set-xmark", clear]);
                    self.must_run(runner, family, &append)?;
                }
                let mut append: Vec<&str> = vec!["-A", &chain];
                append.extend(rule.matches.iter().map(String::as_str));
                append.extend(["-j", "NFQUEUE"]);
                append.extend(target.iter().map(String::as_str));
                self.must_run(runner, family, &append)?;
                for _ in 0..old {
                    self.must_run(runner, family, &["-D", &chain, "1"])?;
                }
                let builtin = rule.hook.builtin();
                if !self.try_run(runner, family, &["-C", builtin, "-j", &chain])? {
                    self.must_run(runner, family, &["-I", builtin, "1", "-j", &chain])?;
                }
            }
            // Hooks no longer configured lose their chains.
            for hook in ChainHook::ALL {
                if !self.hooks.iter().any(|rule| rule.hook == hook) {
                    self.remove_hook(runner, family, hook)?;
                }
            }
            self.install_accounting(runner, family)?;
        }
        Ok(())
    }

    /// Installs (or, without a mark, removes) the accounting chains of one family.
    fn install_accounting(
        &self,
        runner: &mut dyn Runner,
        family: Family,
    ) -> Result<(), RulesError> {
        let Some(mark) = self.accounting_mark else {
            for hook in ChainHook::ALL {
                self.remove_accounting(runner, family, hook)?;
            }
            return Ok(());
        };
        let mask = format!("{mark:#x}/{mark:#x}");
        let table = ACCOUNTING_TABLE;
        for rule in &self.hooks {
            let chain = self.accounting_chain_name(rule.hook);
            let mut spec: Vec<&str> = rule.matches.iter().map(String::as_str).collect();
            spec.extend(["-m", "mark", "!", "--mark", &mask]);
            let old = match self.rule_count_in(runner, table, family, &chain)? {
                Some(count) => count,
                None => {
                    self.must_run_in(runner, table, family, &["-N", &chain])?;
                    0
                }
            };
            // An identical counting rule stays, with its counter (it counts while the reader is
            // absent; a restart must not lose that).
            let mut check = vec!["-C", chain.as_str()];
            check.extend(spec.iter().copied());
            let keep = old == 1 && runner.run(&self.argv_in(table, family, &check))?.success;
            if !keep {
                let mut append = vec!["-A", chain.as_str()];
                append.extend(spec.iter().copied());
                self.must_run_in(runner, table, family, &append)?;
                for _ in 0..old {
                    self.must_run_in(runner, table, family, &["-D", &chain, "1"])?;
                }
            }
            let builtin = rule.hook.builtin();
            let jump = self.argv_in(table, family, &["-C", builtin, "-j", &chain]);
            if !runner.run(&jump)?.success {
                self.must_run_in(runner, table, family, &["-I", builtin, "1", "-j", &chain])?;
            }
        }
        for hook in ChainHook::ALL {
            if !self.hooks.iter().any(|rule| rule.hook == hook) {
                self.remove_accounting(runner, family, hook)?;
            }
        }
        Ok(())
    }

    fn remove_accounting(
        &self,
        runner: &mut dyn Runner,
        family: Family,
        hook: ChainHook,
    ) -> Result<(), RulesError> {
        let table = ACCOUNTING_TABLE;
        let chain = self.accounting_chain_name(hook);
        let builtin = hook.builtin();
        for _ in 0..64 {
            let check = self.argv_in(table, family, &["-C", builtin, "-j", &chain]);
            if !runner.run(&check)?.success {
                break;
            }
            self.must_run_in(runner, table, family, &["-D", builtin, "-j", &chain])?;
        }
        if self.rule_count_in(runner, table, family, &chain)?.is_some() {
            self.must_run_in(runner, table, family, &["-F", &chain])?;
            self.must_run_in(runner, table, family, &["-X", &chain])?;
        }
        Ok(())
    }

    pub(crate) fn remove_with(&self, runner: &mut dyn Runner) -> Result<(), RulesError> {
        self.validate()?;
        for &family in &self.families {
            for hook in ChainHook::ALL {
                self.remove_hook(runner, family, hook)?;
                self.remove_accounting(runner, family, hook)?;
            }
        }
        Ok(())
    }

    fn remove_hook(
        &self,
        runner: &mut dyn Runner,
        family: Family,
        hook: ChainHook,
    ) -> Result<(), RulesError> {
        let chain = self.chain_name(hook);
        let builtin = hook.builtin();
        // Bounded: someone may have added the same jump several times.
        for _ in 0..64 {
            if !self.try_run(runner, family, &["-C", builtin, "-j", &chain])? {
                break;
            }
            self.must_run(runner, family, &["-D", builtin, "-j", &chain])?;
        }
        if self.rule_count(runner, family, &chain)?.is_some() {
            self.must_run(runner, family, &["-F", &chain])?;
            self.must_run(runner, family, &["-X", &chain])?;
        }
        Ok(())
    }
}

/// The match arguments of the MSS clamp rule for a hook with `matches`: theirs plus a TCP SYN
/// match, or `None` when they select a protocol other than TCP.
fn mss_clamp_matches(matches: &[String]) -> Option<Vec<&str>> {
    let mut out: Vec<&str> = matches.iter().map(String::as_str).collect();
    let protocol = matches
        .iter()
        .position(|m| m == "-p" || m == "--protocol")
        .and_then(|at| matches.get(at + 1));
    match protocol.map(|p| p.to_ascii_lowercase()) {
        None => out.extend(["-p", "tcp"]),
        Some(p) if p == "tcp" || p == "6" => {}
        Some(_) => return None,
    }
    out.extend(["--tcp-flags", "SYN,RST", "SYN"]);
    Some(out)
}

/// The sum of the packet counters (`-c PACKETS BYTES`) of the rules in `iptables -S CHAIN -v`
/// output. Lines without a readable counter count 0.
fn sum_rule_packets(listing: &str) -> u64 {
    listing
        .lines()
        .filter(|line| line.starts_with("-A "))
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words.iter().rposition(|w| *w == "-c")?;
            words.get(at + 1)?.parse::<u64>().ok()
        })
        .fold(0u64, u64::saturating_add)
}

/// What a command did.
pub(crate) struct Ran {
    pub(crate) success: bool,
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs a command line (the test seam for rule logic).
pub(crate) trait Runner {
    /// Runs `argv[0]` with `argv[1..]`.
    fn run(&mut self, argv: &[String]) -> Result<Ran, RulesError>;
}

/// Runs commands with `std::process::Command`.
struct SystemRunner;

impl Runner for SystemRunner {
    fn run(&mut self, argv: &[String]) -> Result<Ran, RulesError> {
        let Some((program, args)) = argv.split_first() else {
            return Err(RulesError::Invalid {
                reason: "empty command".to_owned(),
            });
        };
        let output = Command::new(program)
            .args(args)
            .output()
            .map_err(|source| RulesError::Spawn {
                program: program.clone(),
                source,
            })?;
        Ok(Ran {
            success: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A tiny model of one iptables table: chain → rules (as argument strings).
    #[derive(Default)]
    struct FakeTables {
        chains: BTreeMap<String, Vec<String>>,
        log: Vec<String>,
    }

    impl FakeTables {
        fn new() -> Self {
            let mut tables = Self::default();
            for builtin in ["INPUT", "OUTPUT", "FORWARD"] {
                tables.chains.insert(builtin.to_owned(), Vec::new());
            }
            tables
        }
    }

    impl Runner for FakeTables {
        fn run(&mut self, argv: &[String]) -> Result<Ran, RulesError> {
            self.log.push(argv.join(" "));
            let start = argv.iter().position(|a| a == "-t").expect("-t") + 2;
            let args: Vec<&str> = argv[start..].iter().map(String::as_str).collect();
            let ok = |stdout: String| Ran {
                success: true,
                code: Some(0),
                stdout,
                stderr: String::new(),
            };
            let fail = Ran {
                success: false,
                code: Some(1),
                stdout: String::new(),
                stderr: "No chain/target/match by that name.".to_owned(),
            };
            let chain = args[1].to_owned();
            let rest = args[2..].join(" ");
            Ok(match args[0] {
                "-S" => match self.chains.get(&chain) {
                    Some(rules) => ok(std::iter::once(format!("-N {chain}"))
                        .chain(rules.iter().map(|r| format!("-A {chain} {r}")))
                        .collect::<Vec<_>>()
                        .join("\n")),
                    None => fail,
                },
                "-N" if !self.chains.contains_key(&chain) => {
                    self.chains.insert(chain, Vec::new());
                    ok(String::new())
                }
                "-A" => match self.chains.get_mut(&chain) {
                    Some(rules) => {
                        rules.push(rest);
                        ok(String::new())
                    }
                    None => fail,
                },
                "-I" => {
                    let rules = self.chains.get_mut(&chain).expect("builtin");
                    rules.insert(0, args[3..].join(" "));
                    ok(String::new())
                }
                "-C" if self.chains[&chain].contains(&rest) => ok(String::new()),
                "-D" if rest == "1" => {
                    self.chains.get_mut(&chain).expect("chain").remove(0);
                    ok(String::new())
                }
                "-D" => {
                    let rules = self.chains.get_mut(&chain).expect("chain");
                    match rules.iter().position(|r| *r == rest) {
                        Some(at) => {
                            rules.remove(at);
                            ok(String::new())
                        }
                        None => fail,
                    }
                }
                "-F" => {
                    self.chains.get_mut(&chain).expect("chain").clear();
                    ok(String::new())
                }
                "-X" => {
                    self.chains.remove(&chain);
                    ok(String::new())
                }
                _ => fail,
            })
        }
    }

    fn output_only() -> RuleSet {
        let mut rules = RuleSet::new(QueueTarget::Num(3));
        rules.hooks = vec![HookRule::new(
            ChainHook::Output,
            &["-o", "lo", "-p", "udp", "--dport", "9"],
        )];
        rules.netns = Some("wfpnq-1-0".to_owned());
        rules
    }

    #[test]
    fn install_is_idempotent_and_remove_cleans_up() {
        let mut tables = FakeTables::new();
        let rules = output_only();
        rules.install_with(&mut tables).expect("install");
        let after_first = tables.chains.clone();
        assert_eq!(
            after_first["WFP_OUT"],
            vec!["-o lo -p udp --dport 9 -j NFQUEUE --queue-num 3"]
        );
        assert_eq!(after_first["OUTPUT"], vec!["-j WFP_OUT"]);
        assert!(!after_first.contains_key("WFP_IN"));
        assert!(tables.log[0].starts_with("ip netns exec wfpnq-1-0 iptables -w 5 -t filter -S"));

        rules.install_with(&mut tables).expect("again");
        assert_eq!(tables.chains, after_first, "second install changes nothing");

        rules.remove_with(&mut tables).expect("remove");
        assert_eq!(tables.chains, FakeTables::new().chains);
        rules.remove_with(&mut tables).expect("remove twice");
    }

    /// §10.4 "by self": the reader's own (injected) packets return before anything else.
    #[test]
    fn self_marked_packets_return_before_the_queue_rule() {
        let mut tables = FakeTables::new();
        let mut rules = output_only();
        rules.self_mark = Some(0x2000_0000);
        rules.accounting_mark = Some(0x4000_0000);
        rules.install_with(&mut tables).expect("install");
        let out = tables.chains["WFP_OUT"].clone();
        assert_eq!(out[0], "-m mark --mark 0x20000000/0x20000000 -j RETURN");
        assert!(
            out.last().is_some_and(|r| r.contains("-j NFQUEUE")),
            "{out:?}"
        );
        rules.install_with(&mut tables).expect("again");
        assert_eq!(tables.chains["WFP_OUT"], out, "idempotent");
        rules.self_mark = Some(0x4000_0001);
        assert!(
            matches!(rules.check(), Err(RulesError::Invalid { .. })),
            "shared bits"
        );
        rules.self_mark = Some(0);
        assert!(rules.check().is_err(), "no bit");
    }

    #[test]
    fn reinstall_replaces_the_rule_and_drops_unconfigured_hooks() {
        let mut tables = FakeTables::new();
        let mut rules = RuleSet::new(QueueTarget::Balance { first: 0, last: 3 });
        rules.bypass = true;
        rules.cpu_fanout = true;
        rules.install_with(&mut tables).expect("install all");
        for chain in ["WFP_IN", "WFP_OUT", "WFP_FWD"] {
            assert_eq!(
                tables.chains[chain],
                vec!["-j NFQUEUE --queue-balance 0:3 --queue-bypass --queue-cpu-fanout"]
            );
        }
        let mut narrower = output_only();
        narrower.netns = None;
        narrower.install_with(&mut tables).expect("update");
        assert_eq!(
            tables.chains["WFP_OUT"],
            vec!["-o lo -p udp --dport 9 -j NFQUEUE --queue-num 3"]
        );
        assert!(!tables.chains.contains_key("WFP_IN"));
        assert!(!tables.chains.contains_key("WFP_FWD"));
        assert!(tables.chains["INPUT"].is_empty());
        // The new rule was appended before the old one was deleted.
        let append = tables
            .log
            .iter()
            .rposition(|l| l.contains("-A WFP_OUT"))
            .expect("append");
        let delete = tables
            .log
            .iter()
            .rposition(|l| l.ends_with("-D WFP_OUT 1"))
            .expect("delete");
        assert!(append < delete);
    }

    #[test]
    fn accounting_chains_follow_the_mark_setting() {
        let mut tables = FakeTables::new();
        let mut rules = output_only();
        rules.accounting_mark = Some(0x4000_0000);
        rules.install_with(&mut tables).expect("install");
        let m = "-o lo -p udp --dport 9";
        assert_eq!(
            tables.chains["WFP_OUT"],
            vec![
                format!("{m} -j MARK --set-xmark 0x0/0x40000000"),
                format!("{m} -j NFQUEUE --queue-num 3"),
            ]
        );
        assert_eq!(
            tables.chains["WFP_ACCT_OUT"],
            vec![format!("{m} -m mark ! --mark 0x40000000/0x40000000")]
        );
        assert!(tables
            .log
            .iter()
            .any(|l| l.contains("iptables -w 5 -t security -N WFP_ACCT_OUT")));
        let first = tables.chains.clone();
        let appends = |t: &FakeTables| {
            t.log
                .iter()
                .filter(|l| l.contains("-A WFP_ACCT_OUT"))
                .count()
        };
        let before = appends(&tables);
        rules.install_with(&mut tables).expect("again");
        assert_eq!(tables.chains, first, "idempotent");
        assert_eq!(
            appends(&tables),
            before,
            "the counting rule (and its counter) is kept"
        );
        assert_eq!(rules.uninspected_with(&mut tables).expect("count"), Some(0));

        rules.accounting_mark = None;
        rules.install_with(&mut tables).expect("without accounting");
        assert!(!tables.chains.contains_key("WFP_ACCT_OUT"));
        assert_eq!(
            tables.chains["WFP_OUT"],
            vec![format!("{m} -j NFQUEUE --queue-num 3")]
        );
        assert_eq!(rules.uninspected_with(&mut tables).expect("count"), None);
        rules.accounting_mark = Some(1);
        rules.install_with(&mut tables).expect("with again");
        rules.remove_with(&mut tables).expect("remove");
        assert_eq!(tables.chains, FakeTables::new().chains);

        rules.chain_prefix = "P".repeat(20);
        assert!(rules.install_with(&mut tables).is_err(), "prefix too long");
    }

    #[test]
    fn mss_clamp_precedes_the_queue_rule_where_tcp_can_match() {
        let mut tables = FakeTables::new();
        let mut rules = RuleSet::new(QueueTarget::Num(0));
        rules.clamp_mss = Some(65000);
        rules.hooks = vec![
            HookRule::new(ChainHook::Output, &["-o", "lo"]),
            HookRule::new(ChainHook::Input, &["-p", "udp"]),
            HookRule::new(ChainHook::Forward, &["-p", "tcp", "--dport", "80"]),
        ];
        rules.install_with(&mut tables).expect("install");
        assert_eq!(
            tables.chains["WFP_OUT"],
            vec![
                "-o lo -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 65000",
                "-o lo -j NFQUEUE --queue-num 0",
            ]
        );
        assert_eq!(
            tables.chains["WFP_IN"],
            vec!["-p udp -j NFQUEUE --queue-num 0"]
        );
        assert_eq!(
            tables.chains["WFP_FWD"][0],
            "-p tcp --dport 80 --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 65000"
        );
    }

    #[test]
    fn rule_counters_are_summed() {
        let listing = "-N WFP_ACCT_OUT\n\
                       -A WFP_ACCT_OUT -o lo -m mark ! --mark 0x1/0x1 -c 5 145\n\
                       -A WFP_ACCT_OUT -o lo -c 7 1\n\
                       -A WFP_ACCT_OUT -c x y\n";
        assert_eq!(sum_rule_packets(listing), 12);
        assert_eq!(sum_rule_packets(""), 0);
    }

    #[test]
    fn invalid_rule_sets_are_rejected() {
        let mut tables = FakeTables::new();
        let mut rules = output_only();
        rules.hooks[0].matches.push("-j".to_owned());
        assert!(matches!(
            rules.install_with(&mut tables),
            Err(RulesError::Invalid { .. })
        ));
        let mut rules = output_only();
        rules.chain_prefix = "A B".to_owned();
        assert!(rules.install_with(&mut tables).is_err());
        let mut rules = output_only();
        rules.target = QueueTarget::Balance { first: 4, last: 2 };
        assert!(rules.install_with(&mut tables).is_err());
        let mut rules = output_only();
        rules.netns = Some("../x".to_owned());
        assert!(rules.install_with(&mut tables).is_err());
        assert!(tables.log.is_empty(), "nothing was run");
    }

    #[test]
    fn target_arguments() {
        let mut rules = RuleSet::new(QueueTarget::Balance { first: 2, last: 2 });
        assert_eq!(rules.target_args(), vec!["--queue-num", "2"]);
        rules.target = QueueTarget::Balance { first: 2, last: 5 };
        assert_eq!(rules.target_args(), vec!["--queue-balance", "2:5"]);
        assert_eq!(rules.target.queues().count(), 4);
        rules.family_check();
    }

    impl RuleSet {
        fn family_check(&self) {
            assert_eq!(Family::Ipv6.program(), "ip6tables");
            assert_eq!(self.argv(Family::Ipv4, &["-S"])[0], "iptables");
        }
    }
}
