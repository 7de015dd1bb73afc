//! Webhooks in a cluster (SPEC §11): three nodes tell one receiver. A
//! change of the cluster's health verdict is told once, by the cluster's
//! speaker (the first node by name), even when the node's own probe
//! passes; joins and leaves once, by the first node that stayed; losing
//! and regaining etcd by each node.

use super::*;
use common::webhook::{Delivery, Receiver};
use serde_json::Value;

/// The cluster events so far: (node, action, peer).
fn cluster_events(got: &[Delivery]) -> Vec<(String, String, Value)> {
    got.iter()
        .map(Delivery::json)
        .filter(|v| v["event"] == "cluster")
        .map(|v| {
            (
                v["node"].as_str().unwrap().to_string(),
                v["action"].as_str().unwrap().to_string(),
                v["peer"].clone(),
            )
        })
        .collect()
}

/// The health events so far: (kind, region, healthy).
fn health_events(got: &[Delivery]) -> Vec<(String, String, bool)> {
    got.iter()
        .map(Delivery::json)
        .filter(|v| v["event"] == "health")
        .map(|v| {
            (
                v["kind"].as_str().unwrap().to_string(),
                v["region"].as_str().unwrap().to_string(),
                v["healthy"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Waits until `f` of what the receiver got holds; panics with it after
/// `limit`.
fn wait_got(r: &Receiver, limit: Duration, f: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
    let ok = wait_fast(limit, || f(&r.got()));
    let got = r.got();
    assert!(
        ok.is_some(),
        "not within {limit:?}: {:#?}",
        got.iter().map(Delivery::json).collect::<Vec<_>>()
    );
    got
}

#[test]
fn the_cluster_tells_each_change_once_and_etcd_from_every_node() {
    let r = Receiver::start();
    let hook = format!(
        "\n[[notify.webhook]]\nurl = \"{}\"\nevents = [\"health\", \"cluster\"]\ntimeout = \"1s\"\n",
        r.url()
    );
    let Some(mut lab) = Lab::start_with("notify", &hook) else {
        return;
    };
    let joined = |n: &str| ("ns1".to_string(), "node-joined".to_string(), Value::from(n));
    let got = wait_got(&r, BOUND, |g| cluster_events(g).len() >= 2);
    assert_eq!(
        cluster_events(&got),
        [joined("ns2"), joined("ns3")],
        "told by ns1 alone"
    );

    // ns2 and ns3 see eu-west down: the cluster's verdict turns once, and
    // ns1 tells, though its own probe passes
    lab.eu.fail_from(&["127.0.0.22", "127.0.0.23"]);
    assert!(lab.all_answer(WWW, US, BOUND).is_some());
    let got = wait_got(&r, BOUND, |g| health_events(g).len() >= 2);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(r.got().len(), got.len(), "nothing more: each change once");
    let turned = |h: bool| {
        vec![
            ("endpoint".to_string(), "eu-west".to_string(), h),
            ("region".to_string(), "eu-west".to_string(), h),
        ]
    };
    assert_eq!(health_events(&got), turned(false));
    let why = got
        .iter()
        .map(Delivery::json)
        .find(|v| v["kind"] == "endpoint")
        .unwrap()["reason"]
        .clone();
    let why = why.as_str().unwrap_or_default();
    assert!(
        (why.starts_with("ns2: status 503") || why.starts_with("ns3: status 503"))
            && why.ends_with("(2 of 3 nodes see it down)"),
        "a down node's reason, and the votes: {why}"
    );
    // both recover at the same moment: still once
    lab.eu.fail_from(&[]);
    assert!(lab.all_answer(WWW, EU, BOUND).is_some());
    let got = wait_got(&r, BOUND, |g| health_events(g).len() >= 4);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(r.got().len(), got.len(), "each change once");
    assert_eq!(health_events(&got)[2..], turned(true));
    let tellers: Vec<Value> = got
        .iter()
        .map(Delivery::json)
        .filter(|v| v["event"] == "health")
        .map(|v| v["node"].clone())
        .collect();
    assert_eq!(tellers, ["ns1"; 4]);

    // a node leaves
    lab.stop(3);
    let got = wait_got(&r, BOUND, |g| cluster_events(g).len() >= 3);
    assert_eq!(
        cluster_events(&got)[2],
        (
            "ns1".to_string(),
            "node-left".to_string(),
            Value::from("ns3")
        )
    );

    // etcd away and back: each node tells its own
    let tellers = |g: &[Delivery], action: &str| {
        cluster_events(g)
            .into_iter()
            .filter(|(_, a, p)| a == action && p.is_null())
            .map(|(n, _, _)| n)
            .collect::<std::collections::BTreeSet<String>>()
    };
    let both = std::collections::BTreeSet::from(["ns1".to_string(), "ns2".to_string()]);
    lab.etcd.kill_all();
    wait_got(&r, Duration::from_secs(20), |g| {
        tellers(g, "etcd-lost") == both
    });
    lab.etcd.revive_all();
    wait_got(&r, Duration::from_secs(30), |g| {
        tellers(g, "etcd-regained") == both
    });
}
