//! Traffic operations on a single node with a state file (SPEC §11):
//! dials, scheduled drains, and their audit, restarts and refusals.

use super::*;

/// `www` geo over the three static regions, hashing client /28s, with a
/// state file; `extra` goes into `[server]`.
fn ops_config(extra: &str) -> String {
    static_config(&format!("state = \"signpost.state\"\n{extra}")).replace(
        "policy = \"geo\"\nttl = 30",
        "policy = \"geo\"\nttl = 30\nhash_prefix = [28, 56]\nmin_healthy_regions = 2",
    )
}

/// The 256 client /28s of the NL block 193.0.0.0/20 (all nearest to
/// eu-west, then us-east).
fn nl_networks() -> Vec<String> {
    (0..256u32)
        .map(|i| format!("193.0.{}.{}/28", i / 16, (i % 16) * 16))
        .collect()
}

/// Which networks get eu-west (192.0.2.2), with each answer's scope.
fn eu_kept(s: &Server, nets: &[String]) -> Vec<(bool, u8)> {
    nets.iter()
        .map(|n| {
            let (got, scope) = answer(s, WWW, RecordType::A, n);
            assert_eq!(got.len(), 1, "{n}: {got:?}");
            assert!(
                got[0] == ip("192.0.2.2") || got[0] == ip("192.0.2.1"),
                "{n}: {got:?}"
            );
            (got[0] == ip("192.0.2.2"), scope.unwrap_or(0))
        })
        .collect()
}

fn audit_actions(s: &Server) -> Vec<Value> {
    get_json(&format!("{}/v1/audit", s.admin_url()))["audit"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_dial_moves_a_stable_share_by_network_and_survives_a_restart() {
    let s = start("dial", &ops_config(""));
    let admin = s.admin_url();
    let nets = nl_networks();
    let before = eu_kept(&s, &nets);
    assert!(before.iter().all(|(eu, _)| *eu), "undialled: all eu-west");

    let v = call(
        "POST",
        &format!("{admin}/v1/regions/eu-west/dial?value=0.25"),
        None,
        200,
    );
    assert_eq!(v["value"], 0.25, "{v}");
    let quarter = eu_kept(&s, &nets);
    let kept = quarter.iter().filter(|(eu, _)| *eu).count();
    assert!(
        (30..=100).contains(&kept),
        "a dial of 0.25 keeps about 64 of 256 networks, kept {kept}"
    );
    // every answer that depends on the dial is scoped to the hash prefix
    for (i, (_, scope)) in quarter.iter().enumerate() {
        assert!(
            *scope >= 28,
            "{}: scope {scope} below the hash prefix",
            nets[i]
        );
    }
    // stable: asked again, each network gets the same region
    assert_eq!(quarter, eu_kept(&s, &nets));
    // explain names the dial for a client it moved
    let moved = nets[quarter.iter().position(|(eu, _)| !eu).unwrap()].clone();
    let addr = moved.split('/').next().unwrap();
    let e = get_json(&format!("{admin}/v1/explain?name={WWW}&client={addr}"));
    assert_eq!(e["rule"], "dial", "{e}");
    let eu = e["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["region"] == "eu-west")
        .unwrap();
    assert_eq!(eu["dial"], 0.25, "{e}");
    // status and the audit show it
    let st = status(&s);
    assert_eq!(region(&st, "eu-west")["dial"], 0.25, "{st}");
    assert_eq!(region(&st, "eu-west")["drained"], false, "{st}");
    assert!(
        audit_actions(&s)
            .iter()
            .any(|a| a["action"] == "dial" && a["target"] == "region eu-west"),
        "audited"
    );
    // the metric
    let (_, m) = http("GET", &format!("{admin}/metrics"), None);
    assert_eq!(
        metric(&m, "signpost_region_dial", &[("region", "eu-west")]),
        Some(0.25)
    );

    // a larger dial keeps a superset: the same networks move first
    call(
        "POST",
        &format!("{admin}/v1/regions/eu-west/dial?value=0.6"),
        None,
        200,
    );
    let more = eu_kept(&s, &nets);
    for (q, m) in quarter.iter().zip(&more) {
        assert!(!q.0 || m.0, "a network kept at 0.25 is kept at 0.6");
    }

    // kept across a restart (the state file)
    call(
        "POST",
        &format!("{admin}/v1/regions/eu-west/dial?value=0.25"),
        None,
        200,
    );
    let dir = s.dir.clone();
    assert!(s.stop().success());
    let saved = std::fs::read_to_string(dir.join("signpost.state")).unwrap();
    assert!(saved.contains("\"dials\""), "{saved}");
    let s = Server::start_in(dir, &["serve", "--config", "signpost.toml"]);
    let admin = s.admin_url();
    assert_eq!(
        eu_kept(&s, &nets),
        quarter,
        "the same networks after a restart"
    );

    // 0 sends every client on without draining; DELETE undoes it
    call(
        "POST",
        &format!("{admin}/v1/regions/eu-west/dial?value=0"),
        None,
        200,
    );
    assert!(eu_kept(&s, &nets).iter().all(|(eu, _)| !eu));
    assert_eq!(region(&status(&s), "eu-west")["drained"], false);
    call(
        "DELETE",
        &format!("{admin}/v1/regions/eu-west/dial"),
        None,
        200,
    );
    assert!(eu_kept(&s, &nets).iter().all(|(eu, _)| *eu));
    assert!(region(&status(&s), "eu-west")["dial"].is_null());

    // bad input: a value out of range or not a number, an unknown region
    for q in [
        "value=1.5",
        "value=-0.1",
        "value=abc",
        "value=NaN",
        "",
        "value=0.5&for=0s",
        "value=0.5&x=1",
    ] {
        let (code, body) = http(
            "POST",
            &format!("{admin}/v1/regions/eu-west/dial?{q}"),
            None,
        );
        assert_eq!(code, 400, "{q}: {body}");
        assert!(body.contains("\"error\""), "{q}: {body}");
    }
    let (code, body) = http(
        "POST",
        &format!("{admin}/v1/regions/nowhere/dial?value=0.5"),
        None,
    );
    assert_eq!(code, 404, "{body}");
    assert!(s.stop().success());
}

#[test]
fn a_dial_for_a_while_ends_by_itself_and_ctl_sets_one() {
    let s = start("dial-for", &ops_config(""));
    let admin = s.admin_url();
    let nets = nl_networks();
    let (code, out, err) = run(
        &s.dir,
        &[
            "ctl", "dial", "eu-west", "0", "--for", "2s", "--admin", &admin,
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("dialled region eu-west to 0"), "{out}");
    assert!(eu_kept(&s, &nets).iter().all(|(eu, _)| !eu));
    let (_, out, _) = run(&s.dir, &["ctl", "status", "--admin", &admin], &[]);
    assert!(out.contains("dialled to 0"), "{out}");
    wait_until(Duration::from_secs(10), || {
        eu_kept(&s, &nets[..16]).iter().all(|(eu, _)| *eu)
    })
    .expect("the dial ends after 2 s");
    assert!(region(&status(&s), "eu-west")["dial"].is_null());
    assert!(s.stop().success());
}

/// An RFC 3339 time `secs` from now.
fn in_secs(secs: u64) -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now() + Duration::from_secs(secs))
        .to_string()
}

#[test]
fn a_scheduled_drain_starts_and_ends_by_itself_and_is_audited() {
    let s = start("scheduled", &ops_config(""));
    let admin = s.admin_url();
    let starts = in_secs(3);
    let v = call(
        "POST",
        &format!("{admin}/v1/regions/eu-west/drain?at={starts}&for=3s"),
        None,
        200,
    );
    assert_eq!(
        v["starts"].as_str().map(|s| &s[..19]),
        Some(&starts[..19]),
        "{v}"
    );
    let st = status(&s);
    let sched = st["scheduled"].as_array().unwrap();
    assert_eq!(sched.len(), 1, "{st}");
    assert_eq!(sched[0]["target"], "region eu-west");
    assert_eq!(sched[0]["for"], "3s");
    assert_eq!(
        region(&st, "eu-west")["drained"],
        false,
        "not before it starts"
    );
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.2")]);
    // it starts
    wait_until(Duration::from_secs(8), || {
        answer(&s, WWW, RecordType::A, EU).0 == vec![ip("192.0.2.1")]
    })
    .expect("the scheduled drain starts");
    let st = status(&s);
    assert_eq!(region(&st, "eu-west")["drained"], true, "{st}");
    assert!(st["scheduled"].as_array().unwrap().is_empty(), "{st}");
    // and ends
    wait_until(Duration::from_secs(8), || {
        answer(&s, WWW, RecordType::A, EU).0 == vec![ip("192.0.2.2")]
    })
    .expect("the scheduled drain ends");
    let audit = audit_actions(&s);
    let has = |action: &str, result: &str| {
        audit.iter().any(|a| {
            a["action"] == action
                && a["target"] == "region eu-west"
                && a["result"].as_str().unwrap_or("").starts_with(result)
        })
    };
    assert!(has("drain", "ok"), "made: {audit:?}");
    assert!(has("drain-start", "ok"), "started: {audit:?}");
    assert!(has("drain-end", "ok"), "ended: {audit:?}");
    assert!(s.stop().success());
}

#[test]
fn a_scheduled_drain_is_kept_across_a_restart_listed_and_cancellable() {
    let s = start("scheduled-restart", &ops_config(""));
    let admin = s.admin_url();
    let (code, out, err) = run(
        &s.dir,
        &[
            "ctl", "drain", "ap-south", "--at", "+10m", "--for", "30m", "--admin", &admin,
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("scheduled a drain of region ap-south"),
        "{out}"
    );
    let dir = s.dir.clone();
    assert!(s.stop().success());
    let s = Server::start_in(dir, &["serve", "--config", "signpost.toml"]);
    let admin = s.admin_url();
    let st = status(&s);
    let sched = st["scheduled"].as_array().unwrap();
    assert_eq!(sched.len(), 1, "{st}");
    assert_eq!(sched[0]["region"], "ap-south");
    let (_, out, _) = run(&s.dir, &["ctl", "status", "--admin", &admin], &[]);
    assert!(out.contains("SCHEDULED DRAIN"), "{out}");
    // `at` without `for`, a time in the past, garbage: 400
    for q in [
        format!("at={}", in_secs(60)),
        "at=yesterday&for=10m".to_string(),
        "at=2020-01-01T00:00:00Z&for=10m".to_string(),
    ] {
        let (code, body) = http(
            "POST",
            &format!("{admin}/v1/regions/eu-west/drain?{q}"),
            None,
        );
        assert_eq!(code, 400, "{q}: {body}");
    }
    // cancelled with DELETE
    call(
        "DELETE",
        &format!("{admin}/v1/regions/ap-south/drain"),
        None,
        200,
    );
    assert!(status(&s)["scheduled"].as_array().unwrap().is_empty());
    assert!(s.stop().success());
}

#[test]
fn the_safety_rule_holds_a_scheduled_drain_when_made_and_when_it_starts() {
    // www needs 2 of its 3 regions
    let s = start("scheduled-safety", &ops_config(""));
    let admin = s.admin_url();
    // two drains scheduled to overlap would leave one region: the second
    // is refused when made
    call(
        "POST",
        &format!(
            "{admin}/v1/regions/ap-south/drain?at={}&for=1h",
            in_secs(600)
        ),
        None,
        200,
    );
    let (code, body) = http(
        "POST",
        &format!(
            "{admin}/v1/regions/us-east/drain?at={}&for=1h",
            in_secs(900)
        ),
        None,
    );
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("www.example.test"), "{body}");
    call(
        "DELETE",
        &format!("{admin}/v1/regions/ap-south/drain"),
        None,
        200,
    );
    // one that passes when made, but not when it starts: another region
    // was drained meanwhile
    call(
        "POST",
        &format!("{admin}/v1/regions/ap-south/drain?at={}&for=1h", in_secs(3)),
        None,
        200,
    );
    call(
        "POST",
        &format!("{admin}/v1/regions/us-east/drain"),
        None,
        200,
    );
    wait_until(Duration::from_secs(10), || {
        audit_actions(&s).iter().any(|a| {
            a["action"] == "drain-start"
                && a["target"] == "region ap-south"
                && a["result"].as_str().unwrap_or("").contains("refused")
        })
    })
    .expect("the start is refused and audited");
    // its removal is written to the state file, then applied
    wait_until(Duration::from_secs(5), || {
        status(&s)["scheduled"]
            .as_array()
            .is_some_and(Vec::is_empty)
    })
    .expect("the refused drain leaves the schedule");
    let st = status(&s);
    assert_eq!(region(&st, "ap-south")["drained"], false, "{st}");
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.2")]);
    // a region drained now cannot also be scheduled
    let (code, body) = http(
        "POST",
        &format!(
            "{admin}/v1/regions/us-east/drain?at={}&for=1h",
            in_secs(600)
        ),
        None,
    );
    assert_eq!(code, 409, "{body}");
    assert!(s.stop().success());
}
