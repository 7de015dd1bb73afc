//! The cluster (issue 7, SPEC §8) against a real three-member etcd
//! (Debian's `etcd-server`, started here on free loopback ports) and
//! three real signpost nodes probing one fake load balancer from their
//! own source addresses (127.0.0.21, .22, .23); and a single node keeping
//! its drains in its state file.

#[path = "../common/mod.rs"]
mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::etcd::Etcd;
use common::*;

const EU: &str = "127.95.0.1";
const ASIA: &str = "127.95.0.2";
const US: &str = "192.0.2.1";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A node's configuration: eu-west (checked, probed from `source`) then
/// us-east for www; ap-south (checked) then us-east for api.
fn node_config(etcd: &str, node: &str, source: &str, port: u16, prefix: &str, ttl: u32) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
admin = "127.0.0.1:0"
state = "signpost.state"
probe_source = "{source}"

[cluster]
etcd = {etcd}
node = "{node}"
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

[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "{EU}" }}]

[regions.ap-south]
location = {{ lat = 19.08, lon = 72.88 }}
check = "web"
endpoints = [{{ address = "{ASIA}" }}]

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
endpoints = [{{ address = "{US}" }}]

[services."www.example.test."]
regions = ["eu-west", "us-east"]
policy = "failover"
ttl = {ttl}

[services."api.example.test."]
regions = ["ap-south", "us-east"]
policy = "failover"
ttl = {ttl}
"#
    )
}

/// Three nodes ns1..ns3 on one etcd, and the two load balancers.
struct Lab {
    etcd: Etcd,
    eu: FakeLb,
    asia: FakeLb,
    nodes: Vec<Option<Server>>,
    dirs: Vec<std::path::PathBuf>,
}

impl Lab {
    fn start(name: &str) -> Option<Lab> {
        Lab::start_with(name, "")
    }

    /// Like `start`, with `extra` appended to every node's configuration.
    fn start_with(name: &str, extra: &str) -> Option<Lab> {
        let Some(etcd) = Etcd::start(3, name) else {
            eprintln!("SKIPPED: etcd is not installed (apt-get install etcd-server)");
            return None;
        };
        let eu = FakeLb::start(format!("{EU}:0").parse().unwrap());
        let port = eu.addr.port();
        let asia = FakeLb::start(format!("{ASIA}:{port}").parse().unwrap());
        let prefix = format!("/signpost-test-{name}-{}", std::process::id());
        let mut lab = Lab {
            etcd,
            eu,
            asia,
            nodes: Vec::new(),
            dirs: Vec::new(),
        };
        for i in 1..=3 {
            let dir = scratch(&format!("{name}-ns{i}"));
            write(&dir.join("example.test.zone"), ZONE);
            let cfg = node_config(
                &lab.etcd.toml_endpoints(),
                &format!("ns{i}"),
                &format!("127.0.0.2{i}"),
                port,
                &prefix,
                5,
            ) + extra;
            write(&dir.join("signpost.toml"), &cfg);
            lab.dirs.push(dir);
            lab.nodes.push(None);
            lab.up(i);
        }
        // every node sees all three
        for i in 1..=3 {
            let n = lab.node(i);
            assert!(
                wait_until(Duration::from_secs(15), || {
                    cluster_nodes(n) == 3.0 && metric(n, "signpost_cluster_connected") == 1.0
                })
                .is_some(),
                "ns{i} never saw the whole cluster"
            );
        }
        Some(lab)
    }

    fn node(&self, i: usize) -> &Server {
        self.nodes[i - 1].as_ref().expect("node running")
    }

    fn up(&mut self, i: usize) {
        let s = Server::start_in(
            self.dirs[i - 1].clone(),
            &["serve", "--config", "signpost.toml"],
        );
        self.nodes[i - 1] = Some(s);
    }

    fn stop(&mut self, i: usize) {
        if let Some(s) = self.nodes[i - 1].take() {
            assert!(s.stop().success());
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(s) = self.nodes[i - 1].take() {
            s.kill();
        }
    }

    fn running(&self) -> Vec<&Server> {
        self.nodes.iter().flatten().collect()
    }

    /// Waits until every running node answers `name` with `want`.
    fn all_answer(&self, name: &str, want: &str, limit: Duration) -> Option<Duration> {
        let want = vec![ip(want)];
        wait_fast(limit, || {
            self.running().iter().all(|s| s.a(name, None) == want)
        })
    }
}

fn wait_fast(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn metric(s: &Server, name: &str) -> f64 {
    let (_, body) = http("GET", &format!("{}/metrics", s.admin_url()), None);
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(f64::NAN)
}

fn cluster_nodes(s: &Server) -> f64 {
    metric(s, "signpost_cluster_nodes")
}

fn status(s: &Server) -> serde_json::Value {
    get_json(&format!("{}/v1/status", s.admin_url()))
}

/// The per-node verdicts on eu-west's endpoint, as (node, healthy).
fn verdicts(s: &Server) -> Vec<(String, bool)> {
    let st = status(s);
    let ep = st["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "eu-west")
        .unwrap()["endpoints"][0]
        .clone();
    ep["nodes"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v["healthy"].as_bool().unwrap_or(false)))
                .collect()
        })
        .unwrap_or_default()
}

fn drain(s: &Server, method: &str, region: &str, query: &str) -> (u16, String) {
    http(
        method,
        &format!("{}/v1/regions/{region}/drain{query}", s.admin_url()),
        None,
    )
}

const WWW: &str = "www.example.test.";
const API: &str = "api.example.test.";
const BOUND: Duration = Duration::from_secs(5);

#[test]
fn health_is_decided_by_a_majority_and_drains_reach_every_node() {
    let Some(mut lab) = Lab::start("quorum") else {
        return;
    };
    assert!(lab.all_answer(WWW, EU, BOUND).is_some());

    // one vantage point sees eu-west down: it stays up everywhere
    lab.eu.fail_from(&["127.0.0.21"]);
    assert!(
        wait_fast(BOUND, || verdicts(lab.node(2))
            == vec![
                ("ns1".to_string(), false),
                ("ns2".to_string(), true),
                ("ns3".to_string(), true)
            ])
        .is_some(),
        "per-node verdicts: {:?}",
        verdicts(lab.node(2))
    );
    std::thread::sleep(Duration::from_secs(1));
    for s in lab.running() {
        assert_eq!(s.a(WWW, None), vec![ip(EU)], "one node's view is outvoted");
    }
    let st = status(lab.node(1));
    assert_eq!(st["cluster"]["node"], "ns1");
    assert_eq!(st["cluster"]["connected"], true);
    assert_eq!(st["cluster"]["nodes"].as_array().unwrap().len(), 3);
    let down = |s: &Server| {
        let (_, body) = http("GET", &format!("{}/metrics", s.admin_url()), None);
        body.lines()
            .find(|l| l.starts_with("signpost_endpoint_down_nodes{") && l.contains(EU))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    assert_eq!(down(lab.node(3)), Some(1.0));
    // the status leads with the verdict that decides answers, and its votes
    let verdict = |s: &Server| {
        let st = status(s);
        st["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "eu-west")
            .unwrap()["endpoints"][0]["cluster_verdict"]
            .clone()
    };
    let v = verdict(lab.node(1));
    assert_eq!(
        (&v["healthy"], &v["down"], &v["of"]),
        (&true.into(), &1.into(), &3.into()),
        "ns1's own probe fails, the cluster holds it up: {v}"
    );
    // ns1's log calls its own probe one vote, not the endpoint's state
    assert!(
        lab.node(1)
            .log()
            .iter()
            .any(|l| l.contains("this node's probes: endpoint 127.95.0.1") && l.contains("is down")),
        "{:?}",
        lab.node(1).log()
    );

    // two of three: down on all three nodes
    lab.eu.fail_from(&["127.0.0.21", "127.0.0.22"]);
    let t = lab.all_answer(WWW, US, BOUND);
    assert!(
        t.is_some(),
        "a majority saw it down, but not every node moved"
    );
    assert_eq!(down(lab.node(3)), Some(2.0));
    // ns3, whose own probe passes, logs the cluster's verdict
    assert!(
        wait_fast(BOUND, || lab.node(3).log().iter().any(|l| l.contains(
            "endpoint 127.95.0.1 is down by the cluster's verdict (2 of 3 nodes"
        )))
        .is_some(),
        "{:?}",
        lab.node(3).log()
    );
    assert_eq!(verdict(lab.node(3))["healthy"], false);
    lab.eu.fail_from(&[]);
    assert!(lab.all_answer(WWW, EU, BOUND).is_some(), "recovered");

    // a drain through ns1 reaches ns2 and ns3 within a second
    let (code, body) = drain(lab.node(1), "POST", "eu-west", "");
    assert_eq!(code, 200, "{body}");
    let t = lab.all_answer(WWW, US, Duration::from_secs(1));
    assert!(t.is_some(), "the drain did not reach every node within 1 s");
    // and an undrain through ns3 too
    let (code, body) = drain(lab.node(3), "DELETE", "eu-west", "");
    assert_eq!(code, 200, "{body}");
    assert!(lab.all_answer(WWW, EU, Duration::from_secs(1)).is_some());

    // ?for=2s expires on every node
    let (code, body) = drain(lab.node(2), "POST", "eu-west", "?for=2s");
    assert_eq!(code, 200, "{body}");
    let start = Instant::now();
    assert!(lab.all_answer(WWW, US, Duration::from_secs(1)).is_some());
    assert!(
        lab.all_answer(WWW, EU, Duration::from_secs(8)).is_some(),
        "the 2 s drain never ended"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(1500),
        "ended early"
    );

    // a drain outlives a node's restart
    let (code, body) = drain(lab.node(1), "POST", "eu-west", "");
    assert_eq!(code, 200, "{body}");
    assert!(lab.all_answer(WWW, US, Duration::from_secs(1)).is_some());
    lab.stop(2);
    lab.up(2);
    assert_eq!(
        lab.node(2).a(WWW, None),
        vec![ip(US)],
        "drain lost on restart"
    );

    // the audit is cluster-wide: ns3 lists what was done on ns1 and ns2
    let audit = get_json(&format!("{}/v1/audit", lab.node(3).admin_url()));
    let list = audit["audit"].as_array().unwrap();
    assert!(
        list.iter().any(|e| e["action"] == "drain"
            && e["target"] == "region eu-west"
            && e["node"] == "ns1"
            && e["result"] == "ok"),
        "{audit}"
    );
    assert!(
        list.iter().any(|e| e["node"] == "ns2" && e["for"] == "2s"),
        "{audit}"
    );
    let (code, _) = drain(lab.node(1), "DELETE", "eu-west", "");
    assert_eq!(code, 200);

    // a node serving another configuration is listed and logged
    let cfg = std::fs::read_to_string(lab.dirs[2].join("signpost.toml")).unwrap();
    write(
        &lab.dirs[2].join("signpost.toml"),
        &cfg.replace("ttl = 5", "ttl = 6"),
    );
    let (code, body) = http(
        "POST",
        &format!("{}/v1/reload", lab.node(3).admin_url()),
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        wait_fast(BOUND, || status(lab.node(1))["cluster"]["diverged"]
            == serde_json::json!(["ns3"]))
        .is_some(),
        "{}",
        status(lab.node(1))["cluster"]
    );
    assert!(
        lab.node(1)
            .log()
            .iter()
            .any(|l| l.contains("answer differently from this one")
                && l.contains("ns3 (configuration")),
        "the divergence is logged: {:?}",
        lab.node(1).log()
    );
    assert!(
        wait_fast(BOUND, || metric(
            lab.node(1),
            "signpost_cluster_diverged_nodes"
        ) == 1.0)
        .is_some()
    );
    // and so is its end
    write(&lab.dirs[2].join("signpost.toml"), &cfg);
    let (code, body) = http(
        "POST",
        &format!("{}/v1/reload", lab.node(3).admin_url()),
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        wait_fast(BOUND, || lab
            .node(1)
            .log()
            .iter()
            .any(|l| l.contains("every node answers alike again")))
        .is_some(),
        "{:?}",
        lab.node(1).log()
    );
    assert_eq!(metric(lab.node(1), "signpost_cluster_diverged_nodes"), 0.0);
}

#[test]
fn nodes_survive_the_loss_of_etcd_and_resync() {
    let Some(mut lab) = Lab::start("outage") else {
        return;
    };
    assert!(lab.all_answer(WWW, EU, BOUND).is_some());
    assert!(lab.all_answer(API, ASIA, BOUND).is_some());

    // one etcd member down: nothing changes
    lab.etcd.kill(0);
    let (code, body) = drain(lab.node(1), "POST", "eu-west", "");
    assert_eq!(code, 200, "{body}\n{}", lab.node(1).log().join("\n"));
    assert!(lab.all_answer(WWW, US, Duration::from_secs(3)).is_some());

    // the whole etcd cluster down: every node keeps answering, from its
    // last view of the drains and its own probes
    lab.etcd.kill_all();
    for s in lab.running() {
        assert!(
            wait_fast(Duration::from_secs(15), || metric(
                s,
                "signpost_cluster_connected"
            ) == 0.0)
            .is_some(),
            "the outage is not seen"
        );
        assert_eq!(s.a(WWW, None), vec![ip(US)], "the drain is kept");
    }
    // a node that knows it is cut off refuses at once, in plain words
    let t = Instant::now();
    let (code, body) = drain(lab.node(2), "DELETE", "eu-west", "");
    assert_eq!(code, 503, "{body}");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("etcd is unreachable"), "{body}");
    assert!(
        !error.contains("tonic") && !error.contains("Os {") && !error.contains("ConnectError("),
        "no client internals: {body}"
    );
    // local health changes still reach the answers
    lab.asia.set(LbMode::Fail);
    assert!(
        lab.all_answer(API, US, BOUND).is_some(),
        "own verdicts must steer while etcd is away"
    );
    lab.asia.set(LbMode::Ok);
    assert!(lab.all_answer(API, ASIA, BOUND).is_some());
    // a node restarted meanwhile starts from its state file
    lab.stop(3);
    lab.up(3);
    assert_eq!(lab.node(3).a(WWW, None), vec![ip(US)]);
    // and says so: not synced with the cluster; no node count is stale
    let st = status(lab.node(3));
    assert_eq!(st["cluster"]["synced"], false, "{}", st["cluster"]);
    assert_eq!(status(lab.node(1))["cluster"]["synced"], true);
    for s in lab.running() {
        assert_eq!(cluster_nodes(s), 1.0, "only this node is known alive");
    }

    // etcd back: every node reconnects, publishes again, reads again
    lab.etcd.revive_all();
    for s in lab.running() {
        assert!(
            wait_fast(Duration::from_secs(20), || {
                metric(s, "signpost_cluster_connected") == 1.0 && cluster_nodes(s) == 3.0
            })
            .is_some(),
            "a node did not reconnect"
        );
    }
    assert!(
        wait_fast(BOUND, || verdicts(lab.node(1)).len() == 3).is_some(),
        "verdicts not published again: {:?}",
        verdicts(lab.node(1))
    );
    assert_eq!(status(lab.node(3))["cluster"]["synced"], true);
    // the audit, with what was refused during the outage, reads alike on
    // every node, newest first by when things happened
    let audits: Vec<serde_json::Value> = (1..=3)
        .map(|i| get_json(&format!("{}/v1/audit", lab.node(i).admin_url()))["audit"].clone())
        .collect();
    assert!(
        wait_fast(BOUND, || {
            let a: Vec<serde_json::Value> = (1..=3)
                .map(|i| {
                    get_json(&format!("{}/v1/audit", lab.node(i).admin_url()))["audit"].clone()
                })
                .collect();
            a[0] == a[1] && a[1] == a[2]
        })
        .is_some(),
        "{audits:?}"
    );
    let list = get_json(&format!("{}/v1/audit", lab.node(1).admin_url()))["audit"].clone();
    let at: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["at"].as_str())
        .collect();
    assert!(at.windows(2).all(|w| w[0] >= w[1]), "newest first: {at:?}");
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|e| e["result"].as_str().is_some_and(|r| r.starts_with("503"))),
        "the refused undrain is audited: {list}"
    );
    let (code, body) = drain(lab.node(2), "DELETE", "eu-west", "");
    assert_eq!(code, 200, "{body}");
    assert!(lab.all_answer(WWW, EU, Duration::from_secs(2)).is_some());
}

#[test]
fn a_dead_nodes_verdicts_stop_counting() {
    let Some(mut lab) = Lab::start("nodeloss") else {
        return;
    };
    // ns2 and ns3 see eu-west down: two of three, down everywhere
    lab.eu.fail_from(&["127.0.0.22", "127.0.0.23"]);
    assert!(lab.all_answer(WWW, US, BOUND).is_some());
    // ns3 dies without a word: once its lease expires, ns1 (up) and ns2
    // (down) are a tie, which is up
    lab.kill(3);
    let t = lab.all_answer(WWW, EU, Duration::from_secs(15));
    assert!(t.is_some(), "the dead node still counts");
    assert_eq!(cluster_nodes(lab.node(1)), 2.0);
    assert_eq!(verdicts(lab.node(1)).len(), 2);
}

mod edges;
mod notify;
mod operations;
