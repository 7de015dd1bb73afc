//! Every TOML example in the README and docs/ must be a valid
//! configuration, so the documentation cannot drift from the code.

use std::path::Path;

fn toml_blocks(text: &str) -> Vec<(usize, String, bool)> {
    // (line, block, is_fragment): a block preceded by `<!-- fragment -->`
    // only has to parse; every other one must validate completely.
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_start() == "```toml" {
            let fragment = i > 0 && lines[i - 1].contains("<!-- fragment -->");
            let start = i + 1;
            let mut j = start;
            while j < lines.len() && lines[j].trim_start() != "```" {
                j += 1;
            }
            out.push((start + 1, lines[start..j].join("\n"), fragment));
            i = j;
        }
        i += 1;
    }
    out
}

#[test]
fn every_toml_example_in_the_docs_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (line, block, fragment) in toml_blocks(&text) {
            let name = format!("{}:{line}", f.display());
            // paths in examples are relative to the repository root
            let result = if fragment {
                signpost::config::parse_raw(&block, &name)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            } else {
                signpost::config::parse(&block, &root.join("signpost.toml"))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            };
            if let Err(e) = result {
                failures.push(format!("{name}: {e}"));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "invalid examples:\n{}",
        failures.join("\n")
    );
    assert!(
        checked >= 3,
        "expected TOML examples in the docs, found {checked}"
    );
}

#[test]
fn the_example_config_loads_with_its_zone_and_geoip_db() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let metrics = signpost::metrics::Metrics::new();
    let c = signpost::state::load(&root.join("signpost.toml"), &metrics)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.table.zones.len(), 1);
    assert!(c.services.len() >= 3);
    assert!(c.regions.len() >= 3);
}
