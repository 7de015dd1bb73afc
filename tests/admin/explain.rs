//! Explain: the decision trace.

use super::*;

#[test]
fn explain_traces_the_decision() {
    let s = start("explain", &static_config(""));
    let a = s.admin_url();
    let e = get_json(&format!(
        "{a}/v1/explain?name=www.example.test.&type=A&client=193.0.6.1"
    ));
    println!("{e:#}");
    assert_eq!(e["client"]["country"], "NL", "{e}");
    assert_eq!(e["client"]["source"], "ecs", "{e}");
    assert_eq!(e["client"]["network"], "193.0.0.0/20", "{e}");
    assert_eq!(e["client"]["address"], "193.0.6.1", "{e}");
    assert!(
        e["client"]["lat"].is_number() && e["client"]["lon"].is_number(),
        "{e}"
    );
    assert_eq!(e["rule"], "distance", "{e}");
    let cands = e["candidates"].as_array().unwrap();
    let names: Vec<&str> = cands
        .iter()
        .map(|c| c["region"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["eu-west", "us-east", "ap-south"], "{e}");
    let dists: Vec<f64> = cands
        .iter()
        .map(|c| c["distance_km"].as_f64().expect("distance_km"))
        .collect();
    assert!(
        dists.windows(2).all(|w| w[0] <= w[1]),
        "nearest first: {dists:?}"
    );
    assert!(
        dists[0] > 500.0 && dists[0] < 1000.0,
        "Amsterdam-Dublin: {dists:?}"
    );
    for c in cands {
        assert_eq!(c["healthy"], true, "{c}");
        assert_eq!(c["drained"], false, "{c}");
        assert!(c["weight"].is_number(), "{c}");
    }
    assert_eq!(e["answer"], serde_json::json!(["192.0.2.2"]), "{e}");
    assert_eq!(e["ttl"], 30, "{e}");
    assert_eq!(e["scope"], 20, "{e}");

    // without the trailing dot, and the same answer as DNS gives
    let e2 = get_json(&format!(
        "{a}/v1/explain?name=www.example.test&type=A&client=193.0.6.1"
    ));
    assert_eq!(e2["answer"], e["answer"]);
    assert_eq!(e2["scope"], 20);

    // a map entry
    let m = get_json(&format!(
        "{a}/v1/explain?name=mapped.example.test&type=A&client=193.0.6.1"
    ));
    assert_eq!(m["rule"], "map:NL", "{m}");
    assert_eq!(m["answer"], serde_json::json!(["192.0.2.3"]), "{m}");
    assert_eq!(
        answer(&s, "mapped.example.test.", RecordType::A, EU).0,
        vec![ip("192.0.2.3")]
    );

    // weighted
    let w = get_json(&format!(
        "{a}/v1/explain?name=api.example.test&type=A&client=193.0.6.1"
    ));
    assert_eq!(w["rule"], "weighted", "{w}");
    assert_eq!(w["scope"], 0, "{w}");

    // a drained region shows drained and is not answered
    call("POST", &format!("{a}/v1/regions/eu-west/drain"), None, 200);
    let d = get_json(&format!(
        "{a}/v1/explain?name=www.example.test&type=A&client=193.0.6.1"
    ));
    let eu = d["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["region"] == "eu-west")
        .unwrap()
        .clone();
    assert_eq!(eu["drained"], true, "{d}");
    assert_eq!(d["answer"], serde_json::json!(["192.0.2.1"]), "{d}");
    assert_eq!(d["candidates"][0]["region"], "us-east", "{d}");

    // errors
    assert_error(
        "GET",
        &format!("{a}/v1/explain?name=nosuch.example.test&type=A&client=193.0.6.1"),
        None,
        404,
    );
    assert_error(
        "GET",
        &format!("{a}/v1/explain?name=www.example.test&type=A&client=193.0.6"),
        None,
        400,
    );
    assert_error(
        "GET",
        &format!("{a}/v1/explain?name=www.example.test&type=MX&client=193.0.6.1"),
        None,
        400,
    );
    assert!(s.stop().success());
}
