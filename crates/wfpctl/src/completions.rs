//! Shell completions and man pages generated from the clap definition of the command line
//! (clap_complete, clap_mangen), so they never drift from the parser.
//!
//! ```text
//!   wfpctl completions bash|zsh|fish        the script on standard output
//!   wfpctl man                              wfpctl(1) on standard output
//!   wfpctl man --dir DIR                    wfpctl.1 and one wfpctl-SUB.1 per subcommand
//!                                           (wfpctl-driver-build.1, ...) written into DIR
//! ```
//!
//! The `clap::Command` is handed in by the binary (`Cli::command()`): the definition lives in
//! `main.rs`, and this module only renders it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap_complete::Shell;

/// `wfpctl completions`.
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_parser = ["bash", "zsh", "fish"])]
    pub shell: String,
}

/// `wfpctl man`.
#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write wfpctl.1 and a page per subcommand into this directory instead of printing wfpctl(1).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Writes the completion script for `shell` (`bash`, `zsh`, `fish`) of `cmd` to `out`.
pub fn completions(
    cmd: &mut clap::Command,
    shell: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let shell = match shell {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        other => anyhow::bail!("no completions for the shell {other:?} (bash, zsh, fish)"),
    };
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, cmd, name, out);
    Ok(())
}

/// Writes the man page of `cmd` (section 1) to `out`.
pub fn man_page(cmd: clap::Command, out: &mut impl Write) -> anyhow::Result<()> {
    clap_mangen::Man::new(cmd).render(out)?;
    Ok(())
}

/// Writes `NAME.1` for `cmd` and, recursively, `NAME-SUB.1` for each visible subcommand into
/// `dir`; returns the files written.
pub fn man_pages(cmd: &clap::Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    write_pages(cmd.clone(), cmd.get_name().to_string(), dir, &mut written)?;
    Ok(written)
}

fn write_pages(
    cmd: clap::Command,
    name: String,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let cmd = cmd.name(name.clone()).bin_name(name.replace('-', " "));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(
            sub.clone(),
            format!("{name}-{}", sub.get_name()),
            dir,
            written,
        )?;
    }
    let path = dir.join(format!("{name}.1"));
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    man_page(cmd, &mut file)?;
    written.push(path);
    Ok(())
}

/// `wfpctl completions SHELL`.
pub fn run_completions(a: &CompletionsArgs, mut cmd: clap::Command) -> anyhow::Result<ExitCode> {
    completions(&mut cmd, &a.shell, &mut std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

/// `wfpctl man [--dir DIR]`.
pub fn run_man(a: &ManArgs, cmd: clap::Command) -> anyhow::Result<ExitCode> {
    match &a.dir {
        None => man_page(cmd, &mut std::io::stdout().lock())?,
        Some(dir) => {
            for p in man_pages(&cmd, dir)? {
                println!("{}", p.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
