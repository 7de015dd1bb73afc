//! The house keeps its floors: every `crate::` path in `src/` must name a
//! room that the table in docs/architecture.md lets its room use, every
//! room in `src/` must be in that table, and the table itself must only
//! let a room use rooms on lower floors (so no circle can form). Like
//! CoreDNS's tests over its own docs: cheap, and it cannot rot.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A row of the table: floor, and the rooms it may use.
struct Room {
    floor: u32,
    uses: BTreeSet<String>,
    planned: bool,
}

fn table() -> BTreeMap<String, Room> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md");
    let text = std::fs::read_to_string(&doc).expect("docs/architecture.md readable");
    let start = text
        .find("<!-- layering:")
        .expect("docs/architecture.md has the <!-- layering: --> table");
    let mut rooms = BTreeMap::new();
    for line in text[start..].lines().skip(1) {
        let line = line.trim();
        if !line.starts_with('|') {
            if rooms.is_empty() {
                continue;
            }
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 4 || cells[0] == "floor" || cells[0].starts_with("---") {
            continue;
        }
        let floor: u32 = cells[0]
            .parse()
            .unwrap_or_else(|_| panic!("floor {:?} in {line:?}", cells[0]));
        let name = cells[1].trim_matches('`').to_string();
        let uses = cells[2]
            .split(',')
            .map(|u| u.trim().trim_matches('`').to_string())
            .filter(|u| !u.is_empty() && u != "—")
            .collect();
        let planned = cells[3].starts_with("(planned)");
        assert!(
            rooms
                .insert(
                    name.clone(),
                    Room {
                        floor,
                        uses,
                        planned
                    }
                )
                .is_none(),
            "room {name} listed twice"
        );
    }
    assert!(rooms.len() > 10, "the layering table was not found");
    rooms
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src readable") {
        let p = e.expect("directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The room a file belongs to: `src/foo.rs` and `src/foo/...` are `foo`,
/// `src/lib.rs` is `lib`.
fn room_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("file under src");
    let first = rel
        .components()
        .next()
        .expect("non-empty path")
        .as_os_str()
        .to_string_lossy()
        .to_string();
    first.trim_end_matches(".rs").to_string()
}

/// The rooms code names through `crate::`: `crate::a::b`,
/// `crate::{a, b::{c, d}}` (over several lines too); a crate-root item
/// (`crate::run`) is in `lib`. Returns each with its byte offset.
fn named_rooms(code: &str, modules: &BTreeSet<String>) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = code[at..].find("crate::") {
        let start = at + i;
        let before = code[..start].chars().last();
        at = start + "crate::".len();
        // `$crate::` and `other_crate::` are not ours
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &code[at..];
        let mut names = Vec::new();
        if let Some(group) = rest.strip_prefix('{') {
            // the top-level names of the group
            let (mut depth, mut name, mut fresh) = (0, String::new(), true);
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.push(std::mem::take(&mut name));
                        fresh = true;
                    }
                    ':' if depth == 0 => fresh = false,
                    c if depth == 0 && fresh && (c.is_alphanumeric() || c == '_') => name.push(c),
                    _ => {}
                }
            }
            names.push(name);
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            names.push(rest[..end].to_string());
        }
        for n in names.into_iter().filter(|n| !n.is_empty()) {
            let room = if modules.contains(&n) {
                n
            } else {
                "lib".to_string()
            };
            out.push((start, room));
        }
    }
    out
}

#[test]
fn rooms_use_only_rooms_below_them() {
    let rooms = table();
    // the table is a strict order: no circle can hide in it
    for (name, r) in &rooms {
        for u in &r.uses {
            let used = rooms
                .get(u)
                .unwrap_or_else(|| panic!("{name} may use {u}, which the table does not list"));
            assert!(
                used.floor < r.floor,
                "the table lets {name} (floor {}) use {u} (floor {}): a room may only use lower floors",
                r.floor,
                used.floor
            );
        }
    }

    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| room_of(&src, f))
        .filter(|r| r != "main" && r != "lib")
        .collect();
    for m in &modules {
        let r = rooms.get(m).unwrap_or_else(|| {
            panic!("src/{m} is not in the layering table of docs/architecture.md")
        });
        assert!(!r.planned, "{m} exists: drop \"(planned)\" from its row");
    }

    let mut upward = Vec::new();
    let mut checked = 0;
    for f in &files {
        let room = room_of(&src, f);
        if room == "main" {
            continue; // the binary uses the library as `signpost::`
        }
        let allowed = &rooms[&room].uses;
        let text = std::fs::read_to_string(f).expect("source readable");
        // comments (and doc comments) may name any room
        let code: String = text
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        for (offset, used) in named_rooms(&code, &modules) {
            checked += 1;
            if used != room && !allowed.contains(&used) {
                let line = code[..offset].matches('\n').count();
                upward.push(format!(
                    "{}:{}: {room} uses {used}: {}",
                    f.strip_prefix(&src).unwrap_or(f).display(),
                    line + 1,
                    text.lines().nth(line).unwrap_or("").trim()
                ));
            }
        }
    }
    assert!(checked > 100, "only {checked} crate:: paths found");
    assert!(
        upward.is_empty(),
        "{} uses against the layering of docs/architecture.md:\n{}",
        upward.len(),
        upward.join("\n")
    );
}

#[test]
fn paths_are_read_as_rooms() {
    let modules: BTreeSet<String> = ["dns", "config", "view", "state"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let rooms = |code: &str| -> Vec<String> {
        named_rooms(code, &modules)
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    };
    assert_eq!(rooms("use crate::dns::rrl::Limits;"), ["dns"]);
    assert_eq!(rooms("use crate::{config::X, view};"), ["config", "view"]);
    assert_eq!(
        rooms("use crate::{\n    config::{A, B},\n    state::{self, C},\n};"),
        ["config", "state"]
    );
    assert_eq!(rooms("crate::run(opts)"), ["lib"]);
    assert!(rooms("$crate::dns::x").is_empty());
    assert!(rooms("let x = 1;").is_empty());
}
