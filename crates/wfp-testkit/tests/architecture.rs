//! ARCHITECTURE.md cannot drift from the workspace: its crate table names every crate under
//! `crates/`, and its dependency table equals the workspace-internal `[dependencies]` (and
//! `[build-dependencies]`) of every `crates/*/Cargo.toml`. Dev-dependencies are test wiring, not
//! architecture, and are not listed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The workspace crates (directories under `crates/` with a Cargo.toml) and their internal deps.
fn real_graph() -> Graph {
    let mut crates = BTreeMap::new();
    for entry in fs::read_dir(root().join("crates")).expect("crates/ is readable") {
        let manifest = entry.expect("directory entry").path().join("Cargo.toml");
        let Ok(text) = fs::read_to_string(&manifest) else {
            continue;
        };
        let doc: toml::Table = text.parse().expect("Cargo.toml parses");
        let name = doc["package"]["name"]
            .as_str()
            .expect("package.name")
            .to_owned();
        crates.insert(name, doc);
    }
    let names: BTreeSet<String> = crates.keys().cloned().collect();
    crates
        .iter()
        .map(|(name, doc)| {
            let deps = ["dependencies", "build-dependencies"]
                .iter()
                .filter_map(|section| doc.get(*section).and_then(toml::Value::as_table))
                .flat_map(|t| t.keys())
                .filter(|d| names.contains(*d))
                .cloned()
                .collect();
            (name.clone(), deps)
        })
        .collect()
}

/// Cells of the markdown table rows that follow `heading` (up to the next heading).
fn table_after(doc: &str, heading: &str) -> Vec<Vec<String>> {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no `{heading}` section"));
    doc[start + heading.len()..]
        .lines()
        .take_while(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with('|') && !l.starts_with("|---") && !l.starts_with("| crate"))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_owned())
                .collect()
        })
        .collect()
}

fn documented_graph(doc: &str) -> Graph {
    table_after(doc, "## Dependency graph")
        .into_iter()
        .map(|cells| {
            let deps = cells
                .get(1)
                .map(|c| {
                    c.split(',')
                        .map(|d| d.trim().trim_matches('`').to_owned())
                        .filter(|d| !d.is_empty() && d != "—")
                        .collect()
                })
                .unwrap_or_default();
            (cells[0].clone(), deps)
        })
        .collect()
}

#[test]
fn architecture_md_matches_the_cargo_graph() {
    let doc = fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let real = real_graph();
    assert_eq!(
        documented_graph(&doc),
        real,
        "ARCHITECTURE.md's `## Dependency graph` table (left) disagrees with crates/*/Cargo.toml (right)"
    );
    let roles: BTreeSet<String> = table_after(&doc, "## Crates")
        .into_iter()
        .map(|cells| cells[0].clone())
        .collect();
    let crates: BTreeSet<String> = real.keys().cloned().collect();
    assert_eq!(
        roles, crates,
        "ARCHITECTURE.md's `## Crates` table lists other crates than crates/"
    );
}
