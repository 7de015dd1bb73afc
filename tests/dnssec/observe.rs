//! What an operator sees of signing: /metrics, /v1/status and
//! `signpost ctl status` (keys, tags, the DS for the parent).

use std::time::Duration;

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::rr::{RData, RecordType};
use serde_json::Value;

use crate::common::*;
use crate::tools::*;
use crate::*;

/// The value of the metric line starting with `prefix` (name and labels).
fn metric(s: &Server, prefix: &str) -> f64 {
    let (code, body) = http("GET", &format!("{}/metrics", s.admin_url()), None);
    assert_eq!(code, 200);
    body.lines()
        .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {prefix} in:\n{body}"))
}

const MADE: &str = "signpost_dnssec_signatures_made_total";
const CACHED: &str = "signpost_dnssec_cache_signatures";

/// The fixture keys, two UDP workers.
fn start(name: &str) -> (Server, KeyFile, KeyFile) {
    let dir = scratch(name);
    let ksk = fixture(&dir, "Kexample.test.+013+64068");
    let zsk = fixture(&dir, "Kexample.test.+013+13951");
    std::fs::write(dir.join("example.test.zone"), zone()).unwrap();
    let cfg = config(&[ksk.config_path(), zsk.config_path()], &services()).replace(
        "admin = \"127.0.0.1:0\"",
        "admin = \"127.0.0.1:0\"\nworkers = 2",
    );
    std::fs::write(dir.join("signpost.toml"), cfg).unwrap();
    let s = Server::start_in(dir, &["serve", "--config", "signpost.toml"]);
    (s, ksk, zsk)
}

#[test]
fn metrics_count_signatures_and_show_their_expiry() {
    let (s, ..) = start("dnssec-metrics");
    let st = get_json(&format!("{}/v1/status", s.admin_url()));
    let d = &st["zones"][0]["dnssec"];
    let expiration = d["expiration"].as_i64().unwrap();

    let made = metric(&s, MADE);
    assert!(made > 0.0, "signatures made at start: {made}");
    let expiry = metric(
        &s,
        "signpost_dnssec_signature_expiry_seconds{zone=\"example.test.\"}",
    );
    assert!(
        expiry > 7.0 * 86_400.0 - 60.0 && expiry <= 14.0 * 86_400.0,
        "expiry {expiry}: at least refresh (7d) remains, at most validity"
    );
    let at = metric(
        &s,
        "signpost_dnssec_signature_expiration_timestamp_seconds{zone=\"example.test.\"}",
    );
    assert_eq!(at as i64, expiration, "the status and the metric agree");
    assert!((at - unix_now() as f64 - expiry).abs() < 5.0);
    assert_eq!(metric(&s, CACHED), 0.0, "nothing signed on first use yet");

    // without DO nothing is signed
    for i in 0..5 {
        let r = s.udp(&q(&format!("n{i}.nope.example.test."), RecordType::A, 0));
        assert!(!has_dnssec(&r));
    }
    assert_eq!(
        metric(&s, MADE),
        made,
        "no signature for a client without DO"
    );

    // names that do not exist are signed on first use, and cached
    for i in 0..3 {
        let r = s.udp(&q(&format!("d{i}.nope.example.test."), RecordType::A, DO));
        assert!(has_dnssec(&r));
    }
    let after = metric(&s, MADE);
    assert!(after >= made + 3.0, "made {made} -> {after}");
    let cached = metric(&s, CACHED);
    assert_eq!(cached, 3.0, "cache gauge: three names signed on first use");
    // the same name again and again: at most once per worker
    for _ in 0..20 {
        s.udp(&q("d0.nope.example.test.", RecordType::A, DO));
    }
    let again = metric(&s, MADE);
    assert!(
        again - after <= 2.0,
        "re-signed from cache? {after} -> {again}"
    );
}

#[test]
fn ctl_status_shows_keys_and_the_ds_for_the_parent() {
    let (s, ksk, zsk) = start("dnssec-ctl");
    let st = get_json(&format!("{}/v1/status", s.admin_url()));
    let d = &st["zones"][0]["dnssec"];
    assert_eq!(d["zone"], "example.test.");
    let key = |tag: u16| -> Value {
        d["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["tag"] == tag)
            .unwrap_or_else(|| panic!("key {tag} in {d}"))
            .clone()
    };
    for (k, role) in [(&ksk, "ksk"), (&zsk, "zsk")] {
        let v = key(k.tag);
        assert_eq!(v["role"], role, "{v}");
        assert_eq!(v["state"], "active", "{v}");
        assert_eq!(v["flags"], k.flags);
        assert_eq!(v["algorithm"], 13);
        assert_eq!(v["algorithm_name"], "ECDSAP256SHA256");
        assert_eq!(v["file"], k.config_path());
    }
    let ds: Vec<&str> = d["ds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ds.len(), 1, "one DS: the KSK's");
    let prefix = format!("example.test. IN DS {} 13 2 ", ksk.tag);
    assert!(ds[0].starts_with(&prefix), "{}", ds[0]);
    let digest = ds[0][prefix.len()..].to_string();
    assert_eq!(digest.len(), 64, "SHA-256 in hex: {}", ds[0]);
    for f in ["inception", "expiration", "next_resign"] {
        assert!(d[f].as_i64().unwrap() > 0, "{f}: {d}");
    }
    assert!(d["expires_at"].as_str().unwrap().ends_with('Z'));

    // the CDS served is the same DS
    let r = s.udp(&q("example.test.", RecordType::CDS, DO));
    let cds: Vec<String> = r
        .answers
        .iter()
        .filter_map(|x| match &x.data {
            RData::DNSSEC(DNSSECRData::CDS(c)) => Some(data_encoding::HEXUPPER.encode(c.digest())),
            _ => None,
        })
        .collect();
    assert_eq!(cds, vec![digest.clone()], "{r:?}");

    // BIND computes the same DS from the key file
    if missing(&["dnssec-dsfromkey"]).is_none() {
        let out = run_tool(
            "dnssec-dsfromkey",
            &["-2", ksk.key_path().to_str().unwrap()],
            Duration::from_secs(30),
        );
        assert_eq!(out.code, 0, "{}", out.text());
        let bind: Vec<&str> = out.stdout.split_whitespace().collect();
        let ours: Vec<&str> = ds[0].split_whitespace().collect();
        assert_eq!(bind, ours, "dnssec-dsfromkey and the status");
    } else {
        eprintln!("SKIP (part): dnssec-dsfromkey not installed (Debian package bind9-utils)");
    }

    // ctl status prints it all
    let (code, out, err) = run(&s.dir, &["ctl", "status", "--admin", &s.admin_url()], &[]);
    assert_eq!(code, 0, "{err}");
    println!("{out}");
    assert!(out.contains("ZONE example.test.  signed"), "{out}");
    assert!(out.lines().any(|l| l.trim() == ds[0]), "the DS line: {out}");
    for (k, role) in [(&ksk, "ksk"), (&zsk, "zsk")] {
        assert!(
            out.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.first() == Some(&k.tag.to_string().as_str())
                    && f.contains(&role)
                    && f.contains(&"active")
                    && l.contains(&k.config_path())
            }),
            "a line for key {} ({role}, active): {out}",
            k.tag
        );
    }
    let (code, out, err) = run(
        &s.dir,
        &["ctl", "status", "--json", "--admin", &s.admin_url()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["zones"][0]["dnssec"]["ds"][0], ds[0]);
}
