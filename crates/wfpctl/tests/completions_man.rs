//! Shell completions and man pages generated from the clap definition: bash really completes
//! (the script is sourced and its function run on a partial command line), zsh/fish scripts are
//! syntax-checked when those shells are installed, and the man pages render with `man -l`
//! (groff) when it is installed.

use std::path::PathBuf;
use std::process::{Command, Output};

fn wfpctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wfpctl"))
        .args(args)
        .output()
        .unwrap()
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wfpctl-compl-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Sources the bash script and asks it to complete `words` (the last one partial).
fn bash_complete(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cmd = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}; \
         _wfpctl wfpctl '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1,
        words.join(" "),
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = Command::new("bash").args(["-c", &cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_subcommands_and_values() {
    let d = dir("bash");
    let out = wfpctl(&["completions", "bash"]);
    assert!(out.status.success());
    let script = d.join("wfpctl.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let subs = bash_complete(&script, &["wfpctl", "d"]);
    for want in ["decide", "delete", "driver"] {
        assert!(subs.iter().any(|s| s == want), "{want} not in {subs:?}");
    }
    assert!(!subs.iter().any(|s| s == "show"), "{subs:?}");
    let whats = bash_complete(&script, &["wfpctl", "show", "f"]);
    assert!(
        whats.iter().any(|s| s == "flows") && whats.iter().any(|s| s == "filters"),
        "{whats:?}"
    );
    let drivers = bash_complete(&script, &["wfpctl", "driver", ""]);
    for want in ["build", "load", "unload", "list", "ioctl"] {
        assert!(
            drivers.iter().any(|s| s == want),
            "{want} not in {drivers:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn zsh_and_fish_scripts_name_every_subcommand() {
    let d = dir("zf");
    for (shell, marker) in [("zsh", "#compdef wfpctl"), ("fish", "complete -c wfpctl")] {
        let out = wfpctl(&["completions", shell]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(text.contains(marker), "{shell}: {text}");
        for sub in ["show", "decide", "top", "completions", "man", "ioctl"] {
            assert!(text.contains(sub), "{shell} script lacks {sub}");
        }
        if has(shell) {
            let file = d.join(format!("wfpctl.{shell}"));
            std::fs::write(&file, &out.stdout).unwrap();
            let check = Command::new(shell).arg("-n").arg(&file).output().unwrap();
            assert!(
                check.status.success(),
                "{shell} -n: {}",
                String::from_utf8_lossy(&check.stderr)
            );
        } else {
            eprintln!("note: {shell} is not installed; its script was not syntax-checked");
        }
    }
    let out = wfpctl(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn man_pages_render_for_the_command_and_each_subcommand() {
    let out = wfpctl(&["man"]);
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        page.contains(".TH wfpctl 1") && page.contains(".SH SUBCOMMANDS"),
        "{page}"
    );
    assert!(
        page.contains("wfpctl\\-decide") || page.contains("decide"),
        "{page}"
    );

    let d = dir("man");
    let out = wfpctl(&["man", "--dir", d.to_str().unwrap()]);
    assert!(out.status.success());
    for name in [
        "wfpctl",
        "wfpctl-show",
        "wfpctl-top",
        "wfpctl-driver-build",
        "wfpctl-driver-ioctl",
    ] {
        let file = d.join(format!("{name}.1"));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{name}.1: {e}"));
        assert!(text.contains(&format!(".TH {name} 1")), "{text}");
    }
    let ioctl = std::fs::read_to_string(d.join("wfpctl-driver-ioctl.1")).unwrap();
    assert!(
        ioctl.contains("\\-\\-in") && ioctl.contains("IOCTL"),
        "{ioctl}"
    );
    if has("man") && has("groff") {
        let rendered = Command::new("man")
            .arg("-l")
            .arg(d.join("wfpctl-show.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&rendered.stdout);
        assert!(
            rendered.status.success(),
            "{}",
            String::from_utf8_lossy(&rendered.stderr)
        );
        assert!(
            text.contains("wfpctl-show") && text.contains("netevents"),
            "{text}"
        );
    } else {
        eprintln!("note: man/groff not installed; pages were not rendered");
    }
    let _ = std::fs::remove_dir_all(&d);
}
