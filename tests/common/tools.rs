//! External tools for the tests that run them (delv, Unbound, NSD, Knot,
//! dig, ldns and BIND's DNSSEC tools): where they are, which Debian
//! package brings them, and a run bounded in time.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where a tool is installed, if it is.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(PathBuf::from)
        .chain(
            ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"]
                .into_iter()
                .map(PathBuf::from),
        )
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The Debian package a tool comes from.
fn package(tool: &str) -> &'static str {
    match tool {
        "unbound" => "unbound",
        "delv" | "dig" => "bind9-dnsutils",
        "nsd" | "nsd-control" => "nsd",
        "knotd" | "knotc" => "knot",
        "kdig" => "knot-dnsutils",
        "ldns-verify-zone" => "ldnsutils",
        _ => "bind9-utils",
    }
}

/// `Some("SKIP: ...")` when one of `tools` is not installed.
pub fn missing(tools: &[&str]) -> Option<String> {
    let gone: Vec<String> = tools
        .iter()
        .filter(|t| find_tool(t).is_none())
        .map(|t| format!("{t} (Debian package {})", package(t)))
        .collect();
    (!gone.is_empty()).then(|| {
        format!(
            "SKIP: not installed: {}; .ci/run installs them",
            gone.join(", ")
        )
    })
}

/// What a finished tool said.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout then stderr.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `tool` with `args`; kills it after `limit`.
pub fn run_tool(tool: &str, args: &[&str], limit: Duration) -> Output {
    let bin = find_tool(tool).unwrap_or_else(|| panic!("{tool} not installed"));
    let mut child = Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {tool}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{tool} {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        code: status.code().unwrap_or(-1),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}
