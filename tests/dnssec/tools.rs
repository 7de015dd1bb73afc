//! The external tools: BIND's dnssec-keygen, dnssec-settime,
//! dnssec-dsfromkey and delv, and Unbound; each run bounded in time.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::common::*;

pub use crate::common::tools::{find_tool, missing, run_tool};

/// One BIND key pair in `<dir>/keys`.
#[derive(Debug, Clone)]
pub struct KeyFile {
    /// The directory holding it.
    pub dir: PathBuf,
    /// `Kexample.test.+013+12345`.
    pub base: String,
    pub tag: u16,
    pub algorithm: u8,
    pub flags: u16,
    /// The public key, base64 without spaces.
    pub public: String,
}

impl KeyFile {
    /// Reads the `.key` file of `base` in `dir`.
    pub fn load(dir: &Path, base: &str) -> KeyFile {
        let text = std::fs::read_to_string(dir.join(format!("{base}.key"))).unwrap();
        let line = text
            .lines()
            .find(|l| !l.starts_with(';') && l.contains("DNSKEY"))
            .unwrap_or_else(|| panic!("no DNSKEY in {base}.key:\n{text}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        let i = fields.iter().position(|f| *f == "DNSKEY").unwrap();
        KeyFile {
            dir: dir.to_path_buf(),
            base: base.to_string(),
            tag: base.rsplit('+').next().unwrap().parse().unwrap(),
            algorithm: fields[i + 3].parse().unwrap(),
            flags: fields[i + 1].parse().unwrap(),
            public: fields[i + 4..].concat(),
        }
    }

    /// How the config names it (relative to the config).
    pub fn config_path(&self) -> String {
        format!("keys/{}.private", self.base)
    }

    /// The `.private` file.
    pub fn private_path(&self) -> PathBuf {
        self.dir.join(format!("{}.private", self.base))
    }

    /// The `.key` file.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join(format!("{}.key", self.base))
    }

    /// The DNSKEY presentation data: "257 3 13 BASE64".
    pub fn rdata(&self) -> String {
        format!("{} 3 {} {}", self.flags, self.algorithm, self.public)
    }

    /// A timing point of the `.private` file ("Activate", "Inactive",
    /// ...) as Unix seconds.
    pub fn timing(&self, field: &str) -> Option<i64> {
        let text = std::fs::read_to_string(self.private_path()).unwrap();
        let v = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}: ")))?;
        Some(unix_of_timestamp(v.trim()))
    }
}

/// YYYYMMDDHHMMSS (UTC) as Unix seconds.
pub fn unix_of_timestamp(s: &str) -> i64 {
    let n = |a: usize, b: usize| -> i64 { s[a..b].parse().unwrap() };
    let (y, m, d) = (n(0, 4), n(4, 6), n(6, 8));
    // days from civil (Howard Hinnant)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(8, 10) * 3600 + n(10, 12) * 60 + n(12, 14)
}

/// Now as Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `dnssec-keygen -K <dir>/keys <args> example.test`.
pub fn keygen(dir: &Path, args: &[&str]) -> KeyFile {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let k = keys.to_str().unwrap();
    let mut all = vec!["-q", "-K", k];
    all.extend_from_slice(args);
    all.push("example.test");
    let out = run_tool("dnssec-keygen", &all, Duration::from_secs(60));
    assert_eq!(out.code, 0, "dnssec-keygen {args:?}: {}", out.text());
    let base = out.stdout.trim();
    assert!(base.starts_with("Kexample.test.+"), "{}", out.text());
    KeyFile::load(&keys, base)
}

/// An ECDSA P-256 KSK (flags 257) and ZSK (256).
pub fn ecdsa_pair(dir: &Path) -> (KeyFile, KeyFile) {
    let ksk = keygen(dir, &["-a", "ECDSAP256SHA256", "-f", "KSK"]);
    let zsk = keygen(dir, &["-a", "ECDSAP256SHA256"]);
    assert_eq!((ksk.flags, zsk.flags), (257, 256));
    (ksk, zsk)
}

/// An Ed25519 key with the SEP flag, alone: a CSK.
pub fn ed25519_csk(dir: &Path) -> KeyFile {
    let k = keygen(dir, &["-a", "ED25519", "-f", "KSK"]);
    assert_eq!((k.flags, k.algorithm), (257, 15));
    k
}

/// Copies the fixture key `tag` from tests/data/dnssec into `<dir>/keys`.
pub fn fixture(dir: &Path, base: &str) -> KeyFile {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dnssec");
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    for ext in ["key", "private"] {
        std::fs::copy(
            src.join(format!("{base}.{ext}")),
            keys.join(format!("{base}.{ext}")),
        )
        .unwrap();
    }
    KeyFile::load(&keys, base)
}

/// `dnssec-settime <args> <key>`.
pub fn settime(k: &KeyFile, args: &[&str]) {
    let path = k.dir.join(&k.base);
    let mut all = args.to_vec();
    all.push(path.to_str().unwrap());
    let out = run_tool("dnssec-settime", &all, Duration::from_secs(60));
    assert_eq!(out.code, 0, "dnssec-settime {args:?}: {}", out.text());
}

/// delv against one server with the trust anchor `example.test.`.
pub struct Delv {
    anchor: PathBuf,
    server: SocketAddr,
}

impl Delv {
    /// Writes the anchor file for the SEP key `ksk` into `dir`.
    pub fn new(dir: &Path, server: SocketAddr, ksk: &KeyFile) -> Delv {
        let anchor = dir.join(format!("anchor-{}.conf", server.port()));
        std::fs::write(
            &anchor,
            format!(
                "trust-anchors {{ example.test. static-key {} 3 {} \"{}\"; }};\n",
                ksk.flags, ksk.algorithm, ksk.public
            ),
        )
        .unwrap();
        Delv { anchor, server }
    }

    /// delv's output (stdout and stderr) for `name` `t`, asked from `src`.
    pub fn ask(&self, src: &str, name: &str, t: &str) -> String {
        let port = self.server.port().to_string();
        let ip = self.server.ip().to_string();
        let anchor = self.anchor.to_str().unwrap();
        let out = run_tool(
            "delv",
            &[
                &format!("@{ip}"),
                "-p",
                &port,
                "-b",
                src,
                "-a",
                anchor,
                "+root=example.test",
                name,
                t,
            ],
            Duration::from_secs(30),
        );
        out.text()
    }

    /// Asks and asserts a validated positive answer; returns the output.
    pub fn validated(&self, src: &str, name: &str, t: &str) -> String {
        let out = self.ask(src, name, t);
        assert!(
            out.lines().any(|l| l.trim() == "; fully validated"),
            "delv -b {src} {name} {t} did not validate:\n{out}"
        );
        out
    }

    /// Asks and asserts a validated negative answer; returns the output.
    pub fn negative(&self, src: &str, name: &str, t: &str) -> String {
        let out = self.ask(src, name, t);
        assert!(
            out.lines()
                .any(|l| l.trim() == "; negative response, fully validated"),
            "delv -b {src} {name} {t}: no validated negative answer:\n{out}"
        );
        out
    }
}

/// The records delv printed for `name` of type `t` (rdata text).
pub fn delv_rdata(out: &str, name: &str, t: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            // delv comments DNSKEYs: "  ; KSK; alg = ...; key id = ..."
            let l = l.split("  ;").next().unwrap();
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 5 && f[0].eq_ignore_ascii_case(name) && f[2] == "IN" && f[3] == t)
                .then(|| f[4..].join(" "))
        })
        .collect()
}

/// A port free on 127.0.0.1 for both UDP and TCP.
fn free_port() -> u16 {
    for _ in 0..50 {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

/// A validating Unbound with `example.test` as a stub zone at signpost.
pub struct Unbound {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Unbound {
    /// Starts one in `dir` validating with the SEP key `ksk`, querying
    /// signpost from `source` (an address on lo). TTLs are capped at 2 s
    /// so that key sets are fetched again promptly, as in a rollover the
    /// DNSKEY TTL has passed.
    pub fn start(dir: &Path, signpost: SocketAddr, ksk: &KeyFile, source: &str) -> Unbound {
        let dir = dir.join(format!("unbound-{}", signpost.port()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let conf = format!(
            r#"server:
    interface: 127.0.0.1
    port: {port}
    do-ip6: no
    do-daemonize: no
    username: ""
    chroot: ""
    use-syslog: no
    logfile: ""
    directory: "{d}"
    pidfile: "{d}/unbound.pid"
    access-control: 127.0.0.0/8 allow
    local-zone: "test." nodefault
    do-not-query-localhost: no
    outgoing-interface: {source}
    module-config: "validator iterator"
    trust-anchor: "example.test. DNSKEY {rdata}"
    val-log-level: 2
    cache-max-ttl: 2
    cache-max-negative-ttl: 2
    val-bogus-ttl: 1
    verbosity: 1

stub-zone:
    name: "example.test"
    stub-addr: {ip}@{sport}
"#,
            d = dir.display(),
            rdata = ksk.rdata(),
            ip = signpost.ip(),
            sport = signpost.port(),
        );
        let conf_path = dir.join("unbound.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.join("unbound.log")).unwrap();
        let child = Command::new(find_tool("unbound").unwrap())
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start unbound");
        let mut u = Unbound {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        let mut probe = query("example.test.", RecordType::SOA, None);
        probe.metadata.recursion_desired = true;
        let probe = probe.to_vec().unwrap();
        let up = wait_until(Duration::from_secs(20), || {
            udp_raw(u.addr, &probe, Duration::from_millis(300)).is_some()
        });
        if up.is_none() {
            let _ = u.child.kill();
            panic!("unbound did not answer:\n{}", u.log());
        }
        u
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("unbound.log")).unwrap_or_default()
    }

    /// A stub client's query (RD, AD set; EDNS without DO).
    pub fn ask(&self, name: &str, t: RecordType) -> Message {
        let mut m = crate::q(name, t, 0);
        m.metadata.recursion_desired = true;
        m.metadata.authentic_data = true;
        let bytes = m.to_vec().unwrap();
        for _ in 0..3 {
            if let Some(r) = udp_exchange(self.addr, &bytes) {
                if r.metadata.truncation {
                    return tcp_exchange(self.addr, &bytes);
                }
                return r;
            }
        }
        panic!("unbound did not answer {name} {t}:\n{}", self.log());
    }

    /// Asks and asserts NOERROR with AD (validated); returns the answer.
    pub fn secure(&self, name: &str, t: RecordType) -> Message {
        let m = self.ask(name, t);
        assert_eq!(
            m.metadata.response_code,
            hickory_proto::op::ResponseCode::NoError,
            "unbound: {name} {t}: {m:?}\n{}",
            self.log()
        );
        assert!(
            m.metadata.authentic_data,
            "unbound: {name} {t} not validated (AD=0): {m:?}\n{}",
            self.log()
        );
        m
    }
}
