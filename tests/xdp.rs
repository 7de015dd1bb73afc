//! UDP through AF_XDP (`[server.xdp]`), black box on a real veth pair: two
//! network namespaces (198.18.0.1/24 and 2001:db8::1 on the server side,
//! .2 and ::2 on the client side, 2 queues), the signpost binary in the
//! server namespace, real `dig` in the client namespace. Native mode and
//! skb mode answer over IPv4 and IPv6 through XDP (the XDP counters say
//! so) while TCP is still served by the sockets beside it; native mode on
//! `lo` is refused by the driver, logged, and served by the sockets; the
//! rate limits apply to answers sent through XDP.
//!
//! Needs root (network namespaces), `ip` and `dig`; prints "SKIPPED: ..."
//! where the namespaces cannot be made.
//! Traffic stays inside the namespaces, which are removed at the end,
//! also on a panic.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{BIN, scratch, strip_ansi};

const ZONE: &str = r#"$ORIGIN example.test.
$TTL 300
@       IN SOA  ns1.example.test. hostmaster.example.test. 2026112201 3600 600 604800 60
        IN NS   ns1.example.test.
ns1     IN A    198.18.0.1
mail    IN A    192.0.2.25
"#;

const REST: &str = r#"
[zones."example.test."]
file = "example.test.zone"

[regions.only]
location = { lat = 1.0, lon = 1.0 }
endpoints = [{ address = "192.0.2.10" }]

[services."www.example.test."]
regions = ["only"]
policy = "failover"
"#;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// The two namespaces and the veth pair between them; removed on drop.
struct Netns {
    srv: String,
    cli: String,
    veth: String,
}

impl Netns {
    /// None when they cannot be made (not root, no `ip`, no netns support).
    fn new() -> Option<Netns> {
        let id = std::process::id();
        let n = Netns {
            srv: format!("spx-{id}-s"),
            cli: format!("spx-{id}-c"),
            veth: format!("spx{id}s"),
        };
        let peer = format!("spx{id}c");
        let made = Command::new("ip")
            .args(["netns", "add", &n.srv])
            .output()
            .is_ok_and(|o| o.status.success());
        if !made {
            return None;
        }
        let steps: Vec<Vec<&str>> = vec![
            vec!["ip", "netns", "add", &n.cli],
            vec![
                "ip",
                "link",
                "add",
                &n.veth,
                "numtxqueues",
                "2",
                "numrxqueues",
                "2",
                "type",
                "veth",
                "peer",
                "name",
                &peer,
                "numtxqueues",
                "2",
                "numrxqueues",
                "2",
            ],
            vec!["ip", "link", "set", &n.veth, "netns", &n.srv],
            vec!["ip", "link", "set", &peer, "netns", &n.cli],
            vec![
                "ip",
                "-n",
                &n.srv,
                "addr",
                "add",
                "198.18.0.1/24",
                "dev",
                &n.veth,
            ],
            vec![
                "ip",
                "-n",
                &n.cli,
                "addr",
                "add",
                "198.18.0.2/24",
                "dev",
                &peer,
            ],
            vec![
                "ip",
                "-n",
                &n.srv,
                "addr",
                "add",
                "2001:db8::1/64",
                "dev",
                &n.veth,
                "nodad",
            ],
            vec![
                "ip",
                "-n",
                &n.cli,
                "addr",
                "add",
                "2001:db8::2/64",
                "dev",
                &peer,
                "nodad",
            ],
            vec!["ip", "-n", &n.srv, "link", "set", "lo", "up"],
            vec!["ip", "-n", &n.cli, "link", "set", "lo", "up"],
            vec!["ip", "-n", &n.srv, "link", "set", &n.veth, "up"],
            vec!["ip", "-n", &n.cli, "link", "set", &peer, "up"],
        ];
        for s in &steps {
            let o = run(s);
            if !o.status.success() {
                eprintln!("{s:?}: {}", String::from_utf8_lossy(&o.stderr));
                return None; // n is dropped: what was made is removed
            }
        }
        Some(n)
    }

    /// Runs `args` in the client namespace; its stdout.
    fn client(&self, args: &[&str]) -> String {
        let mut a = vec!["ip", "netns", "exec", &self.cli];
        a.extend_from_slice(args);
        String::from_utf8_lossy(&run(&a).stdout).into_owned()
    }

    /// Runs `args` in the server namespace; its stdout.
    fn server(&self, args: &[&str]) -> String {
        let mut a = vec!["ip", "netns", "exec", &self.srv];
        a.extend_from_slice(args);
        String::from_utf8_lossy(&run(&a).stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // deleting the namespaces deletes the veth pair in them
        for ns in [&self.srv, &self.cli] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// signpost running in the server namespace; stopped on drop.
struct Signpost {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Signpost {
    fn start(ns: &Netns, xdp: &str) -> Signpost {
        let dir = scratch("xdp");
        std::fs::write(dir.join("example.test.zone"), ZONE).unwrap();
        let config = format!(
            "[server]\nlisten = [\"198.18.0.1:5300\", \"[2001:db8::1]:5300\"]\n\
             admin = \"127.0.0.1:9053\"\n\n[server.xdp]\n{xdp}\n{REST}"
        );
        std::fs::write(dir.join("signpost.toml"), config).unwrap();
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.srv,
                BIN,
                "serve",
                "--config",
                "signpost.toml",
            ])
            .current_dir(&dir)
            .env("SIGNPOST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn signpost in the server namespace");
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(strip_ansi(&line));
                }
            });
        }
        let s = Signpost { child, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !s.logged("admin listening on") {
            assert!(
                Instant::now() < deadline,
                "signpost did not start:\n{}",
                s.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn logged(&self, what: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(what))
    }

    fn line(&self, what: &str) -> Option<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(what))
            .cloned()
    }

    /// A metric's value, read from the admin API inside the namespace.
    fn metric(&self, ns: &Netns, name: &str) -> u64 {
        // bash's /dev/tcp: no HTTP client needed
        let get = "exec 3<>/dev/tcp/127.0.0.1/9053 && \
                   printf 'GET /metrics HTTP/1.0\\r\\nHost: 127.0.0.1:9053\\r\\n\\r\\n' >&3 && \
                   timeout 5 cat <&3";
        let text = ns.server(&["bash", "-c", get]);
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    }
}

impl Drop for Signpost {
    fn drop(&mut self) {
        // SAFETY: signals our own child (`ip netns exec` execs signpost).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dig +short` from the client namespace: the answer's lines.
fn dig(ns: &Netns, server: &str, name: &str, extra: &[&str]) -> Vec<String> {
    let at = format!("@{server}");
    let mut a = vec![
        "dig", "+short", "+tries=1", "+time=2", &at, "-p", "5300", name, "A",
    ];
    a.extend_from_slice(extra);
    ns.client(&a)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// UDP over IPv4 and IPv6 through XDP, TCP through the socket.
fn served_through_xdp(ns: &Netns, mode: &str) {
    let s = Signpost::start(
        ns,
        &format!("interfaces = [\"{}\"]\nmode = \"{mode}\"\n", ns.veth),
    );
    let serving = s
        .line("xdp: serving UDP")
        .unwrap_or_else(|| panic!("{mode}: no xdp line:\n{}", s.log.lock().unwrap().join("\n")));
    assert!(
        serving.contains(&format!("on {} queues 0,1 ({mode} mode", ns.veth)),
        "{serving}"
    );
    // each dig is a new socket, so a new source port: both queues get some (native)
    for i in 0..10 {
        assert_eq!(
            dig(ns, "198.18.0.1", "www.example.test", &[]),
            ["192.0.2.10"],
            "{mode} v4 #{i}"
        );
        assert_eq!(
            dig(ns, "2001:db8::1", "mail.example.test", &[]),
            ["192.0.2.25"],
            "{mode} v6 #{i}"
        );
    }
    // with EDNS (DO bit, 1232-byte buffer) too: the same respond() answers
    assert_eq!(
        dig(
            ns,
            "198.18.0.1",
            "www.example.test",
            &["+dnssec", "+bufsize=1232"]
        ),
        ["192.0.2.10"]
    );
    let rx = s.metric(ns, "signpost_xdp_packets_total{direction=\"rx\"}");
    let tx = s.metric(ns, "signpost_xdp_packets_total{direction=\"tx\"}");
    assert!(rx >= 21 && tx >= 21, "{mode}: rx {rx} tx {tx}");
    for reason in ["rx_ring_full", "tx_invalid"] {
        let lost = s.metric(
            ns,
            &format!("signpost_xdp_lost_total{{reason=\"{reason}\"}}"),
        );
        assert_eq!(lost, 0, "{mode}: {reason}");
    }
    let udp = s.metric(ns, "signpost_dns_queries_total{transport=\"udp\"}");
    assert!(udp >= 21, "{mode}: the queries are counted as UDP: {udp}");
    // TCP beside it, through the kernel's socket
    assert_eq!(
        dig(ns, "198.18.0.1", "www.example.test", &["+tcp"]),
        ["192.0.2.10"]
    );
    assert_eq!(
        dig(ns, "2001:db8::1", "mail.example.test", &["+tcp"]),
        ["192.0.2.25"]
    );
    assert_eq!(
        s.metric(ns, "signpost_dns_queries_total{transport=\"tcp\"}"),
        2
    );
    // a port nobody listens on is not taken by XDP: the kernel refuses it
    let other = ns.client(&[
        "dig",
        "+tries=1",
        "+time=1",
        "@198.18.0.1",
        "-p",
        "5399",
        "www.example.test",
    ]);
    assert!(!other.contains("192.0.2.10"), "{other}");
    let after = s.metric(ns, "signpost_xdp_packets_total{direction=\"rx\"}");
    assert_eq!(after, rx, "{mode}: the other port went through XDP");
    drop(s);
    // the program went with the process: nothing attached any more
    let link = ns.server(&["ip", "link", "show", &ns.veth]);
    assert!(!link.contains("prog/xdp"), "{link}");
}

#[test]
fn udp_through_af_xdp_on_a_veth_pair() {
    // SAFETY: plain getter.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: network namespaces need root");
        return;
    }
    let Some(ns) = Netns::new() else {
        eprintln!("SKIPPED: cannot create network namespaces and a veth pair here");
        return;
    };
    served_through_xdp(&ns, "native");
    served_through_xdp(&ns, "skb");

    // lo has no native XDP: logged, and the sockets serve
    let s = Signpost::start(&ns, "interfaces = [\"lo\"]\nmode = \"native\"\n");
    let warn = s
        .line("xdp: lo: not used")
        .unwrap_or_else(|| panic!("no fallback line:\n{}", s.log.lock().unwrap().join("\n")));
    assert!(
        warn.contains("EOPNOTSUPP") && warn.contains("UDP goes through sockets"),
        "{warn}"
    );
    assert!(!s.logged("xdp: serving"));
    assert_eq!(
        dig(&ns, "198.18.0.1", "www.example.test", &[]),
        ["192.0.2.10"]
    );
    assert_eq!(
        dig(&ns, "2001:db8::1", "mail.example.test", &[]),
        ["192.0.2.25"]
    );
    assert_eq!(
        s.metric(&ns, "signpost_xdp_packets_total{direction=\"rx\"}"),
        0
    );
    assert_eq!(
        s.metric(&ns, "signpost_dns_queries_total{transport=\"udp\"}"),
        2
    );
    drop(s);

    // the rate limits apply to answers sent through XDP as to the sockets'
    let s = Signpost::start(
        &ns,
        &format!(
            "interfaces = [\"{}\"]\n\n[server.rrl]\nresponses_per_second = 1\nslip = 1\n",
            ns.veth
        ),
    );
    let mut truncated = 0;
    for _ in 0..8 {
        let out = ns.client(&[
            "dig",
            "+ignore",
            "+tries=1",
            "+time=2",
            "@198.18.0.1",
            "-p",
            "5300",
            "www.example.test",
            "A",
        ]);
        assert!(out.contains("flags: qr aa"), "{out}");
        if out.contains("flags: qr aa tc") {
            truncated += 1;
        }
    }
    assert!(truncated >= 4, "{truncated} of 8 slipped");
    let slipped = s.metric(&ns, "signpost_dns_rrl_limited_total{action=\"slipped\"}");
    assert_eq!(slipped, truncated);
    assert!(s.metric(&ns, "signpost_xdp_packets_total{direction=\"tx\"}") >= 8);
}
