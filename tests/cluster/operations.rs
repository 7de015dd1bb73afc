//! Dials and scheduled drains across a cluster (SPEC §11): stored in
//! etcd, applied by every node, kept across restarts; a scheduled drain
//! is started (and audited) by one node, by another when its maker dies.

use super::*;

/// 64 client networks as ECS sources.
fn networks() -> Vec<String> {
    (0..64u32).map(|i| format!("10.77.{i}.0/24")).collect()
}

/// Which networks `s` answers www with eu-west.
fn kept(s: &Server, nets: &[String]) -> Vec<bool> {
    nets.iter()
        .map(|n| s.a(WWW, Some(n)) == vec![ip(EU)])
        .collect()
}

fn dial(s: &Server, method: &str, region: &str, query: &str) -> (u16, String) {
    http(
        method,
        &format!("{}/v1/regions/{region}/dial{query}", s.admin_url()),
        None,
    )
}

fn audit(s: &Server) -> Vec<serde_json::Value> {
    get_json(&format!("{}/v1/audit", s.admin_url()))["audit"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn in_secs(secs: u64) -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now() + Duration::from_secs(secs))
        .to_string()
}

#[test]
fn dials_and_scheduled_drains_reach_every_node_and_one_node_starts_a_drill() {
    let Some(mut lab) = Lab::start("operations") else {
        return;
    };
    assert!(lab.all_answer(WWW, EU, BOUND).is_some());
    let nets = networks();

    // a dial made on ns1 reaches every node; they all keep the same networks
    let (code, body) = dial(lab.node(1), "POST", "eu-west", "?value=0.5");
    assert_eq!(code, 200, "{body}");
    let mut seen = None;
    assert!(
        wait_fast(BOUND, || {
            let sets: Vec<Vec<bool>> = lab.running().iter().map(|s| kept(s, &nets)).collect();
            let same = sets.windows(2).all(|w| w[0] == w[1]);
            let k = sets[0].iter().filter(|&&x| x).count();
            seen = Some(k);
            same && (12..=52).contains(&k)
        })
        .is_some(),
        "every node keeps the same half of the networks (kept {seen:?})"
    );
    let before = kept(lab.node(1), &nets);
    for s in lab.running() {
        let st = status(s);
        let eu = st["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "eu-west")
            .unwrap()
            .clone();
        assert_eq!(eu["dial"], 0.5, "{st}");
    }
    // kept across a restart of a node (from etcd)
    lab.stop(2);
    lab.up(2);
    assert!(
        wait_fast(Duration::from_secs(10), || kept(lab.node(2), &nets)
            == before)
        .is_some(),
        "the restarted node applies the dial"
    );
    // undone on ns3, everywhere
    let (code, body) = dial(lab.node(3), "DELETE", "eu-west", "");
    assert_eq!(code, 200, "{body}");
    assert!(
        wait_fast(BOUND, || lab
            .running()
            .iter()
            .all(|s| kept(s, &nets[..8]).iter().all(|&k| k)))
        .is_some()
    );

    // a drill made on ns2 starts and ends on every node, audited once
    let (code, body) = drain(
        lab.node(2),
        "POST",
        "eu-west",
        &format!("?at={}&for=3s", in_secs(2)),
    );
    assert_eq!(code, 200, "{body}");
    for s in lab.running() {
        assert!(
            wait_fast(BOUND, || status(s)["scheduled"]
                .as_array()
                .map_or(0, Vec::len)
                == 1)
            .is_some(),
            "every node lists the schedule"
        );
    }
    assert!(
        lab.all_answer(WWW, US, Duration::from_secs(6)).is_some(),
        "the drill starts on every node"
    );
    assert!(
        lab.all_answer(WWW, EU, Duration::from_secs(8)).is_some(),
        "and ends on every node"
    );
    let count = |lab: &Lab, action: &str| {
        audit(lab.node(1))
            .iter()
            .filter(|a| {
                a["action"] == action
                    && a["target"] == "region eu-west"
                    && a["result"].as_str().unwrap_or("").starts_with("ok")
            })
            .count()
    };
    assert!(
        wait_fast(BOUND, || count(&lab, "drain-start") == 1
            && count(&lab, "drain-end") == 1)
        .is_some(),
        "one start and one end in the cluster's audit: {:?}",
        audit(lab.node(1))
    );

    // its maker dies before it starts: the first live node starts it
    let (code, body) = drain(
        lab.node(2),
        "POST",
        "eu-west",
        &format!("?at={}&for=20s", in_secs(2)),
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        wait_fast(BOUND, || status(lab.node(1))["scheduled"]
            .as_array()
            .map_or(0, Vec::len)
            == 1)
        .is_some()
    );
    lab.kill(2);
    assert!(
        lab.all_answer(WWW, US, Duration::from_secs(15)).is_some(),
        "another node starts the drill once ns2's lease is gone"
    );
    assert!(
        wait_fast(BOUND, || count(&lab, "drain-start") == 2).is_some(),
        "{:?}",
        audit(lab.node(1))
    );
    let start = audit(lab.node(1))
        .into_iter()
        .find(|a| a["action"] == "drain-start")
        .unwrap();
    assert_eq!(start["node"], "ns1", "{start}");
}
