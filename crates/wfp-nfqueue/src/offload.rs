//! Flow offload in the kernel: connections whose later packets need no decision are accepted by a
//! rule placed before the queue rule, and one rule update revokes them all (`docs/offload.md`).
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
//! # Rules ([`OffloadRules`], per family, beside the queue chains of [`crate::rules::RuleSet`])
//!
//! With an accounting mark and `nft` present, the test of an offloaded packet is native nf_tables
//! in a table of its own and only queued packets meet compatibility expressions (the `native`
//! submodule documents that form). Otherwise, the compatibility form:
//!
//! ```text
//!  mangle   INPUT/OUTPUT  -j P_ORS   P_ORS: CONNMARK --restore-mark (mask)       packet ← connection
//!  filter   INPUT  [matches] -m conntrack --ctstate ESTABLISHED -j P_OFF_IN   (before -j P_IN)
//!           OUTPUT [matches] -m conntrack --ctstate ESTABLISHED -j P_OFF_OUT  (before -j P_OUT)
//!           P_OFF_x: -j P_OEP
//!                    -m conntrack --ctdir ORIGINAL -m mark --mark SLOT/SLOT -j P_OOK
//!                    -m conntrack --ctdir REPLY    -m mark --mark SLOT/SLOT -j P_OOK
//!           P_OEP:   -m mark ! --mark EPOCH/EPOCHMASK -j MARK --set-xmark 0/MASK   ← the epoch
//!           P_OOK:   [-j MARK --set-xmark ACCT/ACCT] -j ACCEPT
//!  security INPUT/OUTPUT  -j P_OSV   P_OSV: -m mark ! --mark 0/EPOCHMASK
//!                                           -j CONNMARK --save-mark (mask)    packet → connection
//! ```
//!
//! The reader marks an accepted packet whose flow direction may be offloaded
//! ([`OffloadMarks::mark`]: the restored field when it carries the current epoch, else a fresh
//! one, plus the packet's slot); the `security` table (after `filter`) saves it to the
//! connection. Every later packet of that connection gets the mark back in `mangle`, and in
//! `filter` the packets of an offloaded slot are accepted before the queue rule — unless the epoch
//! moved: `P_OEP` then clears the reserved field and the packet is queued like any other.
//!
//! **Revocation** ([`OffloadRules::switch_epoch`]) replaces `P_OEP`'s single rule in each family
//! (one nf_tables transaction over netlink for all families; `iptables-restore` as the fallback):
//! O(1) in the number of offloaded connections. Epochs cycle through
//! the values the field holds; a connection idle through a whole cycle would carry a current
//! epoch again, so before an epoch value is reused its stale connection marks are cleared through
//! conntrack ([`crate::conntrack::ConntrackSocket::clear_marks`]); [`Epochs`] tracks which values
//! are clean.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::rules::{ChainHook, Family, RuleSet, RulesError};

mod native;

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
    /// Whether the installed rules are the native nf_tables ones (see [`OffloadRules::install`]).
    native: std::sync::Arc<std::sync::atomic::AtomicBool>,
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

impl OffloadRules {
    /// Offload rules beside `queue`'s chains with `marks`.
    pub fn new(queue: RuleSet, marks: OffloadMarks) -> Self {
        Self {
            queue,
            marks,
            nft: std::sync::Arc::default(),
            native: std::sync::Arc::default(),
        }
    }

    /// Installs (or updates) the chains with `epoch` current, and puts the jumps first in their
    /// built-in chains (the filter jumps before the queue chains' jumps). Idempotent. Install the
    /// queue rules first.
    pub fn install(&self, epoch: Epoch) -> Result<(), OffloadError> {
        self.install_with(&mut System, epoch)
    }

    /// Makes `epoch` current: one rule replaced per family, the families at once. Every
    /// connection offloaded under another epoch is queued again from its next packet. Returns how
    /// long the update took.
    ///
    /// In the calling thread's namespace (no [`RuleSet::netns`]) the rule is replaced over
    /// nf_tables netlink (the `nft` module: no program started); otherwise, or if that fails,
    /// with `iptables-restore`.
    pub fn switch_epoch(&self, epoch: Epoch) -> Result<Duration, OffloadError> {
        let start = Instant::now();
        let native = self.is_native();
        if self.queue.netns.is_none() {
            let done = if native {
                self.switch_native_nft(epoch)
            } else {
                self.switch_nft(epoch)
            };
            if done.is_ok() {
                return Ok(start.elapsed());
            }
        }
        if native {
            self.switch_native_with(&mut System, epoch)?;
        } else {
            self.switch_with(&mut System, epoch)?;
        }
        Ok(start.elapsed())
    }

    /// The epoch switch over nf_tables netlink: every family in one transaction, on a socket
    /// kept open between switches (opened in the calling thread's namespace at the first).
    fn switch_nft(&self, epoch: Epoch) -> Result<(), crate::nft::NftError> {
        let chain = self.chain("OEP");
        let targets: Vec<(u8, &str, &str)> = self
            .queue
            .families
            .iter()
            .map(|f| match f {
                Family::Ipv4 => (2, "filter", chain.as_str()),
                Family::Ipv6 => (10, "filter", chain.as_str()),
            })
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

    /// Removes the jumps and chains. Idempotent. The connections' marks stay; the next install
    /// must use an epoch whose stale marks were cleared.
    pub fn remove(&self) -> Result<(), OffloadError> {
        self.remove_with(&mut System)
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

    /// The one rule that carries the epoch (`P_OEP`).
    fn epoch_rule(&self, epoch: Epoch) -> String {
        let m = &self.marks;
        format!(
            "-m mark ! --mark {:#x}/{:#x} -j MARK --set-xmark 0x0/{:#x}",
            m.epoch_bits(epoch),
            m.epoch_mask(),
            m.mask()
        )
    }

    /// The `iptables-restore --noflush` input that (re)creates every chain's content.
    pub(crate) fn chains_script(&self, epoch: Epoch) -> String {
        let m = &self.marks;
        let mask = format!("{:#x}", m.mask());
        let (oep, ook, ors, osv) = (
            self.chain("OEP"),
            self.chain("OOK"),
            self.chain("ORS"),
            self.chain("OSV"),
        );
        let mut s = String::from("*filter\n");
        s += &format!(":{oep} - [0:0]\n-A {oep} {}\n", self.epoch_rule(epoch));
        s += &format!(":{ook} - [0:0]\n");
        if let Some(acct) = self.queue.accounting_mark {
            s += &format!("-A {ook} -j MARK --set-xmark {acct:#x}/{acct:#x}\n");
        }
        s += &format!("-A {ook} -j ACCEPT\n");
        for (hook, slot_hook) in HOOKS {
            let c = self.chain(&format!("OFF_{}", suffix(hook)));
            s += &format!(":{c} - [0:0]\n-A {c} -j {oep}\n");
            for (dir, name) in [(CtDir::Original, "ORIGINAL"), (CtDir::Reply, "REPLY")] {
                let bit = m.slot_bit(Slot {
                    dir,
                    hook: slot_hook,
                });
                s += &format!(
                    "-A {c} -m conntrack --ctdir {name} -m mark --mark {bit:#x}/{bit:#x} -j {ook}\n"
                );
            }
        }
        s += "COMMIT\n*mangle\n";
        s += &format!(
            ":{ors} - [0:0]\n-A {ors} -j CONNMARK --restore-mark --nfmask {mask} --ctmask {mask}\nCOMMIT\n"
        );
        s += "*security\n";
        s += &format!(
            ":{osv} - [0:0]\n-A {osv} -m mark ! --mark 0x0/{:#x} -j CONNMARK --save-mark --nfmask {mask} --ctmask {mask}\nCOMMIT\n",
            m.epoch_mask()
        );
        s
    }

    /// The jumps: (table, built-in chain, rule arguments without `-A CHAIN`).
    fn jumps(&self) -> Vec<(&'static str, &'static str, Vec<String>)> {
        let mut out = Vec::new();
        for (hook, _) in HOOKS {
            let Some(rule) = self.queue.hooks.iter().find(|r| r.hook == hook) else {
                continue;
            };
            let mut args = rule.matches.clone();
            args.extend(["-m", "conntrack", "--ctstate", "ESTABLISHED", "-j"].map(str::to_owned));
            args.push(self.chain(&format!("OFF_{}", suffix(hook))));
            out.push(("filter", hook.builtin(), args));
            out.push((
                "mangle",
                hook.builtin(),
                vec!["-j".into(), self.chain("ORS")],
            ));
            out.push((
                "security",
                hook.builtin(),
                vec!["-j".into(), self.chain("OSV")],
            ));
        }
        out
    }

    pub(crate) fn install_with(
        &self,
        exec: &mut dyn Exec,
        epoch: Epoch,
    ) -> Result<(), OffloadError> {
        self.queue.check()?;
        if let Some(acct) = self.queue.accounting_mark {
            if self.install_native_with(exec, epoch, acct)? {
                return Ok(());
            }
        }
        let script = self.chains_script(epoch);
        for &family in &self.queue.families {
            let argv = self.argv(Self::restore_program(family), &["--noflush"]);
            let (ok, err) = exec.run(&argv, Some(&script))?;
            if !ok {
                return Err(command_error(&argv, &err).into());
            }
            for (table, builtin, args) in self.jumps() {
                self.insert_first(exec, family, (table, builtin), &args)?;
            }
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
        let oep = self.chain("OEP");
        let script = format!("*filter\n-R {oep} 1 {}\nCOMMIT\n", self.epoch_rule(epoch));
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

    pub(crate) fn remove_with(&self, exec: &mut dyn Exec) -> Result<(), OffloadError> {
        self.queue.check()?;
        self.remove_native_with(exec)?;
        for &family in &self.queue.families {
            for (table, builtin, args) in self.jumps() {
                self.delete_jump(exec, family, (table, builtin), &args)?;
            }
            for (table, chains) in [
                ("filter", vec!["OFF_IN", "OFF_OUT", "OEP", "OOK"]),
                ("mangle", vec!["ORS"]),
                ("security", vec!["OSV"]),
            ] {
                for c in chains {
                    let c = self.chain(c);
                    let p = Self::program(family);
                    let _ = exec.run(&self.argv(p, &["-t", table, "-F", &c]), None)?;
                    let _ = exec.run(&self.argv(p, &["-t", table, "-X", &c]), None)?;
                }
            }
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

    /// Records command lines and standard inputs; fails `-D` (nothing to delete), and `nft` when
    /// `no_nft`.
    #[derive(Default)]
    struct Fake {
        log: Vec<(String, Option<String>)>,
        no_nft: bool,
    }

    impl Exec for Fake {
        fn run(
            &mut self,
            argv: &[String],
            stdin: Option<&str>,
        ) -> Result<(bool, String), RulesError> {
            let line = argv.join(" ");
            let refused = line.contains(" -D ") || (self.no_nft && line.contains("nft "));
            let ok = !refused;
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
    fn install_places_the_chains_and_jumps_and_a_switch_replaces_one_rule_per_family() {
        // Without `nft`, the compatibility form.
        let r = rules();
        let mut fake = Fake {
            no_nft: true,
            ..Fake::default()
        };
        r.install_with(&mut fake, Epoch(1)).expect("install");
        assert!(!r.is_native());
        let script = r.chains_script(Epoch(1));
        assert!(script.contains(
            "-A WFP_OEP -m mark ! --mark 0x100000/0xf00000 -j MARK --set-xmark 0x0/0xff0000"
        ));
        assert!(script.contains(
            "-A WFP_OFF_IN -m conntrack --ctdir REPLY -m mark --mark 0x40000/0x40000 -j WFP_OOK"
        ));
        assert!(script.contains(
            "-A WFP_OFF_OUT -m conntrack --ctdir ORIGINAL -m mark --mark 0x20000/0x20000 -j WFP_OOK"
        ));
        assert!(script.contains(
            "-A WFP_OOK -j MARK --set-xmark 0x40000000/0x40000000\n-A WFP_OOK -j ACCEPT"
        ));
        assert!(script.contains("CONNMARK --restore-mark --nfmask 0xff0000 --ctmask 0xff0000"));
        assert!(script.contains("CONNMARK --save-mark --nfmask 0xff0000 --ctmask 0xff0000"));
        let inserts: Vec<&str> = fake
            .log
            .iter()
            .map(|(l, _)| l.as_str())
            .filter(|l| l.contains(" -I "))
            .collect();
        assert_eq!(inserts.len(), 12, "3 tables x 2 hooks x 2 families");
        assert!(inserts[0].starts_with("nsenter --net=/run/netns/wfpoff-1 iptables -w 5 -t filter -I INPUT 1 -i lo -m conntrack --ctstate ESTABLISHED -j WFP_OFF_IN"));
        assert!(inserts
            .iter()
            .any(|l| l.contains("ip6tables -w 5 -t security -I OUTPUT 1 -j WFP_OSV")));

        let mut fake = Fake::default();
        r.switch_with(&mut fake, Epoch(2)).expect("switch");
        assert_eq!(fake.log.len(), 2, "one command per family");
        for (line, input) in &fake.log {
            assert!(line.contains("tables-restore -w 5 --noflush"));
            assert_eq!(
                input.as_deref(),
                Some("*filter\n-R WFP_OEP 1 -m mark ! --mark 0x200000/0xf00000 -j MARK --set-xmark 0x0/0xff0000\nCOMMIT\n")
            );
        }

        let mut fake = Fake::default();
        r.remove_with(&mut fake).expect("remove");
        assert!(fake
            .log
            .iter()
            .any(|(l, _)| l.ends_with("-t filter -X WFP_OEP")));
        assert!(fake
            .log
            .iter()
            .any(|(l, _)| l.ends_with("-t security -X WFP_OSV")));
    }

    #[test]
    fn native_form_tests_offloaded_packets_natively_and_switches_two_rules() {
        let r = rules();
        let mut fake = Fake::default();
        r.install_with(&mut fake, Epoch(1)).expect("install");
        assert!(r.is_native());
        let (first, table) = fake.log.first().expect("nft first");
        assert_eq!(first, "nsenter --net=/run/netns/wfpoff-1 nft -f -");
        let table = table.as_deref().expect("script");
        assert!(table.starts_with(
            "table inet WFP_OFFLOAD\ndelete table inet WFP_OFFLOAD\ntable inet WFP_OFFLOAD {"
        ));
        for line in [
            "type filter hook input priority -5; policy accept;",
            "meta mark set meta mark and 0xbfffffff\n  ct state established goto oep_in",
            "chain oep_out {\n  ct mark and 0xf00000 == 0x100000 goto ok_out\n }",
            "ct direction original ct mark and 0x10000 != 0 meta mark set meta mark or 0x40000000 return",
            "ct direction reply ct mark and 0x80000 != 0 meta mark set meta mark or 0x40000000\n",
        ] {
            assert!(table.contains(line), "{line}\n{table}");
        }
        let inserts: Vec<&str> = fake
            .log
            .iter()
            .map(|(l, _)| l.as_str())
            .filter(|l| l.contains(" -I "))
            .collect();
        assert_eq!(inserts.len(), 12, "3 jumps x 2 hooks x 2 families");
        // The accept jump is inserted after (so ends before) the restore jump.
        assert!(inserts[0].ends_with("iptables -w 5 -t filter -I INPUT 1 -i lo -j WFP_ORF"));
        assert!(inserts[1].ends_with(
            "iptables -w 5 -t filter -I INPUT 1 -i lo -m mark --mark 0x40000000/0x40000000 -j ACCEPT"
        ));
        let restore = fake
            .log
            .get(1)
            .and_then(|(_, i)| i.as_deref())
            .expect("chains");
        assert!(restore.contains("-A WFP_ORF -j CONNMARK --restore-mark --nfmask 0xff0000"));
        assert!(restore.contains("-A WFP_OSV -m mark ! --mark 0x0/0xf00000 -j CONNMARK --save"));
        assert!(!fake.log.iter().any(|(l, _)| l.contains("conntrack")));

        let mut fake = Fake::default();
        r.switch_native_with(&mut fake, Epoch(2)).expect("switch");
        assert_eq!(fake.log.len(), 1, "one transaction for both families");
        assert_eq!(
            fake.log[0].1.as_deref(),
            Some(
                "flush chain inet WFP_OFFLOAD oep_in\n\
                 add rule inet WFP_OFFLOAD oep_in ct mark and 0xf00000 == 0x200000 goto ok_in\n\
                 flush chain inet WFP_OFFLOAD oep_out\n\
                 add rule inet WFP_OFFLOAD oep_out ct mark and 0xf00000 == 0x200000 goto ok_out\n"
            )
        );

        let mut fake = Fake::default();
        r.remove_with(&mut fake).expect("remove");
        assert!(!r.is_native());
        assert!(fake
            .log
            .iter()
            .any(|(l, _)| l.ends_with("nft delete table inet WFP_OFFLOAD")));
        assert!(fake
            .log
            .iter()
            .any(|(l, _)| l.ends_with("-t filter -X WFP_ORF")));
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
