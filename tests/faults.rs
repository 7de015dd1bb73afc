//! The cluster's promises under injected faults, in the manner of Jepsen's
//! checks of etcd itself: a real three-member etcd, three signpost nodes,
//! real HTTP load balancers, and a steady query load on every node that
//! records every answer with its time. Faults are injected one after
//! another (some at once), each followed by a check of what must hold; at
//! the end the whole history is checked, and a table of what was injected
//! against what held is printed.
//!
//! The short run here is one round. `benches/faults.sh` runs more rounds
//! (`SIGNPOST_FAULT_ROUNDS`) and records the table in docs/reliability.md.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::etcd::Etcd;
use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

/// Three regions behind real load balancers, in failover order.
const REGIONS: [(&str, &str); 3] = [
    ("eu-west", "127.97.0.1"),
    ("ap-south", "127.97.0.2"),
    ("us-east", "127.97.0.3"),
];
const WWW: &str = "www.example.test.";
/// Probe interval, and fall = rise = 1.
const INTERVAL: Duration = Duration::from_millis(500);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn node_config(etcd: &str, node: usize, port: u16, prefix: &str) -> String {
    let mut cfg = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
admin = "127.0.0.1:0"
state = "signpost.state"
probe_source = "127.0.0.3{node}"

[cluster]
etcd = {etcd}
node = "ns{node}"
prefix = "{prefix}"

[zones."example.test."]
file = "example.test.zone"

[checks.web]
type = "http"
port = {port}
path = "/health"
interval = "500ms"
timeout = "300ms"
rise = 1
fall = 1
"#
    );
    for (i, (name, addr)) in REGIONS.iter().enumerate() {
        cfg.push_str(&format!(
            "\n[regions.{name}]\nlocation = {{ lat = {}.0, lon = 0.0 }}\ncheck = \"web\"\nendpoints = [{{ address = \"{addr}\" }}]\n",
            10 * i
        ));
    }
    cfg.push_str(
        r#"
[services."www.example.test."]
regions = ["eu-west", "ap-south", "us-east"]
policy = "failover"
ttl = 5
min_healthy_regions = 2
"#,
    );
    cfg
}

/// One answer seen by the load.
#[derive(Debug, Clone)]
struct Obs {
    at: Duration,
    node: usize,
    /// The first address, `None` for an empty answer, `Err` when no reply
    /// came within a second.
    answer: Result<Option<IpAddr>, ()>,
}

/// One node: its directory, its process, and where its DNS listens (None
/// while it is down on purpose).
struct Node {
    dir: PathBuf,
    server: Option<Server>,
    dns: Arc<Mutex<Option<SocketAddr>>>,
}

/// What one check found.
struct Row {
    injected: String,
    property: String,
    held: bool,
    measured: String,
}

struct Lab {
    start: Instant,
    etcd: Etcd,
    lbs: Vec<FakeLb>,
    nodes: Vec<Node>,
    prefix: String,
    history: Arc<Mutex<Vec<Obs>>>,
    /// Periods when a node was down on purpose: (node, from, to).
    down: Vec<(usize, Duration, Duration)>,
    rows: Vec<Row>,
}

impl Lab {
    fn start() -> Option<Lab> {
        let Some(etcd) = Etcd::start(3, "faults") else {
            eprintln!("SKIPPED: etcd is not installed (apt-get install etcd-server)");
            return None;
        };
        let first = FakeLb::start(format!("{}:0", REGIONS[0].1).parse().unwrap());
        let port = first.addr.port();
        let mut lbs = vec![first];
        for (_, addr) in &REGIONS[1..] {
            lbs.push(FakeLb::start(format!("{addr}:{port}").parse().unwrap()));
        }
        let prefix = format!("/signpost-faults-{}", std::process::id());
        let mut lab = Lab {
            start: Instant::now(),
            etcd,
            lbs,
            nodes: Vec::new(),
            prefix,
            history: Arc::default(),
            down: Vec::new(),
            rows: Vec::new(),
        };
        for i in 1..=3 {
            let dir = scratch(&format!("faults-ns{i}"));
            write(&dir.join("example.test.zone"), ZONE);
            write(
                &dir.join("signpost.toml"),
                &node_config(&lab.etcd.toml_endpoints(), i, port, &lab.prefix),
            );
            lab.nodes.push(Node {
                dir,
                server: None,
                dns: Arc::default(),
            });
            lab.up(i, &[]);
        }
        assert!(
            lab.converged(Duration::from_secs(15)).is_some(),
            "the three nodes never saw each other"
        );
        Some(lab)
    }

    fn node(&self, i: usize) -> &Server {
        self.nodes[i - 1].server.as_ref().expect("node running")
    }

    fn running(&self) -> Vec<&Server> {
        self.nodes
            .iter()
            .filter_map(|n| n.server.as_ref())
            .collect()
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn up(&mut self, i: usize, extra: &[&str]) {
        let mut args = vec!["serve", "--config", "signpost.toml"];
        args.extend_from_slice(extra);
        let s = Server::start_in(self.nodes[i - 1].dir.clone(), &args);
        *self.nodes[i - 1].dns.lock().unwrap() = Some(s.dns);
        self.nodes[i - 1].server = Some(s);
    }

    /// SIGKILL: a crash, no goodbye. Returns when it went down.
    fn crash(&mut self, i: usize) -> Duration {
        *self.nodes[i - 1].dns.lock().unwrap() = None;
        let at = self.now();
        if let Some(s) = self.nodes[i - 1].server.take() {
            s.kill();
        }
        at
    }

    /// A steady load on every node: one query every 20 ms each, every
    /// answer recorded. Stops when `stop` turns true.
    fn load(&self, stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
        let q = query(WWW, RecordType::A, None).to_vec().unwrap();
        (0..self.nodes.len())
            .map(|i| {
                let (dns, history, stop, q) = (
                    self.nodes[i].dns.clone(),
                    self.history.clone(),
                    stop.clone(),
                    q.clone(),
                );
                let start = self.start;
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let addr = *dns.lock().unwrap();
                        if let Some(addr) = addr {
                            let at = start.elapsed();
                            let answer = udp_raw(addr, &q, Duration::from_secs(1))
                                .and_then(|b| Message::from_vec(&b).ok())
                                .map(|m| addresses(&m).first().copied())
                                .ok_or(());
                            history.lock().unwrap().push(Obs {
                                at,
                                node: i + 1,
                                answer,
                            });
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                })
            })
            .collect()
    }

    /// The drained regions a node reports.
    fn drained(s: &Server) -> Vec<String> {
        let st = get_json(&format!("{}/v1/status", s.admin_url()));
        st["regions"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .filter(|r| r["drained"] == true)
                    .map(|r| r["name"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn connected(s: &Server) -> bool {
        get_json(&format!("{}/v1/status", s.admin_url()))["cluster"]["connected"] == true
    }

    /// Waits until every running node is connected, sees every running
    /// node and reports the same drains; how long it took.
    fn converged(&self, limit: Duration) -> Option<Duration> {
        let want = self.running().len();
        wait(limit, || {
            let nodes = self.running();
            let drains: Vec<Vec<String>> = nodes.iter().map(|s| Lab::drained(s)).collect();
            nodes.iter().all(|s| {
                Lab::connected(s)
                    && get_json(&format!("{}/v1/status", s.admin_url()))["cluster"]["nodes"]
                        .as_array()
                        .is_some_and(|n| n.len() == want)
            }) && drains.windows(2).all(|w| w[0] == w[1])
        })
    }

    /// Waits until every running node answers `want` first.
    fn all_answer(&self, want: &str, limit: Duration) -> Option<Duration> {
        let want = vec![ip(want)];
        wait(limit, || {
            self.running().iter().all(|s| s.a(WWW, None) == want)
        })
    }

    fn drain(&self, i: usize, method: &str, region: &str) -> (u16, String) {
        http(
            method,
            &format!("{}/v1/regions/{region}/drain", self.node(i).admin_url()),
            None,
        )
    }

    fn row(&mut self, injected: &str, property: &str, held: bool, measured: String) {
        println!(
            "[{:>7.2}s] {injected}: {property}: {} ({measured})",
            self.now().as_secs_f64(),
            if held { "held" } else { "BROKEN" }
        );
        self.rows.push(Row {
            injected: injected.into(),
            property: property.into(),
            held,
            measured,
        });
    }

    /// A drain through node `via`, acknowledged while connected, must be
    /// in every running node's answers within `bound`; then undrained.
    fn drain_reaches_everyone(
        &mut self,
        injected: &str,
        via: usize,
        region: usize,
        bound: Duration,
        property: &str,
    ) {
        let (name, _) = REGIONS[region];
        let (code, body) = self.drain(via, "POST", name);
        let next = REGIONS[(region + 1) % 3].1;
        if code != 200 {
            self.row(
                injected,
                "a drain is acknowledged",
                false,
                format!("{code} {body}"),
            );
            return;
        }
        let t = self.all_answer(next, bound);
        self.row(injected, property, t.is_some(), fmt(t));
        let (code, body) = self.drain(via, "DELETE", name);
        let back = self.all_answer(REGIONS[0].1, Duration::from_secs(5));
        self.row(
            injected,
            "the undrain reaches every node",
            code == 200 && back.is_some(),
            format!("{code}; {}", fmt(back)),
        );
        let _ = body;
    }
}

fn wait(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

fn fmt(t: Option<Duration>) -> String {
    t.map_or("never".into(), |t| format!("{:.2} s", t.as_secs_f64()))
}

/// The etcd member that is the leader now.
fn leader(etcd: &Etcd) -> Option<usize> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        for i in 0..etcd.members() {
            let Ok(mut c) = etcd_client::Client::connect([etcd.member_url(i)], None).await else {
                continue;
            };
            if let Ok(st) = c.status().await
                && st.header().is_some_and(|h| h.member_id() == st.leader())
            {
                return Some(i);
            }
        }
        None
    })
}

/// One round of every fault.
fn round(lab: &mut Lab) {
    let ms = |d: Duration| format!("{:.2} s", d.as_secs_f64());

    // 1. the etcd leader dies
    let what = "kill the etcd leader";
    let l = leader(&lab.etcd).unwrap_or(0);
    lab.etcd.kill(l);
    lab.drain_reaches_everyone(
        what,
        1,
        0,
        Duration::from_secs(1),
        "an acknowledged drain reaches every node within 1 s",
    );
    lab.etcd.revive(l);
    let t = lab.converged(Duration::from_secs(5));
    lab.row(
        what,
        "all nodes converge within 5 s of the heal",
        t.is_some(),
        fmt(t),
    );

    // 2. a member hangs (SIGSTOP), then goes on (SIGCONT)
    let what = "SIGSTOP an etcd member, then SIGCONT";
    // the member ns2 talks to hangs; the drain goes through ns1
    let url = get_json(&format!("{}/v1/status", lab.node(2).admin_url()))["cluster"]["etcd_member"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let m = (0..lab.etcd.members())
        .find(|&i| lab.etcd.member_url(i) == url)
        .unwrap_or(0);
    lab.etcd.pause(m, true);
    // a node whose member hangs sees nothing until it notices the silence
    // (2.5 s without a keepalive answer) and moves to another member
    lab.drain_reaches_everyone(
        what,
        1,
        0,
        Duration::from_secs(5),
        "an acknowledged drain reaches every node within 5 s (1 s where the member it uses answers)",
    );
    lab.etcd.pause(m, false);
    let t = lab.converged(Duration::from_secs(5));
    lab.row(
        what,
        "all nodes converge within 5 s of the heal",
        t.is_some(),
        fmt(t),
    );

    // 3. all of etcd stops, then starts again; a drain made before stays
    let what = "stop all of etcd, then start it";
    let (code, _) = lab.drain(3, "POST", "eu-west");
    lab.row(
        what,
        "a drain before the outage is acknowledged",
        code == 200,
        code.to_string(),
    );
    lab.all_answer(REGIONS[1].1, Duration::from_secs(1));
    lab.etcd.kill_all();
    std::thread::sleep(Duration::from_secs(2));
    let kept = lab
        .running()
        .iter()
        .all(|s| s.a(WWW, None) == vec![ip(REGIONS[1].1)]);
    lab.row(
        what,
        "every node keeps the drain while etcd is away",
        kept,
        String::new(),
    );
    let t0 = Instant::now();
    let (code, _) = lab.drain(1, "DELETE", "eu-west");
    lab.row(
        what,
        "an undrain while etcd is away is refused at once (503)",
        code == 503 && t0.elapsed() < Duration::from_secs(1),
        format!("{code} in {}", ms(t0.elapsed())),
    );
    lab.etcd.revive_all();
    let t = lab.converged(Duration::from_secs(5));
    lab.row(
        what,
        "all nodes converge within 5 s of the heal",
        t.is_some(),
        fmt(t),
    );
    let kept = lab.running().iter().all(|s| Lab::drained(s) == ["eu-west"]);
    lab.row(what, "the drain is never lost", kept, String::new());

    // 4. a signpost node crashes and comes back
    let what = "kill a signpost node and restart it";
    let from = lab.crash(2);
    std::thread::sleep(Duration::from_secs(1));
    lab.up(2, &[]);
    lab.down.push((2, from, lab.now()));
    let t = lab.converged(Duration::from_secs(5));
    lab.row(
        what,
        "all nodes converge within 5 s of the restart",
        t.is_some(),
        fmt(t),
    );
    let kept = Lab::drained(lab.node(2)) == ["eu-west"];
    lab.row(
        what,
        "the restarted node serves the cluster's drain",
        kept,
        String::new(),
    );

    // 5. the prefix grows past one gRPC response, and a node restarts
    let what = "grow the prefix past 4 MiB, restart a node";
    // 5.7 MB of verdicts of a node long gone
    lab.etcd.put_ghost_verdicts(&lab.prefix, 520);
    let from = lab.crash(3);
    lab.up(3, &[]);
    lab.down.push((3, from, lab.now()));
    let t = lab.converged(Duration::from_secs(5));
    lab.row(what, "the node rejoins within 5 s", t.is_some(), fmt(t));

    // 6. two drains at once on two nodes: min_healthy_regions = 2 of 3,
    // with eu-west drained already
    let what = "concurrent drains on two nodes";
    let mut both = 0;
    for _ in 0..3 {
        let (a, b) = std::thread::scope(|s| {
            let x = s.spawn(|| lab.drain(1, "POST", "ap-south").0);
            let y = s.spawn(|| lab.drain(2, "POST", "us-east").0);
            (x.join().unwrap(), y.join().unwrap())
        });
        if a == 200 || b == 200 {
            both += 1;
        }
    }
    lab.row(
        what,
        "min_healthy_regions holds: neither of two more drains is taken",
        both == 0,
        format!("{both} of 3 rounds took one"),
    );
    let held = wait(Duration::from_secs(2), || {
        lab.running().iter().all(|s| Lab::drained(s) == ["eu-west"])
    })
    .is_some();
    lab.row(
        what,
        "every node still has exactly one region drained",
        held,
        String::new(),
    );
    let (code, _) = lab.drain(1, "DELETE", "eu-west");
    let back = lab.all_answer(REGIONS[0].1, Duration::from_secs(2));
    lab.row(
        what,
        "the undrain reaches every node",
        code == 200 && back.is_some(),
        fmt(back),
    );
    let mut taken = 0;
    for _ in 0..3 {
        let (a, b) = std::thread::scope(|s| {
            let x = s.spawn(|| lab.drain(1, "POST", "eu-west").0);
            let y = s.spawn(|| lab.drain(2, "POST", "ap-south").0);
            (x.join().unwrap(), y.join().unwrap())
        });
        taken += usize::from(a == 200) + usize::from(b == 200);
        let one = wait(Duration::from_secs(2), || {
            lab.running().iter().all(|s| Lab::drained(s).len() == 1)
        });
        let held = a != b && (a == 200 || b == 200) && one.is_some();
        if !held {
            for i in 1..=2 {
                for l in lab.node(i).log().iter().filter(|l| l.contains("drain")) {
                    println!("ns{i}: {l}");
                }
            }
        }
        lab.row(
            what,
            "of two drains at once, one is taken, the other refused",
            held,
            format!("{a} and {b}"),
        );
        for r in ["eu-west", "ap-south"] {
            let _ = lab.drain(1, "DELETE", r);
        }
        lab.all_answer(REGIONS[0].1, Duration::from_secs(2));
    }
    let _ = taken;

    // 7. one node's probes of a load balancer fail: the majority holds it
    // up; every node's fail: every node moves away within the bound
    let what = "fail an LB for one node's probe source only";
    lab.lbs[0].fail_from(&["127.0.0.31"]);
    std::thread::sleep(INTERVAL * 4);
    let kept = lab
        .running()
        .iter()
        .all(|s| s.a(WWW, None) == vec![ip(REGIONS[0].1)]);
    lab.row(
        what,
        "no node drops the region one vantage point sees down",
        kept,
        String::new(),
    );
    let what = "fail an LB for every node";
    lab.lbs[0].fail_from(&["127.0.0.31", "127.0.0.32", "127.0.0.33"]);
    let bound = INTERVAL * 2 + Duration::from_secs(1);
    let t = lab.all_answer(REGIONS[1].1, bound + INTERVAL);
    lab.row(
        what,
        "no node serves the region the verdict holds down for longer than a probe interval and 1 s",
        t.is_some(),
        fmt(t),
    );
    lab.lbs[0].fail_from(&[]);
    let t = lab.all_answer(REGIONS[0].1, bound + INTERVAL);
    lab.row(
        what,
        "every node takes it back after the heal",
        t.is_some(),
        fmt(t),
    );

    // 8. a node's state file turns to garbage, then it restarts
    let what = "replace a node's state file with garbage";
    let (code, _) = lab.drain(1, "POST", "eu-west");
    lab.all_answer(REGIONS[1].1, Duration::from_secs(1));
    let from = lab.crash(1);
    write(&lab.nodes[0].dir.join("signpost.state"), "{ garbage");
    let refused = Server::try_start_in(
        lab.nodes[0].dir.clone(),
        &["serve", "--config", "signpost.toml"],
    )
    .err()
    .and_then(|(_, status)| status.and_then(|s| s.code()));
    lab.row(
        what,
        "the node refuses to start on it (exit 1)",
        refused == Some(1),
        format!("{refused:?}"),
    );
    lab.up(1, &["--discard-state"]);
    lab.down.push((1, from, lab.now()));
    let t = lab.converged(Duration::from_secs(5));
    let kept = Lab::drained(lab.node(1)) == ["eu-west"];
    lab.row(
        what,
        "started with --discard-state, it serves the cluster's drain",
        code == 200 && kept && t.is_some(),
        fmt(t),
    );
    let (code, _) = lab.drain(2, "DELETE", "eu-west");
    let back = lab.all_answer(REGIONS[0].1, Duration::from_secs(2));
    lab.row(
        what,
        "the undrain reaches every node",
        code == 200 && back.is_some(),
        fmt(back),
    );
}

#[test]
fn the_cluster_keeps_its_promises_under_faults() {
    let Some(mut lab) = Lab::start() else {
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let load = lab.load(stop.clone());
    let rounds: usize = std::env::var("SIGNPOST_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for _ in 0..rounds {
        round(&mut lab);
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }

    // the history: every query to a node that was up was answered, and
    // never with an empty answer (min_healthy_regions keeps two regions)
    let history = lab.history.lock().unwrap().clone();
    let was_down = |o: &Obs| {
        lab.down.iter().any(|&(n, from, to)| {
            n == o.node && o.at + Duration::from_secs(1) >= from && o.at <= to
        })
    };
    let unanswered = history
        .iter()
        .filter(|o| o.answer.is_err() && !was_down(o))
        .count();
    let empty = history
        .iter()
        .filter(|o| matches!(o.answer, Ok(None)))
        .count();
    let total = history.len();
    lab.row(
        "the whole run",
        "no query to a running node goes unanswered",
        unanswered == 0 && total > 100,
        format!("{unanswered} of {total}"),
    );
    lab.row(
        "the whole run",
        "no answer is empty (min_healthy_regions is never broken)",
        empty == 0,
        format!("{empty} of {total}"),
    );

    // one line per promise, over every round: how often it held, and what
    // was measured each time
    let mut table: Vec<(String, String, usize, usize, Vec<String>)> = Vec::new();
    for r in &lab.rows {
        match table
            .iter_mut()
            .find(|t| t.0 == r.injected && t.1 == r.property)
        {
            Some(t) => {
                t.2 += usize::from(r.held);
                t.3 += 1;
                t.4.push(r.measured.clone());
            }
            None => table.push((
                r.injected.clone(),
                r.property.clone(),
                usize::from(r.held),
                1,
                vec![r.measured.clone()],
            )),
        }
    }
    println!("\n| injected | what must hold | held | measured |\n|---|---|---|---|");
    for (injected, property, held, of, measured) in &table {
        let measured: Vec<&String> = measured.iter().filter(|m| !m.is_empty()).collect();
        println!(
            "| {injected} | {property} | {}{held} of {of}{} | {} |",
            if held < of { "**" } else { "" },
            if held < of { "**" } else { "" },
            measured
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let broken: Vec<String> = lab
        .rows
        .iter()
        .filter(|r| !r.held)
        .map(|r| format!("{}: {} ({})", r.injected, r.property, r.measured))
        .collect();
    assert!(broken.is_empty(), "broken promises:\n{}", broken.join("\n"));
}
