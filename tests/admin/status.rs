//! Health and the status.

use super::*;

#[test]
fn healthz_and_status_shape() {
    let n = 1;
    let eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let cfg = format!(
        r#"{}{}
[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "127.92.{n}.1" }}]

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
endpoints = [{{ address = "192.0.2.1" }}, {{ address = "2001:db8::1" }}]

[services."www.example.test."]
regions = ["us-east", "eu-west"]
ttl = 10
"#,
        head(""),
        web_check(port, "")
    );
    let s = start("status-shape", &cfg);
    let (code, body) = http("GET", &format!("{}/healthz", s.admin_url()), None);
    assert_eq!(code, 200);
    assert_eq!(body.trim(), "ok");

    let st = status(&s);
    let regions = st["regions"].as_array().expect("regions[]");
    assert_eq!(regions.len(), 2, "{st}");
    for r in regions {
        assert!(r["name"].is_string(), "{r}");
        assert!(r["healthy"].is_boolean(), "{r}");
        assert!(r["drained"].is_boolean(), "{r}");
        for e in r["endpoints"].as_array().expect("endpoints[]") {
            assert!(e["address"].is_string(), "{e}");
            assert!(e["healthy"].is_boolean(), "{e}");
            assert!(e["drained"].is_boolean(), "{e}");
            assert!(e.get("last_probe").is_some(), "last_probe key: {e}");
            assert!(e.get("since").is_some(), "since key: {e}");
        }
    }
    let e = endpoint(&st, "eu-west", &format!("127.92.{n}.1"));
    assert_eq!(e["healthy"], true, "{e}");
    assert_eq!(e["drained"], false, "{e}");
    assert!(
        e["last_probe"].is_object(),
        "a probed endpoint has a last probe: {e}"
    );
    assert_eq!(e["last_probe"]["ok"], true, "{e}");
    assert!(e["last_probe"]["reason"].is_string(), "{e}");
    assert!(e["since"].is_string(), "{e}");
    assert_eq!(region(&st, "eu-west")["healthy"], true);
    let us = region(&st, "us-east");
    assert_eq!(
        us["healthy"], true,
        "an endpoint without a check is up: {us}"
    );
    let addrs: Vec<&str> = us["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["address"].as_str().unwrap())
        .collect();
    assert_eq!(addrs, ["192.0.2.1", "2001:db8::1"]);
    let services = st["services"].as_array().expect("services[]");
    assert_eq!(services.len(), 1, "{st}");
    assert_eq!(services[0]["name"], WWW, "{st}");
    assert!(s.stop().success());
}
