//! Flow offload in the kernel: connections whose later packets need no decision are accepted by a
//! rule placed before the queue rule, and one rule update per hook revokes them all
//! (`docs/offload.md`).
//!
//! # Mark encoding ([`OffloadMarks`])
//!
//! A contiguous mask of packet/connection mark bits is reserved (default `0x00ff0000`); the bits
//! outside it belong to other software and are never changed. Inside it, from the lowest bit:
//!
//! ```text
//!  bit 0  ORIGINAL direction, INPUT hook     bit 2  REPLY direction, INPUT hook
//!  bit 1  ORIGINAL direction, OUTPUT hook    bit 3  REPLY direction, OUTPUT hook
//!  bits 4..  the policy epoch (never 0)
//! ```
//!
//! A slot is one (conntrack direction, hook) pair: a loopback packet passes OUTPUT (the sender's
//! flow decides) and then INPUT (the receiver's flow decides), each slot set by its own decision.
//!
//! # Rules ([`OffloadRules`], per family, in the queue rules' table `filter`)
//!
//! Every nf_tables base chain a packet crosses at a hook costs far more than the expressions in
//! it, so the offload test lives in iptables' own `filter` chain, the one that holds the queue
//! jump: an offloaded packet crosses that base chain only. iptables-nft 1.8 encodes `-m mark`
//! natively but `-m conntrack`/`-m connmark` and every target but verdicts as compatibility
//! expressions, so the connection's field is copied into the packet mark once and tested there:
//!
//! ```text
//!  filter INPUT/OUTPUT  [matches] -j P_OFF_x                 (first: before the queue jump)
//!  P_OFF_x:  -j CONNMARK --restore-mark (mask)               packet field ← connection field
//!            -j P_OEP_x
//!  P_OEP_x:  -m mark --mark EPOCH/EPOCHMASK -g P_OOK_x        ← the epoch, one rule per hook
//!  P_OOK_x:  -m mark --mark SLOT/SLOT -m conntrack --ctstate ESTABLISHED --ctdir ORIGINAL -j OK
//!            -m mark --mark SLOT/SLOT -m conntrack --ctstate ESTABLISHED --ctdir REPLY    -j OK
//!  OK:       ACCEPT, or with an accounting mark P_OACC: -j MARK --set-xmark ACCT/ACCT; -j ACCEPT
//! ```
//!
//! Nothing saves a packet's mark to its connection: the reader sets the connection's field
//! itself through conntrack netlink, once per offload decision
//! ([`crate::conntrack::ConntrackSocket::set_mark`], [`OffloadMarks::mark`] gives the field),
//! after the decided packet's verdict went out. Only the offloaded packets' own slot rule runs a
//! compatibility match (the conntrack state and direction); a queued packet leaves the chain
//! with the connection's field in its mark, which the reader reads.
//!
//! **Revocation** ([`OffloadRules::switch_epoch`]) replaces `P_OEP_x`'s single rule of each hook
//! and family (one nf_tables transaction over netlink for all of them; `iptables-restore` as the
//! fallback): O(1) in the number of offloaded connections. Epochs cycle through
//! the values the field holds; a connection idle through a whole cycle would carry a current
//! epoch again, so before an epoch value is reused its stale connection marks are cleared through
//! conntrack ([`crate::conntrack::ConntrackSocket::clear_marks`]); [`Epochs`] tracks which values
//! are clean.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::rules::{ChainHook, Family, RuleSet, RulesError};

/// The default reserved mask.
pub const DEFAULT_MASK: u32 = 0x00ff_0000;

/// Slot bits in the reserved field.
const SLOT_BITS: u32 = 4;

/// A conntrack direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtDir {
    /// The direction of the connection's first packet.
    Original,
    /// The other one.
    Reply,
}

/// The hook a packet was decided at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlotHook {
    /// `INPUT`.
    Input,
    /// `OUTPUT`.
    Output,
}

/// One (direction, hook) slot of a connection's offload marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Slot {
    /// The conntrack direction of the packets.
    pub dir: CtDir,
    /// The hook.
    pub hook: SlotHook,
}

impl Slot {
    fn index(self) -> u32 {
        let d = match self.dir {
            CtDir::Original => 0,
            CtDir::Reply => 2,
        };
        let h = match self.hook {
            SlotHook::Input => 0,
            SlotHook::Output => 1,
        };
        d + h
    }
}

/// A policy epoch as stored in the marks: 1 ..= [`OffloadMarks::max_epoch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Epoch(pub u32);

/// Errors of the offload configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OffloadError {
    /// The mask is not one run of at least 6 contiguous bits.
    #[error("offload mask {mask:#010x}: need one run of at least 6 contiguous bits")]
    Mask {
        /// The mask given.
        mask: u32,
    },
    /// A rule command failed.
    #[error(transparent)]
    Rules(#[from] RulesError),
}

/// The reserved mark bits and their layout (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffloadMarks {
    mask: u32,
    shift: u32,
    width: u32,
}

impl OffloadMarks {
    /// The layout within `mask`, which must be one run of at least 6 contiguous bits (4 slot bits
    /// and at least 2 epoch bits).
    pub fn new(mask: u32) -> Result<Self, OffloadError> {
        if mask == 0 {
            return Err(OffloadError::Mask { mask });
        }
        let shift = mask.trailing_zeros();
        let width = (mask >> shift).trailing_ones();
        let run = 1u32
            .checked_shl(width)
            .map_or(u32::MAX, |b| b - 1)
            .checked_shl(shift)
            .unwrap_or(0);
        if run != mask || width < SLOT_BITS + 2 {
            return Err(OffloadError::Mask { mask });
        }
        Ok(Self { mask, shift, width })
    }

    /// The reserved mask.
    pub fn mask(&self) -> u32 {
        self.mask
    }

    /// The epoch bits.
    pub fn epoch_mask(&self) -> u32 {
        self.mask & !(((1u32 << SLOT_BITS) - 1) << self.shift)
    }

    /// The largest epoch the field holds.
    pub fn max_epoch(&self) -> u32 {
        let bits = self.width - SLOT_BITS;
        if bits >= 32 {
            u32::MAX
        } else {
            (1u32 << bits) - 1
        }
    }

    /// The epoch after `e` (1 after the largest).
    pub fn next(&self, e: Epoch) -> Epoch {
        if e.0 >= self.max_epoch() {
            Epoch(1)
        } else {
            Epoch(e.0 + 1)
        }
    }

    /// `e` in place in the mark.
    pub fn epoch_bits(&self, e: Epoch) -> u32 {
        (e.0 << (self.shift + SLOT_BITS)) & self.epoch_mask()
    }

    /// The epoch a mark carries (0: none).
    pub fn epoch_of(&self, mark: u32) -> u32 {
        (mark & self.epoch_mask()) >> (self.shift + SLOT_BITS)
    }

    /// The bit of `slot`.
    pub fn slot_bit(&self, slot: Slot) -> u32 {
        1 << (self.shift + slot.index())
    }

    /// The mark for a packet in `slot` whose flow direction may be offloaded under `epoch`, from
    /// the packet's mark `incoming` (the connection's field, restored): that field when it carries
    /// `epoch` (other slots of the connection stay set), else a fresh one; plus the slot. Bits
    /// outside the mask are kept.
    pub fn mark(&self, incoming: u32, epoch: Epoch, slot: Slot) -> u32 {
        let field = incoming & self.mask;
        let base = if field & self.epoch_mask() == self.epoch_bits(epoch) {
            field
        } else {
            self.epoch_bits(epoch)
        };
        (incoming & !self.mask) | base | self.slot_bit(slot)
    }
}

impl Default for OffloadMarks {
    fn default() -> Self {
        Self {
            mask: DEFAULT_MASK,
            shift: DEFAULT_MASK.trailing_zeros(),
            width: DEFAULT_MASK.count_ones(),
        }
    }
}

/// The offload rules of one [`RuleSet`]'s queue chains (see the module documentation).
#[derive(Clone, Debug)]
pub struct OffloadRules {
    /// The queue rules this goes with (namespace, families, prefix, INPUT/OUTPUT matches).
    pub queue: RuleSet,
    /// The mark layout.
    pub marks: OffloadMarks,
    /// The nf_tables socket of the epoch switch, once opened.
    nft: std::sync::Arc<std::sync::Mutex<Option<crate::nft::NftSocket>>>,
}

/// Runs a command line with optional standard input (the test seam).
pub(crate) trait Exec {
    /// Runs `argv` with `stdin`; Ok(true) on success. Several may run at once with `spawn`.
    fn run(&mut self, argv: &[String], stdin: Option<&str>) -> Result<(bool, String), RulesError>;
    /// Runs several command lines at once; fails if any failed.
    fn run_all(&mut self, cmds: &[(Vec<String>, String)]) -> Result<(), RulesError> {
        for (argv, input) in cmds {
            let (ok, err) = self.run(argv, Some(input))?;
            if !ok {
                return Err(command_error(argv, &err));
            }
        }
        Ok(())
    }
}

fn command_error(argv: &[String], stderr: &str) -> RulesError {
    RulesError::Command {
        command: argv.join(" "),
        code: None,
        stderr: stderr.trim().to_owned(),
    }
}

/// Runs commands with `std::process::Command`.
struct System;

impl System {
    fn spawn(argv: &[String]) -> Result<std::process::Child, RulesError> {
        let (program, args) = argv.split_first().ok_or_else(|| RulesError::Invalid {
            reason: "empty command".into(),
        })?;
        Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| RulesError::Spawn {
                program: program.clone(),
                source,
            })
    }

    fn finish(
        argv: &[String],
        mut child: std::process::Child,
        input: Option<&str>,
    ) -> Result<(bool, String), RulesError> {
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(text.as_bytes())
                .map_err(|source| RulesError::Spawn {
                    program: argv.first().cloned().unwrap_or_default(),
                    source,
                })?;
        }
        let out = child
            .wait_with_output()
            .map_err(|source| RulesError::Spawn {
                program: argv.first().cloned().unwrap_or_default(),
                source,
            })?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

impl Exec for System {
    fn run(&mut self, argv: &[String], stdin: Option<&str>) -> Result<(bool, String), RulesError> {
        let child = Self::spawn(argv)?;
        Self::finish(argv, child, stdin)
    }

    fn run_all(&mut self, cmds: &[(Vec<String>, String)]) -> Result<(), RulesError> {
        let children: Vec<_> = cmds
            .iter()
            .map(|(argv, _)| Self::spawn(argv))
            .collect::<Result<_, _>>()?;
        let mut failure = None;
        for ((argv, input), child) in cmds.iter().zip(children) {
            let (ok, err) = Self::finish(argv, child, Some(input))?;
            if !ok && failure.is_none() {
                failure = Some(command_error(argv, &err));
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

const HOOKS: [(ChainHook, SlotHook); 2] = [
    (ChainHook::Input, SlotHook::Input),
    (ChainHook::Output, SlotHook::Output),
];

/// nfproto of an nf_tables family as iptables-nft uses it.
fn nfproto(family: Family) -> u8 {
    match family {
        Family::Ipv4 => 2,
        Family::Ipv6 => 10,
    }
}

/// Chains of earlier layouts of these rules, removed at install and removal (a daemon started
/// after an upgrade finds them): (table, chain suffix).
const LEGACY_CHAINS: [(&str, &str); 5] = [
    ("filter", "OEP"),
    ("filter", "OOK"),
    ("filter", "ORF"),
    ("mangle", "ORS"),
    ("security", "OSV"),
];

impl OffloadRules {
    /// Offload rules beside `queue`'s chains with `marks`.
    pub fn new(queue: RuleSet, marks: OffloadMarks) -> Self {
        Self {
            queue,
            marks,
            nft: std::sync::Arc::default(),
        }
    }

    /// Installs (or updates) the chains with `epoch` current, and puts the jumps first in their
    /// built-in chains (before the queue chains' jumps). Idempotent. Install the queue rules
    /// first.
    pub fn install(&self, epoch: Epoch) -> Result<(), OffloadError> {
        self.install_with(&mut System, epoch)
    }

    /// Makes `epoch` current: one rule replaced per hook and family, all at once. Every
    /// connection offloaded under another epoch is queued again from its next packet. Returns how
    /// long the update took.
    ///
    /// In the calling thread's namespace (no [`RuleSet::netns`]) the rules are replaced over
    /// nf_tables netlink (the `nft` module: no program started); otherwise, or if that fails,
    /// with `iptables-restore`.
    pub fn switch_epoch(&self, epoch: Epoch) -> Result<Duration, OffloadError> {
        let start = Instant::now();
        if self.queue.netns.is_none() && self.switch_nft(epoch).is_ok() {
            return Ok(start.elapsed());
        }
        self.switch_with(&mut System, epoch)?;
        Ok(start.elapsed())
    }

    /// The epoch switch over nf_tables netlink: every hook's epoch rule of every family in one
    /// transaction, on a socket kept open between switches (opened in the calling thread's
    /// namespace at the first).
    fn switch_nft(&self, epoch: Epoch) -> Result<(), crate::nft::NftError> {
        let chains: Vec<(u8, String)> = self
            .queue
            .families
            .iter()
            .flat_map(|&f| self.hooks().map(move |(hook, _)| (f, hook)))
            .map(|(f, hook)| (nfproto(f), self.chain(&format!("OEP_{}", suffix(hook)))))
            .collect();
        let targets: Vec<(u8, &str, &str)> = chains
            .iter()
            .map(|(f, c)| (*f, "filter", c.as_str()))
            .collect();
        self.with_nft(|socket| socket.set_cmp_values(&targets, self.marks.epoch_bits(epoch)))
    }

    /// Runs `f` on the kept-open nf_tables socket (opening it first); a failure drops the socket.
    fn with_nft(
        &self,
        f: impl FnOnce(&mut crate::nft::NftSocket) -> Result<(), crate::nft::NftError>,
    ) -> Result<(), crate::nft::NftError> {
        let mut slot = self
            .nft
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let socket = match slot.as_mut() {
            Some(s) => s,
            None => slot.insert(crate::nft::NftSocket::open()?),
        };
        let result = f(socket);
        if result.is_err() {
            // A fresh socket next time (a failed exchange may leave answers behind).
            *slot = None;
        }
        result
    }

    /// Removes the jumps and chains (and those of earlier layouts). Idempotent. The
    /// connections' marks stay; the next install must use an epoch whose stale marks were
    /// cleared.
    pub fn remove(&self) -> Result<(), OffloadError> {
        self.remove_with(&mut System)
    }

    /// The configured hooks among INPUT and OUTPUT, with their slot hook.
    fn hooks(&self) -> impl Iterator<Item = (ChainHook, SlotHook)> + '_ {
        HOOKS
            .into_iter()
            .filter(|(hook, _)| self.queue.hooks.iter().any(|r| r.hook == *hook))
    }

    fn chain(&self, name: &str) -> String {
        format!("{}_{name}", self.queue.chain_prefix)
    }

    fn argv(&self, program: &str, args: &[&str]) -> Vec<String> {
        let mut argv = Vec::new();
        if let Some(ns) = &self.queue.netns {
            // nsenter is lighter than `ip netns exec` (no mount namespace): it matters for the
            // revocation's latency.
            argv.extend(["nsenter".to_owned(), format!("--net=/run/netns/{ns}")]);
        }
        argv.push(program.to_owned());
        argv.extend(["-w", "5"].map(str::to_owned));
        argv.extend(args.iter().map(|s| (*s).to_owned()));
        argv
    }

    fn restore_program(family: Family) -> &'static str {
        match family {
            Family::Ipv4 => "iptables-restore",
            Family::Ipv6 => "ip6tables-restore",
        }
    }

    fn program(family: Family) -> &'static str {
        match family {
            Family::Ipv4 => "iptables",
            Family::Ipv6 => "ip6tables",
        }
    }

    /// The one rule of `P_OEP_x` (`hook`): the epoch test.
    fn epoch_rule(&self, epoch: Epoch, hook: ChainHook) -> String {
        let m = &self.marks;
        format!(
            "-m mark --mark {:#x}/{:#x} -g {}",
            m.epoch_bits(epoch),
            m.epoch_mask(),
            self.chain(&format!("OOK_{}", suffix(hook)))
        )
    }

    /// The `iptables-restore --noflush` input that (re)creates every chain's content.
    pub(crate) fn chains_script(&self, epoch: Epoch) -> String {
        let m = &self.marks;
        let mask = format!("{:#x}", m.mask());
        let mut s = String::from("*filter\n");
        let ok = match self.queue.accounting_mark {
            Some(acct) => {
                let oacc = self.chain("OACC");
                s += &format!(
                    ":{oacc} - [0:0]\n-A {oacc} -j MARK --set-xmark {acct:#x}/{acct:#x}\n\
                     -A {oacc} -j ACCEPT\n"
                );
                oacc
            }
            None => "ACCEPT".to_owned(),
        };
        for (hook, slot_hook) in self.hooks() {
            let x = suffix(hook);
            let (off, oep, ook) = (
                self.chain(&format!("OFF_{x}")),
                self.chain(&format!("OEP_{x}")),
                self.chain(&format!("OOK_{x}")),
            );
            s += &format!(":{off} - [0:0]\n:{oep} - [0:0]\n:{ook} - [0:0]\n");
            s += &format!(
                "-A {off} -j CONNMARK --restore-mark --nfmask {mask} --ctmask {mask}\n\
                 -A {off} -j {oep}\n-A {oep} {}\n",
                self.epoch_rule(epoch, hook)
            );
            for (dir, name) in [(CtDir::Original, "ORIGINAL"), (CtDir::Reply, "REPLY")] {
                let bit = m.slot_bit(Slot {
                    dir,
                    hook: slot_hook,
                });
                s += &format!(
                    "-A {ook} -m mark --mark {bit:#x}/{bit:#x} -m conntrack --ctstate \
                     ESTABLISHED --ctdir {name} -j {ok}\n"
                );
            }
        }
        s + "COMMIT\n"
    }

    /// The jumps: (built-in chain of `filter`, rule arguments without `-A CHAIN`).
    fn jumps(&self) -> Vec<(&'static str, Vec<String>)> {
        let mut out = Vec::new();
        for (hook, _) in self.hooks() {
            let Some(rule) = self.queue.hooks.iter().find(|r| r.hook == hook) else {
                continue;
            };
            let mut args = rule.matches.clone();
            args.push("-j".to_owned());
            args.push(self.chain(&format!("OFF_{}", suffix(hook))));
            out.push((hook.builtin(), args));
        }
        out
    }

    /// The jumps of earlier layouts: (table, built-in chain, rule arguments).
    fn legacy_jumps(&self) -> Vec<(&'static str, &'static str, Vec<String>)> {
        let mut out = Vec::new();
        for (hook, _) in HOOKS {
            let Some(rule) = self.queue.hooks.iter().find(|r| r.hook == hook) else {
                continue;
            };
            let b = hook.builtin();
            let mut established = rule.matches.clone();
            established
                .extend(["-m", "conntrack", "--ctstate", "ESTABLISHED", "-j"].map(str::to_owned));
            established.push(self.chain(&format!("OFF_{}", suffix(hook))));
            out.push(("filter", b, established));
            let mut orf = rule.matches.clone();
            orf.extend(["-j".to_owned(), self.chain("ORF")]);
            out.push(("filter", b, orf));
            if let Some(acct) = self.queue.accounting_mark {
                let mut accept = rule.matches.clone();
                accept.extend(["-m", "mark", "--mark"].map(str::to_owned));
                accept.push(format!("{acct:#x}/{acct:#x}"));
                accept.extend(["-j".to_owned(), "ACCEPT".to_owned()]);
                out.push(("filter", b, accept));
            }
            out.push(("mangle", b, vec!["-j".into(), self.chain("ORS")]));
            out.push(("security", b, vec!["-j".into(), self.chain("OSV")]));
        }
        out
    }

    pub(crate) fn install_with(
        &self,
        exec: &mut dyn Exec,
        epoch: Epoch,
    ) -> Result<(), OffloadError> {
        self.queue.check()?;
        self.remove_legacy(exec)?;
        let script = self.chains_script(epoch);
        for &family in &self.queue.families {
            let argv = self.argv(Self::restore_program(family), &["--noflush"]);
            let (ok, err) = exec.run(&argv, Some(&script))?;
            if !ok {
                return Err(command_error(&argv, &err).into());
            }
            for (builtin, args) in self.jumps() {
                self.insert_first(exec, family, ("filter", builtin), &args)?;
            }
        }
        Ok(())
    }

    /// Deletes any copy of `args` in `builtin` and inserts it first.
    fn insert_first(
        &self,
        exec: &mut dyn Exec,
        family: Family,
        (table, builtin): (&'static str, &'static str),
        args: &[String],
    ) -> Result<(), OffloadError> {
        self.delete_jump(exec, family, (table, builtin), args)?;
        let mut insert: Vec<&str> = vec!["-t", table, "-I", builtin, "1"];
        insert.extend(args.iter().map(String::as_str));
        let argv = self.argv(Self::program(family), &insert);
        let (ok, err) = exec.run(&argv, None)?;
        if !ok {
            return Err(command_error(&argv, &err).into());
        }
        Ok(())
    }

    /// Deletes every copy of a jump (bounded).
    fn delete_jump(
        &self,
        exec: &mut dyn Exec,
        family: Family,
        (table, builtin): (&str, &str),
        args: &[String],
    ) -> Result<(), OffloadError> {
        for _ in 0..16 {
            let mut delete: Vec<&str> = vec!["-t", table, "-D", builtin];
            delete.extend(args.iter().map(String::as_str));
            let (ok, _) = exec.run(&self.argv(Self::program(family), &delete), None)?;
            if !ok {
                break;
            }
        }
        Ok(())
    }

    pub(crate) fn switch_with(
        &self,
        exec: &mut dyn Exec,
        epoch: Epoch,
    ) -> Result<(), OffloadError> {
        let mut script = String::from("*filter\n");
        for (hook, _) in self.hooks() {
            let oep = self.chain(&format!("OEP_{}", suffix(hook)));
            script += &format!("-R {oep} 1 {}\n", self.epoch_rule(epoch, hook));
        }
        script += "COMMIT\n";
        let cmds: Vec<(Vec<String>, String)> = self
            .queue
            .families
            .iter()
            .map(|&f| {
                (
                    self.argv(Self::restore_program(f), &["--noflush"]),
                    script.clone(),
                )
            })
            .collect();
        exec.run_all(&cmds)?;
        Ok(())
    }

    /// Flushes, then deletes, `chains` ((table, chain) pairs) of `family` (missing ones are
    /// fine; a chain still referenced stays).
    fn drop_chains(
        &self,
        exec: &mut dyn Exec,
        family: Family,
        chains: &[(&str, String)],
    ) -> Result<(), OffloadError> {
        let p = Self::program(family);
        for (table, c) in chains {
            let _ = exec.run(&self.argv(p, &["-t", table, "-F", c]), None)?;
        }
        for (table, c) in chains {
            let _ = exec.run(&self.argv(p, &["-t", table, "-X", c]), None)?;
        }
        Ok(())
    }

    /// Removes what earlier layouts installed (their jumps, chains, and the `inet` table of the
    /// nf_tables form), if present.
    fn remove_legacy(&self, exec: &mut dyn Exec) -> Result<(), OffloadError> {
        let mut nft = Vec::new();
        if let Some(ns) = &self.queue.netns {
            nft.extend(["nsenter".to_owned(), format!("--net=/run/netns/{ns}")]);
        }
        let table = self.chain("OFFLOAD");
        nft.extend(["nft", "delete", "table", "inet", &table].map(str::to_owned));
        // Absent `nft` or table: nothing to remove.
        let _ = exec.run(&nft, None);
        let chains: Vec<(&str, String)> = LEGACY_CHAINS
            .iter()
            .map(|(t, c)| (*t, self.chain(c)))
            .collect();
        for &family in &self.queue.families {
            for (table, builtin, args) in self.legacy_jumps() {
                self.delete_jump(exec, family, (table, builtin), &args)?;
            }
            self.drop_chains(exec, family, &chains)?;
        }
        Ok(())
    }

    pub(crate) fn remove_with(&self, exec: &mut dyn Exec) -> Result<(), OffloadError> {
        self.queue.check()?;
        self.remove_legacy(exec)?;
        let mut chains: Vec<(&str, String)> = Vec::new();
        for (hook, _) in HOOKS {
            for part in ["OFF", "OEP", "OOK"] {
                chains.push(("filter", self.chain(&format!("{part}_{}", suffix(hook)))));
            }
        }
        chains.push(("filter", self.chain("OACC")));
        for &family in &self.queue.families {
            for (hook, _) in HOOKS {
                let Some(rule) = self.queue.hooks.iter().find(|r| r.hook == hook) else {
                    continue;
                };
                let mut args = rule.matches.clone();
                args.push("-j".to_owned());
                args.push(self.chain(&format!("OFF_{}", suffix(hook))));
                self.delete_jump(exec, family, ("filter", hook.builtin()), &args)?;
            }
            self.drop_chains(exec, family, &chains)?;
        }
        Ok(())
    }
}

fn suffix(hook: ChainHook) -> &'static str {
    match hook {
        ChainHook::Input => "IN",
        ChainHook::Output => "OUT",
        ChainHook::Forward => "FWD",
    }
}

/// Which epoch values are current, and which may be used next: a value is usable once the
/// connection marks left from its last use were cleared ([`Epochs::cleaned`]).
#[derive(Clone, Debug)]
pub struct Epochs {
    marks: OffloadMarks,
    current: Epoch,
    /// The next value, and whether its stale marks were cleared.
    next_clean: bool,
}

impl Epochs {
    /// Starts at `current` (its stale marks, and every other value's, must have been cleared:
    /// a fresh start clears all offload marks).
    pub fn new(marks: OffloadMarks, current: Epoch) -> Self {
        Self {
            marks,
            current,
            next_clean: false,
        }
    }

    /// The current epoch.
    pub fn current(&self) -> Epoch {
        self.current
    }

    /// The value the next switch uses.
    pub fn upcoming(&self) -> Epoch {
        self.marks.next(self.current)
    }

    /// Whether the upcoming value's stale connection marks were cleared.
    pub fn upcoming_is_clean(&self) -> bool {
        self.next_clean
    }

    /// The upcoming value's stale marks were cleared.
    pub fn cleaned(&mut self) {
        self.next_clean = true;
    }

    /// Moves to the upcoming value (after the rules were switched to it).
    pub fn advance(&mut self) -> Epoch {
        self.current = self.upcoming();
        self.next_clean = false;
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{HookRule, QueueTarget};

    #[test]
    fn marks_keep_foreign_bits_and_switch_epochs() {
        let m = OffloadMarks::default();
        assert_eq!(m.epoch_mask(), 0x00f0_0000);
        assert_eq!(m.max_epoch(), 15);
        let orig_out = Slot {
            dir: CtDir::Original,
            hook: SlotHook::Output,
        };
        let orig_in = Slot {
            dir: CtDir::Original,
            hook: SlotHook::Input,
        };
        // Other software's bits (outside the mask) survive.
        let foreign = 0xab00_0c0d;
        let a = m.mark(foreign, Epoch(3), orig_out);
        assert_eq!(a & !m.mask(), foreign);
        assert_eq!(m.epoch_of(a), 3);
        assert_eq!(a & m.mask(), 0x0030_0000 | 0x2_0000);
        // Same epoch: the connection's other slot stays set.
        let b = m.mark(a, Epoch(3), orig_in);
        assert_eq!(b & m.mask(), 0x0030_0000 | 0x3_0000);
        // A stale epoch restarts the field.
        let c = m.mark(b, Epoch(4), orig_in);
        assert_eq!(c & m.mask(), 0x0040_0000 | 0x1_0000);
        assert_eq!(c & !m.mask(), foreign);
        assert_eq!(m.next(Epoch(15)), Epoch(1));
        for bad in [0, 0x0000_001f, 0x00f0_f000, 0x0101_0101] {
            assert!(OffloadMarks::new(bad).is_err(), "{bad:#x}");
        }
        let wide = OffloadMarks::new(0xffff_0000).expect("wide");
        assert_eq!(wide.max_epoch(), 4095);
        assert_eq!(OffloadMarks::new(DEFAULT_MASK).expect("default"), m);
    }

    /// Records command lines and standard inputs; fails `-D` (nothing to delete).
    #[derive(Default)]
    struct Fake {
        log: Vec<(String, Option<String>)>,
    }

    impl Exec for Fake {
        fn run(
            &mut self,
            argv: &[String],
            stdin: Option<&str>,
        ) -> Result<(bool, String), RulesError> {
            let line = argv.join(" ");
            let ok = !line.contains(" -D ");
            self.log.push((line, stdin.map(str::to_owned)));
            Ok((ok, String::new()))
        }
    }

    fn rules() -> OffloadRules {
        let mut q = RuleSet::new(QueueTarget::Num(0));
        q.netns = Some("wfpoff-1".into());
        q.families = vec![Family::Ipv4, Family::Ipv6];
        q.hooks = vec![
            HookRule::new(ChainHook::Input, &["-i", "lo"]),
            HookRule::new(ChainHook::Output, &["-o", "lo"]),
        ];
        q.accounting_mark = Some(0x4000_0000);
        OffloadRules::new(q, OffloadMarks::default())
    }

    #[test]
    fn install_places_the_test_in_filter_and_a_switch_replaces_one_rule_per_hook() {
        let r = rules();
        let mut fake = Fake::default();
        r.install_with(&mut fake, Epoch(1)).expect("install");
        let script = r.chains_script(Epoch(1));
        for line in [
            "-A WFP_OFF_IN -j CONNMARK --restore-mark --nfmask 0xff0000 --ctmask 0xff0000\n\
             -A WFP_OFF_IN -j WFP_OEP_IN\n\
             -A WFP_OEP_IN -m mark --mark 0x100000/0xf00000 -g WFP_OOK_IN\n",
            "-A WFP_OOK_IN -m mark --mark 0x40000/0x40000 -m conntrack --ctstate ESTABLISHED \
             --ctdir REPLY -j WFP_OACC",
            "-A WFP_OOK_OUT -m mark --mark 0x20000/0x20000 -m conntrack --ctstate ESTABLISHED \
             --ctdir ORIGINAL -j WFP_OACC",
            "-A WFP_OACC -j MARK --set-xmark 0x40000000/0x40000000\n-A WFP_OACC -j ACCEPT",
        ] {
            assert!(script.contains(line), "{line}\n{script}");
        }
        // Nothing outside `filter`: no save, no restore in another table.
        assert!(script.starts_with("*filter\n") && script.matches("COMMIT").count() == 1);
        assert!(!script.contains("save-mark"));
        let inserts: Vec<&str> = fake
            .log
            .iter()
            .map(|(l, _)| l.as_str())
            .filter(|l| l.contains(" -I "))
            .collect();
        assert_eq!(inserts.len(), 4, "one jump x 2 hooks x 2 families");
        assert!(inserts[0].ends_with(
            "nsenter --net=/run/netns/wfpoff-1 iptables -w 5 -t filter -I INPUT 1 -i lo -j WFP_OFF_IN"
        ));
        assert!(inserts
            .iter()
            .any(|l| l.ends_with("ip6tables -w 5 -t filter -I OUTPUT 1 -o lo -j WFP_OFF_OUT")));
        // Earlier layouts are removed first.
        assert!(fake
            .log
            .iter()
            .any(|(l, _)| l.ends_with("nft delete table inet WFP_OFFLOAD")));
        assert!(fake
            .log
            .iter()
            .any(|(l, _)| l.ends_with("-t security -X WFP_OSV")));

        let mut fake = Fake::default();
        r.switch_with(&mut fake, Epoch(2)).expect("switch");
        assert_eq!(fake.log.len(), 2, "one command per family");
        for (line, input) in &fake.log {
            assert!(line.contains("tables-restore -w 5 --noflush"));
            assert_eq!(
                input.as_deref(),
                Some(
                    "*filter\n\
                     -R WFP_OEP_IN 1 -m mark --mark 0x200000/0xf00000 -g WFP_OOK_IN\n\
                     -R WFP_OEP_OUT 1 -m mark --mark 0x200000/0xf00000 -g WFP_OOK_OUT\n\
                     COMMIT\n"
                )
            );
        }

        let mut fake = Fake::default();
        r.remove_with(&mut fake).expect("remove");
        for chain in ["WFP_OFF_IN", "WFP_OEP_OUT", "WFP_OOK_IN", "WFP_OACC"] {
            let x = format!("-t filter -X {chain}");
            assert!(fake.log.iter().any(|(l, _)| l.ends_with(&x)), "{chain}");
        }
    }

    #[test]
    fn without_an_accounting_mark_offloaded_packets_are_accepted_at_once() {
        let mut r = rules();
        r.queue.accounting_mark = None;
        r.queue.hooks.retain(|h| h.hook == ChainHook::Output);
        let script = r.chains_script(Epoch(3));
        assert!(script.contains(
            "-A WFP_OOK_OUT -m mark --mark 0x80000/0x80000 -m conntrack --ctstate ESTABLISHED \
             --ctdir REPLY -j ACCEPT\n"
        ));
        assert!(
            !script.contains("OACC") && !script.contains("_IN"),
            "{script}"
        );
        let mut fake = Fake::default();
        r.switch_with(&mut fake, Epoch(4)).expect("switch");
        assert_eq!(
            fake.log[0].1.as_deref(),
            Some("*filter\n-R WFP_OEP_OUT 1 -m mark --mark 0x400000/0xf00000 -g WFP_OOK_OUT\nCOMMIT\n")
        );
    }

    #[test]
    fn epochs_advance_and_track_cleaning() {
        let m = OffloadMarks::new(0x3f).expect("6 bits");
        let mut e = Epochs::new(m, Epoch(3));
        assert_eq!(e.upcoming(), Epoch(1));
        assert!(!e.upcoming_is_clean());
        e.cleaned();
        assert!(e.upcoming_is_clean());
        assert_eq!(e.advance(), Epoch(1));
        assert!(!e.upcoming_is_clean());
    }
}
