//! Drains of regions and endpoints, and the safety rule.

use super::*;

#[test]
fn region_drain_and_undrain_move_answers() {
    let s = start("region-drain", &static_config(""));
    let admin = s.admin_url();
    assert_eq!(
        answer(&s, WWW, RecordType::A, EU),
        (vec![ip("192.0.2.2")], Some(20))
    );
    // every address of the merged block around 24.24.24.0 (the demo db's
    // 24.24.0.0/16 and empty space beside it) gets us-east: a scope of at
    // most /16, but above 0 because other networks do not
    let (got, scope) = answer(&s, WWW, RecordType::A, US);
    assert_eq!(got, vec![ip("192.0.2.1")]);
    assert!((1..=16).contains(&scope.unwrap_or(0)), "scope {scope:?}");

    let v = call(
        "POST",
        &format!("{admin}/v1/regions/eu-west/drain"),
        None,
        200,
    );
    println!("drain: {v}");
    let (got, scope) = answer(&s, WWW, RecordType::A, EU);
    assert_eq!(
        got,
        vec![ip("192.0.2.1")],
        "drained eu-west: the next-nearest region"
    );
    assert!(
        scope.unwrap_or(0) > 0,
        "a geo answer keeps a scope > 0, got {scope:?}"
    );
    // A static record is unaffected; its scope stays 0.
    let r = s.udp(&query("mail.example.test.", RecordType::A, Some(EU)));
    assert_eq!(addresses(&r), vec![ip("192.0.2.25")]);
    assert_eq!(ecs_of(&r).map(|e| e.1), Some(0));
    // US clients do not notice.
    assert_eq!(answer(&s, WWW, RecordType::A, US).0, vec![ip("192.0.2.1")]);
    let st = status(&s);
    assert_eq!(region(&st, "eu-west")["drained"], true, "{st}");
    assert_eq!(region(&st, "us-east")["drained"], false, "{st}");
    for _ in 0..20 {
        assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.1")]);
    }

    call(
        "DELETE",
        &format!("{admin}/v1/regions/eu-west/drain"),
        None,
        200,
    );
    assert_eq!(
        answer(&s, WWW, RecordType::A, EU),
        (vec![ip("192.0.2.2")], Some(20))
    );
    let st = status(&s);
    assert_eq!(region(&st, "eu-west")["drained"], false, "{st}");
    // undrain of an undrained region is fine
    call(
        "DELETE",
        &format!("{admin}/v1/regions/eu-west/drain"),
        None,
        200,
    );
    assert!(s.stop().success());
}

#[test]
fn region_drain_for_expires_by_itself() {
    let s = start("drain-for", &static_config(""));
    let admin = s.admin_url();
    call(
        "POST",
        &format!("{admin}/v1/regions/eu-west/drain?for=2s"),
        None,
        200,
    );
    let t = Instant::now();
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.1")]);
    let st = status(&s);
    assert_eq!(region(&st, "eu-west")["drained"], true, "{st}");
    let back = wait_until(Duration::from_secs(20), || {
        answer(&s, WWW, RecordType::A, EU).0 == [ip("192.0.2.2")]
    })
    .expect("a drain ?for=2s expires");
    let total = t.elapsed() - Duration::from_millis(0);
    println!("drain ?for=2s expired after {:.2}s", total.as_secs_f64());
    assert!(
        total >= Duration::from_millis(1500),
        "expired too early: {total:?} ({back:?})"
    );
    assert!(
        total <= Duration::from_secs(6),
        "expired too late: {total:?}"
    );
    let st = status(&s);
    assert_eq!(region(&st, "eu-west")["drained"], false, "{st}");
    assert!(s.stop().success());
}

#[test]
fn endpoint_drain_applies_in_every_region_v4_and_v6() {
    let cfg = format!(
        r#"{}
[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
endpoints = [{{ address = "192.0.2.1" }}, {{ address = "192.0.2.50" }}, {{ address = "2001:db8::11" }}, {{ address = "2001:db8::1" }}]

[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
endpoints = [{{ address = "192.0.2.2" }}, {{ address = "192.0.2.50" }}, {{ address = "2001:db8::22" }}, {{ address = "2001:db8::1" }}]

[services."www.example.test."]
regions = ["us-east", "eu-west"]
answers = 2
"#,
        head("")
    );
    let s = start("endpoint-drain", &cfg);
    let admin = s.admin_url();
    let set = |v: Vec<IpAddr>| v.into_iter().collect::<BTreeSet<_>>();
    let q = |t: RecordType, ecs: &str| set(answer(&s, WWW, t, ecs).0);
    assert_eq!(
        q(RecordType::A, EU),
        set(vec![ip("192.0.2.2"), ip("192.0.2.50")])
    );
    assert_eq!(
        q(RecordType::A, US),
        set(vec![ip("192.0.2.1"), ip("192.0.2.50")])
    );
    assert_eq!(
        q(RecordType::AAAA, EU),
        set(vec![ip("2001:db8::22"), ip("2001:db8::1")])
    );

    call(
        "POST",
        &format!("{admin}/v1/endpoints/192.0.2.50/drain"),
        None,
        200,
    );
    call(
        "POST",
        &format!("{admin}/v1/endpoints/2001:db8::1/drain"),
        None,
        200,
    );
    for _ in 0..10 {
        // answers = 2: the first region's remaining endpoint, then the next region's
        assert_eq!(
            q(RecordType::A, EU),
            set(vec![ip("192.0.2.2"), ip("192.0.2.1")])
        );
        assert_eq!(
            q(RecordType::A, US),
            set(vec![ip("192.0.2.1"), ip("192.0.2.2")])
        );
        assert_eq!(
            q(RecordType::AAAA, EU),
            set(vec![ip("2001:db8::22"), ip("2001:db8::11")])
        );
        assert_eq!(
            q(RecordType::AAAA, US),
            set(vec![ip("2001:db8::11"), ip("2001:db8::22")])
        );
    }
    let st = status(&s);
    for r in ["us-east", "eu-west"] {
        assert_eq!(endpoint(&st, r, "192.0.2.50")["drained"], true, "{st}");
        assert_eq!(endpoint(&st, r, "2001:db8::1")["drained"], true, "{st}");
        assert_eq!(region(&st, r)["drained"], false, "{st}");
        assert_eq!(region(&st, r)["healthy"], true, "{st}");
    }
    assert_eq!(
        endpoint(&st, "us-east", "192.0.2.1")["drained"],
        false,
        "{st}"
    );

    call(
        "DELETE",
        &format!("{admin}/v1/endpoints/192.0.2.50/drain"),
        None,
        200,
    );
    call(
        "DELETE",
        &format!("{admin}/v1/endpoints/2001:db8::1/drain"),
        None,
        200,
    );
    assert_eq!(
        q(RecordType::A, EU),
        set(vec![ip("192.0.2.2"), ip("192.0.2.50")])
    );
    assert_eq!(
        q(RecordType::AAAA, US),
        set(vec![ip("2001:db8::11"), ip("2001:db8::1")])
    );
    assert!(s.stop().success());
}

#[test]
fn errors_are_json_with_the_right_codes() {
    let s = start("errors", &static_config(""));
    let a = s.admin_url();
    let cases: &[(&str, String, u16)] = &[
        ("POST", format!("{a}/v1/regions/nosuch/drain"), 404),
        ("DELETE", format!("{a}/v1/regions/nosuch/drain"), 404),
        ("POST", format!("{a}/v1/endpoints/192.0.2.99/drain"), 404),
        ("DELETE", format!("{a}/v1/endpoints/192.0.2.99/drain"), 404),
        ("POST", format!("{a}/v1/endpoints/2001:db8::99/drain"), 404),
        (
            "POST",
            format!("{a}/v1/endpoints/not-an-address/drain"),
            400,
        ),
        ("POST", format!("{a}/v1/endpoints/192.0.2.300/drain"), 400),
        ("DELETE", format!("{a}/v1/endpoints/banana/drain"), 400),
        (
            "POST",
            format!("{a}/v1/regions/eu-west/drain?for=banana"),
            400,
        ),
        (
            "POST",
            format!("{a}/v1/endpoints/192.0.2.2/drain?for=banana"),
            400,
        ),
        ("GET", format!("{a}/v1/nosuch"), 404),
        ("GET", format!("{a}/nosuch"), 404),
        ("POST", format!("{a}/v1/lab/eu-west/fail"), 404), // not the demo
        (
            "GET",
            format!("{a}/v1/explain?name=nosuch.example.test&type=A&client=193.0.6.1"),
            404,
        ),
        (
            "GET",
            format!("{a}/v1/explain?name=www.example.test&type=A&client=banana"),
            400,
        ),
    ];
    for (method, url, code) in cases {
        let msg = assert_error(method, url, None, *code);
        println!("{method} {url} -> {code} {msg}");
    }
    let msg = assert_error("POST", &format!("{a}/v1/regions/nosuch/drain"), None, 404);
    assert!(msg.contains("nosuch"), "the error names the region: {msg}");
    // Nothing was drained by the failed calls.
    let st = status(&s);
    for r in st["regions"].as_array().unwrap() {
        assert_eq!(r["drained"], false, "{st}");
    }
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.2")]);
    assert!(s.stop().success());
}

#[test]
fn token_guards_mutating_calls_only() {
    let s = start("token", &static_config(r#"admin_token = "s3cret""#));
    let a = s.admin_url();
    let drain = format!("{a}/v1/regions/eu-west/drain");
    let ep_drain = format!("{a}/v1/endpoints/192.0.2.2/drain");
    let reload = format!("{a}/v1/reload");
    for (method, url) in [
        ("POST", drain.as_str()),
        ("DELETE", drain.as_str()),
        ("POST", ep_drain.as_str()),
        ("DELETE", ep_drain.as_str()),
        ("POST", reload.as_str()),
    ] {
        assert_error(method, url, None, 401);
        assert_error(method, url, Some("wrong"), 401);
        assert_error(method, url, Some("s3cre"), 401);
        assert_error(method, url, Some("s3cretX"), 401);
    }
    // nothing happened
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.2")]);
    call("POST", &drain, Some("s3cret"), 200);
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.1")]);
    call("DELETE", &drain, Some("s3cret"), 200);
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.2")]);
    call("POST", &format!("{a}/v1/reload"), Some("s3cret"), 200);
    // GETs need no token
    for path in [
        "/healthz",
        "/v1/status",
        "/metrics",
        "/v1/explain?name=www.example.test&type=A&client=193.0.6.1",
    ] {
        let (code, body) = http("GET", &format!("{a}{path}"), None);
        assert_eq!(code, 200, "GET {path}: {body}");
    }
    // the command line passes --token or SIGNPOST_ADMIN_TOKEN
    let dir = s.dir.clone();
    let (code, _, err) = run(&dir, &["ctl", "drain", "eu-west", "--admin", &a], &[]);
    assert_eq!(code, 1, "ctl without the token: {err}");
    assert!(err.contains("401"), "the server's refusal is shown: {err}");
    let (code, _, err) = run(
        &dir,
        &[
            "ctl", "drain", "eu-west", "--admin", &a, "--token", "s3cret",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.1")]);
    let (code, _, err) = run(
        &dir,
        &["ctl", "undrain", "eu-west", "--admin", &a],
        &[("SIGNPOST_ADMIN_TOKEN", "s3cret")],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.2")]);
    assert!(s.stop().success());
}

/// A reload can rotate the admin token (SIGHUP or the API); `[server]`
/// keys that need a restart are reported in the log.
#[test]
fn reload_rotates_the_admin_token() {
    let s = start("token-rotate", &static_config(r#"admin_token = "old""#));
    let a = s.admin_url();
    let drain = format!("{a}/v1/regions/eu-west/drain");
    let cfg = s.dir.join("signpost.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    write(
        &cfg,
        &text.replace(
            r#"admin_token = "old""#,
            "admin_token = \"new\"\nworkers = 3",
        ),
    );
    call("POST", &format!("{a}/v1/reload"), Some("old"), 200);
    assert_error("POST", &drain, Some("old"), 401);
    call("POST", &drain, Some("new"), 200);
    call("DELETE", &drain, Some("new"), 200);
    assert!(
        wait_until(Duration::from_secs(5), || s
            .log()
            .iter()
            .any(|l| l.contains("server.workers changed")))
        .is_some(),
        "a restart-only change is reported: {:?}",
        s.log()
    );
    assert!(s.stop().success());
}
