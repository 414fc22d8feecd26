//! The native nf_tables form of the offload rules, used when the queue rules have an accounting
//! mark (`docs/offload.md`, "The mechanism").
//!
//! Under iptables-nft, `-m conntrack`, `CONNMARK` and `MARK` run as x_tables compatibility
//! expressions, each with a counter; for small packets that roughly doubles the kernel's cost per
//! offloaded packet. Here the test of an offloaded packet is native (`ct state`, `ct mark`,
//! `ct direction`, `meta mark`) in a table of its own, and only packets that go on to the queue
//! pay for the compatibility expressions:
//!
//! ```text
//!  table inet P_OFFLOAD   (priority -5: after iptables' mangle, before its filter)
//!    base_x:   meta mark &= ~ACCT;  ct state established goto oep_x
//!    oep_x:    ct mark & EPOCHMASK == EPOCH goto ok_x                    ← the epoch (one cmp)
//!    ok_x:     ct direction original ct mark & SLOT != 0 meta mark |= ACCT return
//!              ct direction reply    ct mark & SLOT != 0 meta mark |= ACCT
//!  iptables filter INPUT/OUTPUT  [matches] -m mark --mark ACCT/ACCT -j ACCEPT   (first)
//!                                [matches] -j P_ORF   P_ORF: CONNMARK --restore-mark (mask)
//!  iptables security INPUT/OUTPUT  -j P_OSV   (as in the compatibility form: save)
//! ```
//!
//! The accounting bit doubles as "offloaded at this hook": it is cleared first (a loopback packet
//! keeps the mark its OUTPUT side got), and a packet accepted here counts as inspected, as one
//! accepted by `P_OOK` did. The connection's field is restored into the packet only for packets
//! that are queued (the reader adds its slot to it); nft 1.0 cannot merge two registers, so that
//! restore stays a `CONNMARK` target. Nftables nfproto `inet` (1) covers IPv4 and IPv6 in one
//! table: the epoch switch replaces the two `oep_x` rules in one transaction.

use std::sync::atomic::Ordering;

use super::{command_error, CtDir, Epoch, Exec, OffloadError, OffloadRules, Slot, SlotHook, HOOKS};
use crate::rules::Family;

/// nfproto of an `inet` table.
const NFPROTO_INET: u8 = 1;

impl OffloadRules {
    /// Whether the installed rules are the native form.
    pub(crate) fn is_native(&self) -> bool {
        self.native.load(Ordering::Acquire)
    }

    /// The native table's name.
    pub(crate) fn table(&self) -> String {
        format!("{}_OFFLOAD", self.queue.chain_prefix)
    }

    /// The `nft -f` input that (re)creates the table with `epoch` current (one transaction).
    pub(crate) fn native_script(&self, epoch: Epoch, acct: u32) -> String {
        let t = self.table();
        let m = &self.marks;
        let mut s = format!("table inet {t}\ndelete table inet {t}\ntable inet {t} {{\n");
        for (hook, name) in [("input", "in"), ("output", "out")] {
            s += &format!(
                " chain base_{name} {{\n  type filter hook {hook} priority -5; policy accept;\n  \
                 meta mark set meta mark and {:#x}\n  ct state established goto oep_{name}\n }}\n",
                !acct
            );
            s += &format!(
                " chain oep_{name} {{\n  {}\n }}\n",
                self.epoch_expr(epoch, name)
            );
        }
        for (_, slot_hook) in HOOKS {
            let name = hook_name(slot_hook);
            s += &format!(" chain ok_{name} {{\n");
            for (dir, word, end) in [
                (CtDir::Original, "original", " return"),
                (CtDir::Reply, "reply", ""),
            ] {
                let bit = m.slot_bit(Slot {
                    dir,
                    hook: slot_hook,
                });
                s += &format!(
                    "  ct direction {word} ct mark and {bit:#x} != 0 meta mark set meta mark or \
                     {acct:#x}{end}\n"
                );
            }
            s += " }\n";
        }
        s + "}\n"
    }

    /// The one rule of `oep_NAME`: the epoch test.
    fn epoch_expr(&self, epoch: Epoch, name: &str) -> String {
        let m = &self.marks;
        format!(
            "ct mark and {:#x} == {:#x} goto ok_{name}",
            m.epoch_mask(),
            m.epoch_bits(epoch)
        )
    }

    /// The `nft -f` input of the switch when netlink is not used: both epoch rules, one
    /// transaction.
    pub(crate) fn native_switch_script(&self, epoch: Epoch) -> String {
        let t = self.table();
        let mut s = String::new();
        for name in ["in", "out"] {
            s += &format!("flush chain inet {t} oep_{name}\n");
            s += &format!(
                "add rule inet {t} oep_{name} {}\n",
                self.epoch_expr(epoch, name)
            );
        }
        s
    }

    /// The chains of the iptables part (restore in `filter`, save in `security`).
    fn native_chains_script(&self) -> String {
        let mask = format!("{:#x}", self.marks.mask());
        let (orf, osv) = (self.chain("ORF"), self.chain("OSV"));
        format!(
            "*filter\n:{orf} - [0:0]\n-A {orf} -j CONNMARK --restore-mark --nfmask {mask} \
             --ctmask {mask}\nCOMMIT\n*security\n:{osv} - [0:0]\n-A {osv} -m mark ! --mark \
             0x0/{:#x} -j CONNMARK --save-mark --nfmask {mask} --ctmask {mask}\nCOMMIT\n",
            self.marks.epoch_mask()
        )
    }

    /// The jumps of the native form, in insertion order (each goes first: the accept jump ends
    /// before the restore jump).
    pub(crate) fn native_jumps(&self, acct: u32) -> Vec<(&'static str, &'static str, Vec<String>)> {
        let mut out = Vec::new();
        for (hook, _) in HOOKS {
            let Some(rule) = self.queue.hooks.iter().find(|r| r.hook == hook) else {
                continue;
            };
            let mut restore = rule.matches.clone();
            restore.extend(["-j".to_owned(), self.chain("ORF")]);
            out.push(("filter", hook.builtin(), restore));
            let mut accept = rule.matches.clone();
            accept.extend(["-m", "mark", "--mark"].map(str::to_owned));
            accept.push(format!("{acct:#x}/{acct:#x}"));
            accept.extend(["-j".to_owned(), "ACCEPT".to_owned()]);
            out.push(("filter", hook.builtin(), accept));
            out.push((
                "security",
                hook.builtin(),
                vec!["-j".into(), self.chain("OSV")],
            ));
        }
        out
    }

    /// `nft` with the namespace prefix.
    fn nft_argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv = Vec::new();
        if let Some(ns) = &self.queue.netns {
            argv.extend(["nsenter".to_owned(), format!("--net=/run/netns/{ns}")]);
        }
        argv.push("nft".to_owned());
        argv.extend(args.iter().map(|s| (*s).to_owned()));
        argv
    }

    /// Installs the native form; Ok(false) when `nft` refused the table (the caller installs the
    /// compatibility form instead).
    pub(crate) fn install_native_with(
        &self,
        exec: &mut dyn Exec,
        epoch: Epoch,
        acct: u32,
    ) -> Result<bool, OffloadError> {
        let (ok, _) = exec.run(
            &self.nft_argv(&["-f", "-"]),
            Some(&self.native_script(epoch, acct)),
        )?;
        if !ok {
            return Ok(false);
        }
        let script = self.native_chains_script();
        for &family in &self.queue.families {
            let argv = self.argv(Self::restore_program(family), &["--noflush"]);
            let (ok, err) = exec.run(&argv, Some(&script))?;
            if !ok {
                return Err(command_error(&argv, &err).into());
            }
            for (table, builtin, args) in self.native_jumps(acct) {
                self.insert_first(exec, family, (table, builtin), &args)?;
            }
        }
        self.native.store(true, Ordering::Release);
        Ok(true)
    }

    /// Deletes any copy of `args` in `builtin` and inserts it first.
    pub(crate) fn insert_first(
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

    /// The native switch over nf_tables netlink (both epoch rules, one transaction).
    pub(crate) fn switch_native_nft(&self, epoch: Epoch) -> Result<(), crate::nft::NftError> {
        let t = self.table();
        let targets = [
            (NFPROTO_INET, t.as_str(), "oep_in"),
            (NFPROTO_INET, t.as_str(), "oep_out"),
        ];
        self.with_nft(|socket| socket.set_cmp_values(&targets, self.marks.epoch_bits(epoch)))
    }

    /// The native switch with `nft -f` (namespaces, or when netlink failed).
    pub(crate) fn switch_native_with(
        &self,
        exec: &mut dyn Exec,
        epoch: Epoch,
    ) -> Result<(), OffloadError> {
        let argv = self.nft_argv(&["-f", "-"]);
        let (ok, err) = exec.run(&argv, Some(&self.native_switch_script(epoch)))?;
        if !ok {
            return Err(command_error(&argv, &err).into());
        }
        Ok(())
    }

    /// Removes the native form's table, jumps and chains (idempotent; nothing to remove is fine).
    pub(crate) fn remove_native_with(&self, exec: &mut dyn Exec) -> Result<(), OffloadError> {
        let t = self.table();
        let _ = exec.run(&self.nft_argv(&["delete", "table", "inet", &t]), None)?;
        for &family in &self.queue.families {
            if let Some(acct) = self.queue.accounting_mark {
                for (table, builtin, args) in self.native_jumps(acct) {
                    self.delete_jump(exec, family, (table, builtin), &args)?;
                }
            }
            let p = Self::program(family);
            let c = self.chain("ORF");
            let _ = exec.run(&self.argv(p, &["-t", "filter", "-F", &c]), None)?;
            let _ = exec.run(&self.argv(p, &["-t", "filter", "-X", &c]), None)?;
        }
        self.native.store(false, Ordering::Release);
        Ok(())
    }
}

fn hook_name(hook: SlotHook) -> &'static str {
    match hook {
        SlotHook::Input => "in",
        SlotHook::Output => "out",
    }
}
