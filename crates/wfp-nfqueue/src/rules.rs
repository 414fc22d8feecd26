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
}

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

    /// The crate's chain for `hook`, e.g. `WFP_OUT`.
    pub fn chain_name(&self, hook: ChainHook) -> String {
        format!("{}_{}", self.chain_prefix, hook.suffix())
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
        let mut argv = Vec::with_capacity(args.len() + 9);
        if let Some(ns) = &self.netns {
            argv.extend(["ip", "netns", "exec", ns.as_str()].map(str::to_owned));
        }
        argv.extend([family.program(), "-w", "5", "-t", self.table.as_str()].map(str::to_owned));
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

    /// The number of rules in `chain`, or `None` if the chain does not exist.
    fn rule_count(
        &self,
        runner: &mut dyn Runner,
        family: Family,
        chain: &str,
    ) -> Result<Option<usize>, RulesError> {
        let ran = runner.run(&self.argv(family, &["-S", chain]))?;
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
        }
        Ok(())
    }

    pub(crate) fn remove_with(&self, runner: &mut dyn Runner) -> Result<(), RulesError> {
        self.validate()?;
        for &family in &self.families {
            for hook in ChainHook::ALL {
                self.remove_hook(runner, family, hook)?;
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
