//! The external tools, each bounded in time: NSD and Knot as daemons
//! (stopped when dropped), nsd-control, knotc, dig, ldns-verify-zone,
//! dnssec-keygen and dnssec-verify.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::common::*;
use crate::{Key, try_ask};

pub use crate::common::tools::{Output, find_tool, missing, run_tool};

/// `dig @server -p port <args>` with TSIG `key` when given.
pub fn dig(server: SocketAddr, key: Option<&Key>, args: &[&str]) -> Output {
    let at = format!("@{}", server.ip());
    let port = server.port().to_string();
    let y = key.map(Key::dig);
    let mut all: Vec<&str> = vec![&at, "-p", &port, "+tries=1", "+time=5"];
    if let Some(y) = &y {
        all.extend(["-y", y]);
    }
    all.extend_from_slice(args);
    run_tool("dig", &all, Duration::from_secs(30))
}

/// The zone records dig printed (no comments, no TSIG), normalised to
/// single spaces.
pub fn dig_records(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| l.split(' ').nth(3) != Some("TSIG"))
        .collect()
}

/// A daemon (NSD or Knot) started for a test; SIGTERM (then SIGKILL)
/// when dropped.
pub struct Daemon {
    what: &'static str,
    child: Option<Child>,
    /// Where it answers DNS.
    pub addr: SocketAddr,
    /// Its directory.
    pub dir: PathBuf,
    /// Its configuration file.
    pub conf: PathBuf,
    /// Files holding its log.
    logs: Vec<PathBuf>,
}

impl Daemon {
    fn spawn(
        what: &'static str,
        bin: &str,
        args: &[&str],
        dir: &Path,
        conf: PathBuf,
        port: u16,
        logs: Vec<PathBuf>,
    ) -> Daemon {
        let out = std::fs::File::create(dir.join("stdout.log")).unwrap();
        let child = Command::new(find_tool(bin).unwrap())
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        let mut d = Daemon {
            what,
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir: dir.to_path_buf(),
            conf,
            logs: std::iter::once(dir.join("stdout.log"))
                .chain(logs)
                .collect(),
        };
        // up: it answers anything (SERVFAIL before its first transfer)
        let probe = query("example.test.", RecordType::SOA, None)
            .to_vec()
            .unwrap();
        let up = wait_until(Duration::from_secs(20), || {
            udp_raw(d.addr, &probe, Duration::from_millis(300)).is_some()
        });
        if up.is_none() {
            let log = d.log();
            d.stop();
            panic!("{what} did not answer on {}:\n{log}", d.addr);
        }
        d
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.logs
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stops it: SIGTERM, up to 10 s, then SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        // SAFETY: a signal to our own child
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.what);
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Waits up to `limit` until it serves the zone at `serial`.
    pub fn wait_serial(&self, serial: u32, limit: Duration) -> Option<Duration> {
        wait_until(limit, || crate::soa_serial(self.addr) == Some(serial))
    }

    /// The serial it answers, for messages.
    pub fn serial(&self) -> Option<u32> {
        try_ask(self.addr, crate::ZONE_NAME, RecordType::SOA).and_then(|m| {
            m.answers.iter().find_map(|r| match &r.data {
                hickory_proto::rr::RData::SOA(s) => Some(s.serial),
                _ => None,
            })
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// NSD as a secondary of `primary` for example.test, with TSIG `key`
/// for its requests and for NOTIFYs from 127.0.0.1, in `dir` on `port`.
pub fn nsd_secondary(dir: &Path, port: u16, primary: SocketAddr, key: &Key) -> Daemon {
    let d = dir.display();
    let conf = format!(
        r#"server:
    ip-address: 127.0.0.1
    port: {port}
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    zonelistfile: "{d}/zone.list"
    xfrdfile: "{d}/xfrd.state"
    xfrdir: "{d}"
    pidfile: "{d}/nsd.pid"
    logfile: "{d}/nsd.log"
    verbosity: 2
remote-control:
    control-enable: yes
    control-interface: {d}/nsd.ctl
key:
    name: "{name}"
    algorithm: {alg}
    secret: "{secret}"
zone:
    name: "example.test"
    request-xfr: {pip}@{pport} {name}
    allow-notify: 127.0.0.1 {name}
"#,
        name = key.name,
        alg = key.algorithm,
        secret = key.secret,
        pip = primary.ip(),
        pport = primary.port(),
    );
    let path = dir.join("nsd.conf");
    std::fs::write(&path, conf).unwrap();
    let p = path.to_str().unwrap().to_string();
    Daemon::spawn(
        "nsd",
        "nsd",
        &["-d", "-c", &p],
        dir,
        path.clone(),
        port,
        vec![dir.join("nsd.log")],
    )
}

/// `nsd-control -c CONF <args>`.
pub fn nsd_control(nsd: &Daemon, args: &[&str]) -> Output {
    let conf = nsd.conf.to_str().unwrap();
    let mut all = vec!["-c", conf];
    all.extend_from_slice(args);
    run_tool("nsd-control", &all, Duration::from_secs(20))
}

/// The common head of a Knot configuration in `dir`: listener, stderr
/// log, storage, the key.
fn knot_head(dir: &Path, port: u16, key: &Key) -> String {
    let d = dir.display();
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::create_dir_all(dir.join("storage")).unwrap();
    format!(
        r#"server:
    rundir: "{d}/run"
    listen: 127.0.0.1@{port}
log:
  - target: stderr
    any: info
database:
    storage: "{d}/storage"
key:
  - id: {name}
    algorithm: {alg}
    secret: {secret}
"#,
        name = key.name,
        alg = key.algorithm,
        secret = key.secret,
    )
}

/// Knot as a secondary of `primary` (TSIG `key` for its requests and for
/// NOTIFYs from 127.0.0.0/8), in `dir` on `port`.
pub fn knot_secondary(dir: &Path, port: u16, primary: SocketAddr, key: &Key) -> Daemon {
    let conf = format!(
        r#"{head}remote:
  - id: signpost
    address: {pip}@{pport}
    key: {name}
acl:
  - id: notify-from-primary
    address: 127.0.0.0/8
    key: {name}
    action: notify
template:
  - id: default
    storage: "{d}/storage"
zone:
  - domain: example.test
    master: signpost
    acl: notify-from-primary
"#,
        head = knot_head(dir, port, key),
        pip = primary.ip(),
        pport = primary.port(),
        name = key.name,
        d = dir.display(),
    );
    knot_spawn(dir, port, conf)
}

/// Knot as a (hidden) primary of `zone_text` that allows transfers with
/// `key` from 127.0.0.0/8 and NOTIFYs `secondary`, in `dir` on `port`.
/// Changes made with [`knotc`] get a new serial and a journal (IXFR).
/// With `signing`, Knot signs the zone with keys of its own.
pub fn knot_primary(
    dir: &Path,
    port: u16,
    zone_text: &str,
    secondary: SocketAddr,
    key: &Key,
    signing: bool,
) -> Daemon {
    let mut head = knot_head(dir, port, key);
    let signing = if signing {
        head = head.replace(
            "database:\n",
            &format!("database:\n    kasp-db: \"{}/kasp\"\n", dir.display()),
        );
        "    dnssec-signing: on\n"
    } else {
        ""
    };
    std::fs::write(dir.join("storage/example.test.zone"), zone_text).unwrap();
    let conf = format!(
        r#"{head}remote:
  - id: signpost
    address: {sip}@{sport}
    key: {name}
acl:
  - id: xfr-with-key
    address: 127.0.0.0/8
    key: {name}
    action: transfer
template:
  - id: default
    storage: "{d}/storage"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: difference-no-serial
    journal-content: all
zone:
  - domain: example.test
    acl: xfr-with-key
    notify: signpost
{signing}"#,
        sip = secondary.ip(),
        sport = secondary.port(),
        name = key.name,
        d = dir.display(),
    );
    knot_spawn(dir, port, conf)
}

fn knot_spawn(dir: &Path, port: u16, conf: String) -> Daemon {
    let path = dir.join("knot.conf");
    std::fs::write(&path, conf).unwrap();
    let p = path.to_str().unwrap().to_string();
    Daemon::spawn(
        "knotd",
        "knotd",
        &["-c", &p],
        dir,
        path.clone(),
        port,
        vec![],
    )
}

/// `knotc -s SOCKET <args>`; asserts success.
pub fn knotc(knot: &Daemon, args: &[&str]) -> Output {
    let sock = knot.dir.join("run/knot.sock");
    let sock = sock.to_str().unwrap();
    let mut all = vec!["-s", sock];
    all.extend_from_slice(args);
    let out = run_tool("knotc", &all, Duration::from_secs(20));
    assert_eq!(
        out.code,
        0,
        "knotc {args:?}: {}\n{}",
        out.text(),
        knot.log()
    );
    out
}

/// One knotc transaction on example.test: `changes` are (command, args)
/// such as ("zone-set", "mail 300 A 192.0.2.26"); committed at the end,
/// which bumps the serial and NOTIFYs.
pub fn knot_change(knot: &Daemon, changes: &[(&str, &str)]) {
    knotc(knot, &["zone-begin", "example.test"]);
    for (cmd, args) in changes {
        let mut all = vec![*cmd, "example.test"];
        all.extend(args.split_whitespace());
        knotc(knot, &all);
    }
    knotc(knot, &["zone-commit", "example.test"]);
}

/// `dnssec-keygen -K <dir>/keys <args> example.test`: the key's base name.
pub fn keygen(dir: &Path, args: &[&str]) -> String {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let k = keys.to_str().unwrap();
    let mut all = vec!["-q", "-K", k];
    all.extend_from_slice(args);
    all.push("example.test");
    let out = run_tool("dnssec-keygen", &all, Duration::from_secs(60));
    assert_eq!(out.code, 0, "dnssec-keygen {args:?}: {}", out.text());
    let base = out.stdout.trim().to_string();
    assert!(base.starts_with("Kexample.test.+"), "{}", out.text());
    base
}
