//! The admin API's JSON replies as text for people. A missing or
//! mistyped field shows as empty, 0 or `-`, never as an error.

use serde_json::Value;

/// An explanation, for people: the question, the client, the rule and
/// the answer, then each candidate region in decision order.
pub fn render_explain(v: &Value) -> String {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let f = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
    let mut out = String::new();
    let c = v.get("client").cloned().unwrap_or(Value::Null);
    let place: Vec<String> = [s(&c, "country"), s(&c, "continent")]
        .into_iter()
        .filter(|x| !x.is_empty())
        .collect();
    out.push_str(&format!(
        "{} {} for client {} ({}{})\n",
        s(v, "name"),
        s(v, "type"),
        s(&c, "address"),
        if place.is_empty() {
            "location unknown".to_string()
        } else {
            place.join(", ")
        },
        match s(&c, "network") {
            n if n.is_empty() => String::new(),
            n => format!("; GeoIP network {n}"),
        }
    ));
    let down: Vec<&str> = strings(v, "what_if_down");
    if !down.is_empty() {
        out.push_str(&format!(
            "what if down: {} (live state untouched)\n",
            down.join(", ")
        ));
    }
    out.push_str(&format!(
        "policy {}, select {}; rule: {}\n",
        s(v, "policy"),
        s(v, "select"),
        s(v, "rule")
    ));
    let answer: Vec<&str> = strings(v, "answer");
    out.push_str(&format!(
        "answer: {} (ttl {}, ECS scope /{})\n\n",
        if answer.is_empty() {
            "none (NODATA)".to_string()
        } else {
            answer.join(", ")
        },
        v.get("ttl").and_then(Value::as_u64).unwrap_or(0),
        v.get("scope").and_then(Value::as_u64).unwrap_or(0)
    ));
    out.push_str(&format!(
        "{:<5} {:<16} {:>10} {:<9} {:>6} {:>6} {:>9}  ENDPOINTS\n",
        "RANK", "REGION", "DISTANCE", "STATE", "WEIGHT", "LOAD", "LATENCY"
    ));
    for r in items(v, "candidates") {
        let b = |k: &str| r.get(k).and_then(Value::as_bool).unwrap_or(false);
        let state = if b("drained") {
            "drained"
        } else if b("healthy") {
            "healthy"
        } else if down.contains(&s(r, "region").as_str()) {
            "down*"
        } else {
            "down"
        };
        let eps: Vec<String> = items(r, "endpoints")
            .map(|e| {
                let eb = |k: &str| e.get(k).and_then(Value::as_bool).unwrap_or(false);
                format!(
                    "{} {}",
                    s(e, "address"),
                    if eb("drained") {
                        "drained"
                    } else if eb("healthy") {
                        "up"
                    } else {
                        "down"
                    }
                )
            })
            .collect();
        out.push_str(&format!(
            "{:<5} {:<16} {:>10} {:<9} {:>6} {:>6} {:>9}  {}\n",
            r.get("rank")
                .and_then(Value::as_u64)
                .map_or("-".to_string(), |n| n.to_string()),
            s(r, "region"),
            f(r, "distance_km").map_or("-".to_string(), |d| format!("{d:.0} km")),
            state,
            r.get("weight").and_then(Value::as_u64).unwrap_or(0),
            f(r, "utilisation").map_or_else(
                || f(r, "load").map_or("-".to_string(), |l| format!("{l:.0}")),
                |u| format!("{:.0}%", u * 100.0)
            ),
            f(r, "latency_ms").map_or("-".to_string(), |l| format!("{l:.1} ms")),
            eps.join(", ")
        ));
    }
    if !down.is_empty() {
        out.push_str("* down in this what-if only\n");
    }
    out
}

/// `{"region": R}` or `{"endpoint": A}` of a drain reply.
pub(super) fn render_target(v: Option<&Value>) -> String {
    let v = v.unwrap_or(&Value::Null);
    match (v.get("region"), v.get("endpoint")) {
        (Some(r), _) => format!("region {}", r.as_str().unwrap_or_default()),
        (None, Some(e)) => format!("endpoint {}", e.as_str().unwrap_or_default()),
        _ => v.to_string(),
    }
}

/// Text from the server made safe for a terminal: control characters
/// (escape sequences a caller could have planted in a drain target) shown
/// as `?`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `/v1/audit`, one line per action.
pub fn render_audit(v: &Value) -> String {
    let s = |v: &Value, k: &str| printable(v.get(k).and_then(Value::as_str).unwrap_or(""));
    let list = v.get("audit").and_then(Value::as_array);
    let mut out = format!(
        "{:<25} {:<9} {:<28} {:<8} {:<16} RESULT\n",
        "AT", "ACTION", "TARGET", "FOR", "FROM"
    );
    for e in list.into_iter().flatten() {
        let mut from = s(e, "from");
        if let Some(n) = e.get("node").and_then(Value::as_str) {
            from = format!("{from}@{n}");
        }
        out.push_str(&format!(
            "{:<25} {:<9} {:<28} {:<8} {:<16} {}\n",
            s(e, "at"),
            s(e, "action"),
            s(e, "target"),
            e.get("for").and_then(Value::as_str).unwrap_or("-"),
            if from.is_empty() {
                "-".to_string()
            } else {
                from
            },
            s(e, "result")
        ));
    }
    if list.is_none_or(|l| l.is_empty()) {
        out.push_str("(no operator actions yet)\n");
    }
    out
}

/// The members of the JSON array `v[key]` (none if it is missing or not an
/// array).
fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// The strings of the JSON array `v[key]`.
fn strings<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    items(v, key).filter_map(Value::as_str).collect()
}

/// A reload's reply, for people: what changed, then each warning.
pub fn render_reload(v: &Value) -> String {
    let v = v.get("summary").unwrap_or(v);
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut out = format!(
        "reloaded: generation {}, {} zones, {} services; probe targets: {} kept ({} with new timing), {} added, {} removed{}\n",
        n("generation"),
        n("zones"),
        n("services"),
        n("targets_kept"),
        n("targets_updated"),
        n("targets_added"),
        n("targets_removed"),
        if v.get("geoip_reloaded").and_then(Value::as_bool) == Some(true) {
            "; GeoIP database compiled anew"
        } else {
            ""
        }
    );
    for w in items(v, "warnings") {
        out.push_str(&format!("warning: {}\n", w.as_str().unwrap_or_default()));
    }
    out
}

/// A human-readable table of `/v1/status`: each region with its state,
/// load and latency, then its endpoints with their state, since when, and
/// their last probe; drains say until when on a line of their own.
pub fn render_status(v: &Value) -> String {
    let mut out = format!(
        "generation {}  config {}\n",
        v.get("generation").and_then(Value::as_u64).unwrap_or(0),
        text(v, "config")
    );
    if let Some(c) = v.get("cluster").filter(|c| !c.is_null()) {
        out.push_str(&status_cluster(c));
    }
    out.push_str(&format!(
        "\n{:<16} {:<22} {:>6} {:>9}\n",
        "REGION", "STATE", "LOAD", "LATENCY"
    ));
    for r in items(v, "regions") {
        status_region(&mut out, r);
    }
    let scheduled: Vec<&Value> = items(v, "scheduled").collect();
    if !scheduled.is_empty() {
        out.push_str(&format!(
            "\n{:<28} {:<22} {:<8} SAFETY\n",
            "SCHEDULED DRAIN", "STARTS", "FOR"
        ));
        for d in scheduled {
            out.push_str(&format!(
                "{:<28} {:<22} {:<8} {}\n",
                text(d, "target"),
                text(d, "starts"),
                text(d, "for"),
                if flag(d, "forced") {
                    "forced"
                } else {
                    "checked again at its start"
                }
            ));
        }
    }
    out.push_str(&format!(
        "\n{:<28} {:<9} {:<5} REGIONS (usable/total)\n",
        "SERVICE", "POLICY", "TTL"
    ));
    for sv in items(v, "services") {
        let regions: Vec<&str> = strings(sv, "regions");
        out.push_str(&format!(
            "{:<28} {:<9} {:<5} {} ({}/{})\n",
            text(sv, "name"),
            text(sv, "policy"),
            sv.get("ttl").and_then(Value::as_u64).unwrap_or(0),
            regions.join(", "),
            sv.get("healthy_regions")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            regions.len()
        ));
    }
    out.push_str(&format!("\n{:<28} {:<11} SOURCE\n", "ZONE", "SERIAL"));
    for z in items(v, "zones") {
        out.push_str(&format!(
            "{:<28} {:<11} {}{}\n",
            text(z, "name"),
            z.get("serial").and_then(Value::as_u64).unwrap_or(0),
            text(z, "source"),
            z.get("transfer")
                .filter(|t| !t.is_null())
                .map(zone_transfer)
                .unwrap_or_default()
        ));
    }
    for z in items(v, "zones") {
        if let Some(d) = z.get("dnssec").filter(|d| !d.is_null()) {
            status_signed_zone(&mut out, d);
        }
    }
    out
}

/// `, last IXFR at T` and `, error: E` after a zone taken from a primary.
fn zone_transfer(t: &Value) -> String {
    let mut s = String::new();
    match (
        t.get("last_result").and_then(Value::as_str),
        t.get("last_ok").and_then(Value::as_str),
    ) {
        (Some(how), Some(at)) => s.push_str(&format!(", last {how} at {at}")),
        _ => s.push_str(", not transferred yet"),
    }
    if let Some(e) = t.get("error").and_then(Value::as_str) {
        s.push_str(&format!(", error: {e}"));
    }
    s
}

/// A signed zone: its keys and their state, the DS for the parent, and
/// when its signatures expire and are re-made.
fn status_signed_zone(out: &mut String, d: &Value) {
    out.push_str(&format!(
        "\nZONE {}  signed, signatures expire {}, re-signed {}\n",
        text(d, "zone"),
        text(d, "expires_at"),
        text(d, "next_resign_at")
    ));
    out.push_str(&format!(
        "  {:<6} {:<16} {:<6} {:<5} {:<10} FILE\n",
        "TAG", "ALGORITHM", "FLAGS", "ROLE", "STATE"
    ));
    for k in items(d, "keys") {
        out.push_str(&format!(
            "  {:<6} {:<16} {:<6} {:<5} {:<10} {}\n",
            k.get("tag").and_then(Value::as_u64).unwrap_or(0),
            text(k, "algorithm_name"),
            k.get("flags").and_then(Value::as_u64).unwrap_or(0),
            text(k, "role"),
            text(k, "state"),
            text(k, "file")
        ));
    }
    for ds in strings(d, "ds") {
        out.push_str(&format!("  {ds}\n"));
    }
}

/// The cluster line of a status, then a line per node that answers
/// differently from this one.
fn status_cluster(c: &Value) -> String {
    let nodes = c.get("nodes").and_then(Value::as_array);
    let n = nodes.map_or(0, Vec::len);
    let mut out = format!(
        "cluster: node {}, {}, {n} node{}, down_quorum {}{}\n",
        text(c, "node"),
        if flag(c, "connected") {
            "connected".to_string()
        } else if c.get("synced") == Some(&Value::Bool(false)) {
            "etcd unreachable (serving the state file's drains; the cluster's not read yet)"
                .to_string()
        } else {
            "etcd unreachable".to_string()
        },
        if n == 1 { "" } else { "s" },
        text(c, "down_quorum"),
        match c.get("diverged").and_then(Value::as_array) {
            Some(d) if !d.is_empty() => format!(
                "; answering differently: {}",
                d.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => String::new(),
        }
    );
    for node in nodes.into_iter().flatten() {
        let differs = strings(node, "differs");
        if !differs.is_empty() {
            out.push_str(&format!(
                "  {}: {}\n",
                text(node, "name"),
                differs.join(", ")
            ));
        }
    }
    out
}

/// A region of a status: its line, its drain, then a line per endpoint.
fn status_region(out: &mut String, r: &Value) {
    let eps: Vec<&Value> = items(r, "endpoints").collect();
    // `healthy` of a region: an endpoint up and not drained (usable);
    // of an endpoint: its probes pass, drained or not
    let passing = eps.iter().any(|e| flag(e, "healthy"));
    let state = if flag(r, "drained") {
        if passing {
            "drained (probes pass)"
        } else {
            "drained (probes fail)"
        }
    } else if !flag(r, "healthy") {
        if passing {
            "out (endpoints drained)"
        } else {
            "DOWN"
        }
    } else if eps
        .iter()
        .all(|e| flag(e, "healthy") && !flag(e, "drained"))
    {
        "up"
    } else {
        "up (some endpoints out)"
    };
    out.push_str(&format!(
        "{:<16} {:<22} {:>6} {:>9}\n",
        text(r, "name"),
        state,
        load(r),
        latency(r)
    ));
    if flag(r, "drained") {
        match r.get("drain_until").and_then(Value::as_str) {
            Some(u) => out.push_str(&format!("  drained until {u}\n")),
            None => out.push_str("  drained until undrained\n"),
        }
    }
    if let Some(d) = r.get("dial").and_then(Value::as_f64) {
        out.push_str(&format!(
            "  dialled to {d}: keeps {:.0}% of its clients{}\n",
            d * 100.0,
            r.get("dial_until")
                .and_then(Value::as_str)
                .map_or(String::new(), |u| format!(", until {u}"))
        ));
    }
    if let Some(b) = r.get("bias").and_then(Value::as_i64).filter(|&b| b != 0) {
        out.push_str(&format!(
            "  bias {b:+}: distances to it count {}%\n",
            100 - b
        ));
    }
    for e in eps {
        out.push_str(&status_endpoint(e));
    }
}

/// An endpoint's line in a status.
fn status_endpoint(e: &Value) -> String {
    let state = match (flag(e, "drained"), flag(e, "healthy")) {
        (true, true) => "drained (up)",
        (true, false) => "drained (down)",
        (false, true) => "up",
        (false, false) => "DOWN",
    };
    let since = match text(e, "since") {
        x if x.is_empty() => String::new(),
        x => format!("  since {x}"),
    };
    let last = e
        .get("last_probe")
        .filter(|p| !p.is_null())
        .map(|p| {
            format!(
                "  {}last probe: {}, {:.1} ms",
                if e.get("cluster_verdict").is_some_and(|v| !v.is_null()) {
                    "this node's "
                } else {
                    ""
                },
                text(p, "reason"),
                p.get("latency_ms").and_then(Value::as_f64).unwrap_or(0.0)
            )
        })
        .unwrap_or_default();
    let until = match e.get("drain_until").and_then(Value::as_str) {
        Some(u) => format!("  drained until {u}"),
        None => String::new(),
    };
    // in a cluster the verdict of the live nodes decides; this node's own
    // probe (the last probe above) is one vote of it
    let votes = e
        .get("cluster_verdict")
        .filter(|v| !v.is_null())
        .map(|v| {
            format!(
                "  {} of {} nodes see it down",
                v.get("down").and_then(Value::as_u64).unwrap_or(0),
                v.get("of").and_then(Value::as_u64).unwrap_or(0)
            )
        })
        .unwrap_or_default();
    format!(
        "  {:<30} {:<15} {:>6} {:>9}{votes}{since}{last}{until}\n",
        text(e, "address"),
        state,
        load(e),
        latency(e)
    )
}

/// The string `v[k]`; empty if missing.
fn text(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// The boolean `v[k]`; false if missing.
fn flag(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or(false)
}

/// A region's or endpoint's load: its utilisation, else the raw load, else `-`.
fn load(v: &Value) -> String {
    let f = |k: &str| v.get(k).and_then(Value::as_f64);
    match (f("utilisation"), f("load")) {
        (Some(u), _) => format!("{:.0}%", u * 100.0),
        (None, Some(l)) => format!("{l:.0}"),
        _ => "-".to_string(),
    }
}

/// A region's or endpoint's smoothed probe latency, or `-`.
fn latency(v: &Value) -> String {
    v.get("latency_ms")
        .and_then(Value::as_f64)
        .map_or("-".to_string(), |l| format!("{l:.1} ms"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ep(address: &str, healthy: bool, drained: bool) -> Value {
        json!({ "address": address, "healthy": healthy, "drained": drained, "capacity": 100.0 })
    }

    #[test]
    fn status_shows_each_zones_serial_source_and_transfer() {
        let v = json!({
            "generation": 1, "config": "c", "regions": [], "services": [],
            "zones": [
                { "name": "example.test.", "serial": 2026112201, "source": "file zones/example.test.zone" },
                { "name": "other.test.", "serial": 101, "source": "primary 192.0.2.53:53",
                  "transfer": { "primary": "192.0.2.53:53", "serial": 101, "last_ok": "2026-12-07T12:00:00Z",
                                "last_result": "IXFR", "error": "connect: refused" } },
                { "name": "new.test.", "serial": 0, "source": "primary 192.0.2.54:53",
                  "transfer": { "primary": "192.0.2.54:53", "serial": null, "last_ok": null,
                                "last_result": null, "error": null } },
            ],
        });
        let out = render_status(&v);
        let line = |z: &str| {
            out.lines()
                .find(|l| l.starts_with(z))
                .unwrap_or_default()
                .to_string()
        };
        assert!(
            line("example.test.").contains("2026112201  file zones/example.test.zone"),
            "{out}"
        );
        assert!(
            line("other.test.").contains("101         primary 192.0.2.53:53, last IXFR at 2026-12-07T12:00:00Z, error: connect: refused"),
            "{out}"
        );
        assert!(line("new.test.").ends_with("not transferred yet"), "{out}");
    }

    #[test]
    fn status_keeps_drained_out_and_down_apart() {
        let v = json!({
            "generation": 7,
            "config": "/etc/signpost/signpost.toml",
            "cluster": { "node": "ns1", "connected": true, "down_quorum": "majority",
                         "nodes": [{}, {}, { "name": "ns3", "differs": ["down_quorum = \"any\""] }],
                         "diverged": ["ns3"] },
            "regions": [
                { "name": "a", "healthy": false, "drained": true,
                  "drain_until": "2026-12-04T23:59:59Z",
                  "endpoints": [ep("192.0.2.1", true, true)] },
                { "name": "b", "healthy": false, "drained": false,
                  "endpoints": [ep("192.0.2.2", true, true)] },
                { "name": "c", "healthy": false, "drained": false,
                  "endpoints": [ep("192.0.2.3", false, false)] },
                { "name": "d", "healthy": true, "drained": false, "utilisation": 0.42,
                  "latency_ms": 3.25,
                  "endpoints": [ep("192.0.2.4", true, false), ep("192.0.2.5", false, false)] },
            ],
            "services": [],
        });
        let out = render_status(&v);
        let line = |r: &str| {
            out.lines()
                .find(|l| l.starts_with(&format!("{r} ")))
                .unwrap_or_default()
                .to_string()
        };
        assert!(line("a").contains("drained (probes pass)"), "{out}");
        assert!(
            out.contains("  drained until 2026-12-04T23:59:59Z"),
            "{out}"
        );
        assert!(line("b").contains("out (endpoints drained)"), "{out}");
        assert!(line("c").contains("DOWN"), "{out}");
        let d = line("d");
        assert!(
            d.contains("up (some endpoints out)") && d.contains("42%") && d.contains("3.2 ms"),
            "{d}"
        );
        assert!(
            out.contains("3 nodes") && out.contains("answering differently: ns3"),
            "{out}"
        );
        assert!(out.contains("  ns3: down_quorum = \"any\""), "{out}");
    }

    #[test]
    fn a_cluster_endpoint_shows_the_votes_before_this_nodes_probe() {
        let e = json!({ "address": "192.0.2.1", "healthy": true, "drained": false,
            "capacity": 100.0,
            "cluster_verdict": { "healthy": true, "down": 1, "of": 3, "down_quorum": "majority" },
            "last_probe": { "reason": "HTTP 503", "latency_ms": 2.0 } });
        let line = status_endpoint(&e);
        let votes = line.find("1 of 3 nodes see it down").expect("votes shown");
        let own = line
            .find("this node's last probe: HTTP 503")
            .expect("own probe named");
        assert!(votes < own, "{line}");
        let single = status_endpoint(&json!({ "address": "192.0.2.1", "healthy": true,
            "drained": false, "last_probe": { "reason": "HTTP 200", "latency_ms": 1.0 } }));
        assert!(
            !single.contains("nodes see") && single.contains("  last probe: HTTP 200"),
            "{single}"
        );
    }

    #[test]
    fn audit_lines_cannot_carry_terminal_escapes() {
        let v = json!({ "audit": [{ "at": "2026-12-04T22:00:00Z", "action": "drain",
            "target": "region \u{1b}[2Jevil", "from": "127.0.0.1", "result": "404 unknown" }] });
        let out = render_audit(&v);
        assert!(!out.contains('\u{1b}'), "{out:?}");
        assert!(out.contains("region ?[2Jevil"), "{out}");
        assert!(render_audit(&json!({ "audit": [] })).contains("no operator actions"));
    }
}
