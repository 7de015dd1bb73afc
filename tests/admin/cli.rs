//! The command line: check, serve, ctl, explain.

use super::*;

#[test]
fn cli_check_good_and_bad() {
    let dir = scratch("cli-check");
    std::fs::write(dir.join("example.test.zone"), ZONE).unwrap();
    std::fs::write(dir.join("signpost.toml"), static_config("")).unwrap();
    let (code, out, err) = run(&dir, &["check", "--config", "signpost.toml"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok"), "{out}");

    let bad = static_config("")
        .replace(
            "regions = [\"us-east\", \"eu-west\", \"ap-south\"]\npolicy = \"geo\"",
            "regions = [\"us-east\", \"eu-wets\", \"ap-south\"]\npolicy = \"geo\"",
        )
        .replace(
            "endpoints = [{ address = \"192.0.2.3\" }]",
            "check = \"nosuchcheck\"\nendpoints = [{ address = \"192.0.2.3\" }]",
        )
        + "\n[checks.slow]\ntype = \"tcp\"\nport = 80\ninterval = \"1s\"\ntimeout = \"1s\"\n";
    std::fs::write(dir.join("bad.toml"), bad).unwrap();
    let (code, out, err) = run(&dir, &["check", "--config", "bad.toml"], &[]);
    println!("{err}");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(
            r#"bad.toml: services."www.example.test.".regions[1]: unknown region "eu-wets""#
        ),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l.contains("bad.toml")
            && l.contains("regions.ap-south.check")
            && l.contains("nosuchcheck")),
        "all errors are printed: {err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("bad.toml") && l.contains("checks.slow.timeout")),
        "all errors are printed: {err}"
    );

    // a missing file
    let (code, _, err) = run(&dir, &["check", "--config", "missing.toml"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn cli_serve_bad_config_exits_1() {
    let dir = scratch("cli-serve-bad");
    std::fs::write(dir.join("example.test.zone"), ZONE).unwrap();
    std::fs::write(
        dir.join("signpost.toml"),
        static_config("").replace("192.0.2.3", "192.0.2.300"),
    )
    .unwrap();
    match Server::try_start_in(dir, &["serve", "--config", "signpost.toml"]) {
        Ok(_) => panic!("serve started with an invalid config"),
        Err((log, status)) => {
            assert_eq!(status.and_then(|s| s.code()), Some(1), "{}", log.join("\n"));
            assert!(
                log.iter().any(|l| l.contains("192.0.2.300")),
                "{}",
                log.join("\n")
            );
        }
    }
}

#[test]
fn cli_dns_port_in_use_exits_2() {
    // UDP taken
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken = udp.local_addr().unwrap();
    let cfg = static_config("").replace(
        "listen = [\"127.0.0.1:0\"]",
        &format!("listen = [\"{taken}\"]"),
    );
    let dir = scratch("port-in-use-udp");
    std::fs::write(dir.join("example.test.zone"), ZONE).unwrap();
    std::fs::write(dir.join("signpost.toml"), &cfg).unwrap();
    match Server::try_start_in(dir, &["serve", "--config", "signpost.toml"]) {
        Ok(_) => panic!("serve started on a UDP port in use ({taken})"),
        Err((log, status)) => {
            assert_eq!(status.and_then(|s| s.code()), Some(2), "{}", log.join("\n"))
        }
    }
    drop(udp);
    // TCP taken
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = tcp.local_addr().unwrap();
    let cfg = static_config("").replace(
        "listen = [\"127.0.0.1:0\"]",
        &format!("listen = [\"{taken}\"]"),
    );
    let dir = scratch("port-in-use-tcp");
    std::fs::write(dir.join("example.test.zone"), ZONE).unwrap();
    std::fs::write(dir.join("signpost.toml"), &cfg).unwrap();
    match Server::try_start_in(dir, &["serve", "--config", "signpost.toml"]) {
        Ok(_) => panic!("serve started on a TCP port in use ({taken})"),
        Err((log, status)) => {
            assert_eq!(status.and_then(|s| s.code()), Some(2), "{}", log.join("\n"))
        }
    }
    drop(tcp);
    // admin port taken
    let adm = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = adm.local_addr().unwrap();
    let cfg = static_config("").replace("admin = \"127.0.0.1:0\"", &format!("admin = \"{taken}\""));
    let dir = scratch("port-in-use-admin");
    std::fs::write(dir.join("example.test.zone"), ZONE).unwrap();
    std::fs::write(dir.join("signpost.toml"), &cfg).unwrap();
    match Server::try_start_in(dir, &["serve", "--config", "signpost.toml"]) {
        Ok(_) => panic!("serve started on an admin port in use ({taken})"),
        Err((log, status)) => {
            assert_eq!(status.and_then(|s| s.code()), Some(2), "{}", log.join("\n"))
        }
    }
}

#[test]
fn sigterm_and_sigint_exit_0() {
    let s = start("sigterm", &static_config(""));
    assert_eq!(s.a(WWW, Some(EU)), vec![ip("192.0.2.2")]);
    let status = s.stop();
    assert_eq!(status.code(), Some(0), "{status:?}");

    let s = start("sigint", &static_config(""));
    s.signal(libc::SIGINT);
    wait_until(Duration::from_secs(20), || {
        s.log().iter().any(|l| l.contains("shutting down"))
    })
    .expect("SIGINT starts a graceful stop");
    std::thread::sleep(Duration::from_millis(500));
    // (not reaped yet, so the SIGTERM of `stop` cannot hit another process)
    let status = s.stop();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn cli_ctl_status_drain_undrain() {
    let s = start("cli-ctl", &static_config(""));
    let a = s.admin_url();
    let dir = s.dir.clone();
    let (code, out, err) = run(&dir, &["ctl", "status", "--admin", &a], &[]);
    assert_eq!(code, 0, "{err}");
    println!("{out}");
    for r in ["us-east", "eu-west", "ap-south"] {
        assert!(out.contains(r), "ctl status names {r}:\n{out}");
    }
    let (code, out, err) = run(&dir, &["ctl", "status", "--json", "--admin", &a], &[]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("ctl status --json");
    assert_eq!(v["regions"].as_array().unwrap().len(), 3);

    let (code, _, err) = run(&dir, &["ctl", "drain", "eu-west", "--admin", &a], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.a(WWW, Some(EU)), vec![ip("192.0.2.1")]);
    let (code, out, _) = run(&dir, &["ctl", "status", "--admin", &a], &[]);
    assert_eq!(code, 0);
    let line = out
        .lines()
        .find(|l| l.starts_with("eu-west"))
        .unwrap_or_default();
    assert!(
        line.contains("yes") || line.contains("drain"),
        "eu-west shows drained: {line:?}\n{out}"
    );
    let (code, _, err) = run(&dir, &["ctl", "undrain", "eu-west", "--admin", &a], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.a(WWW, Some(EU)), vec![ip("192.0.2.2")]);

    // endpoint drain from the command line
    let (code, _, err) = run(
        &dir,
        &["ctl", "drain", "--endpoint", "192.0.2.2", "--admin", &a],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.a(WWW, Some(EU)), vec![ip("192.0.2.1")]);
    let (code, _, err) = run(
        &dir,
        &["ctl", "undrain", "--endpoint", "192.0.2.2", "--admin", &a],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.a(WWW, Some(EU)), vec![ip("192.0.2.2")]);

    // errors
    let (code, _, err) = run(&dir, &["ctl", "drain", "nosuch", "--admin", &a], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("404") && err.contains("nosuch"),
        "the server's error: {err}"
    );
    let (code, _, err) = run(
        &dir,
        &["ctl", "drain", "eu-west", "--for", "banana", "--admin", &a],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("400"), "{err}");
    assert_eq!(s.a(WWW, Some(EU)), vec![ip("192.0.2.2")]);
    // no server there
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (code, _, err) = run(
        &dir,
        &["ctl", "status", "--admin", &format!("http://{dead}")],
        &[],
    );
    assert_eq!(code, 1, "{err}");

    // ctl reload
    write(
        &s.dir.join("signpost.toml"),
        &static_config("").replace("ttl = 30", "ttl = 42"),
    );
    let (code, out, err) = run(&dir, &["ctl", "reload", "--admin", &a], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("reloaded: generation "), "{out}");
    assert!(!out.contains("warning"), "{out}");
    assert_eq!(
        s.udp(&query(WWW, RecordType::A, Some(EU))).answers[0].ttl,
        42
    );
    // a key that only a restart applies: the reload says so
    write(
        &s.dir.join("signpost.toml"),
        &static_config("workers = 3").replace("ttl = 30", "ttl = 42"),
    );
    let (code, out, err) = run(&dir, &["ctl", "reload", "--admin", &a], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("warning: server.workers changed: it takes effect at the next restart"),
        "{out}"
    );
    let (code, out, err) = run(&dir, &["ctl", "reload", "--json", "--admin", &a], &[]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["summary"]["warnings"].as_array().map(Vec::len),
        Some(0),
        "{out}"
    );
    write(&s.dir.join("signpost.toml"), "[server\n");
    let (code, _, err) = run(&dir, &["ctl", "reload", "--admin", &a], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("signpost.toml"),
        "the reload errors are shown: {err}"
    );
    assert!(s.stop().success());
}

#[test]
fn cli_explain_from_config_and_from_admin() {
    let s = start("cli-explain", &static_config(""));
    let dir = s.dir.clone();
    let (code, out, err) = run(
        &dir,
        &[
            "explain",
            "www.example.test",
            "--client",
            "193.0.6.1",
            "--config",
            "signpost.toml",
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("explain JSON ({e}): {out}"));
    assert_eq!(v["answer"], serde_json::json!(["192.0.2.2"]), "{v}");
    assert_eq!(v["client"]["country"], "NL", "{v}");
    assert_eq!(v["scope"], 20, "{v}");

    // from the running server, which sees the drain
    let a = s.admin_url();
    call("POST", &format!("{a}/v1/regions/eu-west/drain"), None, 200);
    let (code, out, err) = run(
        &dir,
        &[
            "explain",
            "www.example.test",
            "--client",
            "193.0.6.1",
            "--admin",
            &a,
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("explain JSON ({e}): {out}"));
    assert_eq!(v["answer"], serde_json::json!(["192.0.2.1"]), "{v}");
    // without --json, for people: the answer and the drained region
    let (code, out, err) = run(
        &dir,
        &[
            "explain",
            "www.example.test",
            "--client",
            "193.0.6.1",
            "--admin",
            &a,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("answer: 192.0.2.1"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("eu-west") && l.contains("drained")),
        "{out}"
    );

    // errors
    let (code, _, err) = run(
        &dir,
        &[
            "explain",
            "nosuch.example.test",
            "--client",
            "193.0.6.1",
            "--config",
            "signpost.toml",
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = run(
        &dir,
        &[
            "explain",
            "nosuch.example.test",
            "--client",
            "193.0.6.1",
            "--admin",
            &a,
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("404"), "{err}");
    let (code, _, _) = run(
        &dir,
        &[
            "explain",
            "www.example.test",
            "--client",
            "banana",
            "--config",
            "signpost.toml",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(s.stop().success());
}

#[test]
fn drains_survive_a_reload_and_go_with_their_region() {
    let s = start("drain-reload", &static_config(""));
    let a = s.admin_url();
    call("POST", &format!("{a}/v1/regions/eu-west/drain"), None, 200);
    call(
        "POST",
        &format!("{a}/v1/endpoints/192.0.2.3/drain"),
        None,
        200,
    );
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.1")]);
    // an unrelated change
    write(
        &s.dir.join("signpost.toml"),
        &static_config("").replace("ttl = 30", "ttl = 42"),
    );
    call("POST", &format!("{a}/v1/reload"), None, 200);
    let r = s.udp(&query(WWW, RecordType::A, Some(EU)));
    assert_eq!(r.answers[0].ttl, 42, "reloaded");
    assert_eq!(
        addresses(&r),
        vec![ip("192.0.2.1")],
        "the operator's drain stays after a reload"
    );
    let st = status(&s);
    assert_eq!(region(&st, "eu-west")["drained"], true, "{st}");
    assert_eq!(
        endpoint(&st, "ap-south", "192.0.2.3")["drained"],
        true,
        "{st}"
    );
    let m = get_json(&format!(
        "{a}/v1/explain?name=mapped.example.test&type=A&client=193.0.6.1"
    ));
    assert_eq!(
        m["answer"],
        serde_json::json!(["192.0.2.1"]),
        "ap-south's only endpoint is drained: {m}"
    );
    call(
        "DELETE",
        &format!("{a}/v1/endpoints/192.0.2.3/drain"),
        None,
        200,
    );
    // A region that leaves the configuration takes its drain with it.
    let without = static_config("")
        .replace("\"eu-west\", ", "")
        .replace(", \"eu-west\"]", "]")
        .replace(
        "[regions.eu-west]\nlocation = { lat = 53.35, lon = -6.26 }\nendpoints = [{ address = \"192.0.2.2\" }]\n",
        "",
    );
    assert!(!without.contains("eu-west"), "{without}");
    write(&s.dir.join("signpost.toml"), &without);
    call("POST", &format!("{a}/v1/reload"), None, 200);
    assert_error(
        "DELETE",
        &format!("{a}/v1/regions/eu-west/drain"),
        None,
        404,
    );
    write(&s.dir.join("signpost.toml"), &static_config(""));
    call("POST", &format!("{a}/v1/reload"), None, 200);
    assert_eq!(
        answer(&s, WWW, RecordType::A, EU).0,
        vec![ip("192.0.2.2")],
        "a new eu-west is not drained"
    );
    assert!(s.stop().success());
}

#[test]
fn draining_every_region_answers_nothing_not_fail_open() {
    let s = start("drain-all", &static_config(""));
    let a = s.admin_url();
    for r in ["us-east", "eu-west", "ap-south"] {
        call("POST", &format!("{a}/v1/regions/{r}/drain"), None, 200);
    }
    for ecs in [EU, US] {
        let r = s.udp(&query(WWW, RecordType::A, Some(ecs)));
        assert_eq!(r.response_code, ResponseCode::NoError, "{r:?}");
        assert!(
            addresses(&r).is_empty(),
            "drained endpoints are never answered: {:?}",
            addresses(&r)
        );
        assert!(
            r.authorities
                .iter()
                .any(|x| x.record_type() == RecordType::SOA),
            "NODATA carries the SOA: {r:?}"
        );
    }
    call(
        "DELETE",
        &format!("{a}/v1/regions/us-east/drain"),
        None,
        200,
    );
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.1")]);
    assert!(s.stop().success());
}

#[test]
fn drain_parameters() {
    let s = start("drain-params", &static_config(""));
    let a = s.admin_url();
    call(
        "POST",
        &format!("{a}/v1/regions/eu-west/drain?for=10m"),
        None,
        200,
    );
    let st = status(&s);
    let until = region(&st, "eu-west")["drain_until"].clone();
    assert!(
        until.is_string(),
        "a drain with expiry shows when it ends: {st}"
    );
    // a plain drain replaces it, without expiry
    call("POST", &format!("{a}/v1/regions/eu-west/drain"), None, 200);
    let st = status(&s);
    assert!(region(&st, "eu-west")["drain_until"].is_null(), "{st}");
    call(
        "DELETE",
        &format!("{a}/v1/regions/eu-west/drain"),
        None,
        200,
    );
    for q in ["for=0s", "for=-5m", "for=", "foo=1", "for=10x"] {
        assert_error(
            "POST",
            &format!("{a}/v1/regions/eu-west/drain?{q}"),
            None,
            400,
        );
        assert_error(
            "POST",
            &format!("{a}/v1/endpoints/192.0.2.2/drain?{q}"),
            None,
            400,
        );
    }
    call(
        "POST",
        &format!("{a}/v1/endpoints/192.0.2.2/drain?for=1s"),
        None,
        200,
    );
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.1")]);
    wait_until(Duration::from_secs(15), || {
        answer(&s, WWW, RecordType::A, EU).0 == [ip("192.0.2.2")]
    })
    .expect("an endpoint drain ?for=1s expires");
    let st = status(&s);
    for r in st["regions"].as_array().unwrap() {
        assert_eq!(r["drained"], false, "{st}");
    }
    assert!(s.stop().success());
}

#[test]
fn metrics_counters_survive_a_reload() {
    let s = start("metrics-reload", &static_config(""));
    let a = s.admin_url();
    let answers = |s: &Server| {
        metric(
            &metrics(s),
            "signpost_answers_total",
            &[("service", WWW), ("region", "eu-west")],
        )
    };
    for _ in 0..10 {
        s.a(WWW, Some(EU));
    }
    let before = answers(&s).expect("answers counted");
    assert!(before >= 10.0, "{before}");
    call("POST", &format!("{a}/v1/reload"), None, 200);
    let after = answers(&s).expect("answers counted after a reload");
    assert!(
        after >= before,
        "signpost_answers_total went from {before} to {after} over a reload"
    );
    s.a(WWW, Some(EU));
    let after2 = answers(&s).unwrap();
    assert!(after2 >= after + 1.0, "{after} -> {after2}");
    assert!(s.stop().success());
}

/// Every snapshot publish (drain, undrain, health change, reload, drain
/// expiry) must not make `signpost_endpoint_up` series disappear from a
/// concurrent scrape.
#[test]
fn metrics_endpoint_gauges_never_vanish_during_a_publish() {
    let s = start("metrics-gaps", &static_config(""));
    let a = s.admin_url();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let a2 = a.clone();
    // Drains republish the snapshot (and the endpoint gauges) each time.
    let toggler = std::thread::spawn(move || {
        let mut i = 0;
        while !stop2.load(Ordering::SeqCst) && i < 5000 {
            let m = if i % 2 == 0 { "POST" } else { "DELETE" };
            let (code, body) = http(m, &format!("{a2}/v1/endpoints/192.0.2.3/drain"), None);
            assert_eq!(code, 200, "{body}");
            i += 1;
        }
        i
    });
    let mut missing = Vec::new();
    for i in 0..300 {
        let m = metrics(&s);
        for (r, addr) in [
            ("us-east", "192.0.2.1"),
            ("eu-west", "192.0.2.2"),
            ("ap-south", "192.0.2.3"),
        ] {
            if metric(
                &m,
                "signpost_endpoint_up",
                &[("region", r), ("address", addr)],
            )
            .is_none()
            {
                missing.push(format!(
                    "scrape {i}: no signpost_endpoint_up for {r} {addr}"
                ));
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    let publishes = toggler.join().unwrap();
    assert!(
        missing.is_empty(),
        "{} gaps in 300 scrapes during {publishes} drain/undrain calls: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(s.stop().success());
}

/// RFC 7235 §2.1: the auth-scheme is case-insensitive.
#[test]
fn bearer_scheme_is_case_insensitive() {
    let s = start("token-case", &static_config(r#"admin_token = "s3cret""#));
    let a = s.admin_url();
    let url = format!("{a}/v1/regions/eu-west/drain");
    for scheme in ["bearer", "BEARER"] {
        let mut c = TcpStream::connect(s.admin.unwrap()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            c,
            "POST /v1/regions/eu-west/drain HTTP/1.1\r\nHost: x\r\nAuthorization: {scheme} s3cret\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        let _ = c.read_to_string(&mut resp);
        assert!(resp.starts_with("HTTP/1.1 200"), "{scheme}: {resp}");
        call("DELETE", &url, Some("s3cret"), 200);
    }
    assert!(s.stop().success());
}
