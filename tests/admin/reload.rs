//! Reloads: good, bad, under load.

use super::*;

#[test]
fn reload_good_config_changes_answers() {
    let s = start("reload-good", &static_config(""));
    let a = s.admin_url();
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.2")]);
    let r = s.udp(&query("new.example.test.", RecordType::A, None));
    assert_eq!(r.response_code, ResponseCode::NXDomain);

    let cfg = static_config("").replace(
        "regions = [\"us-east\", \"eu-west\", \"ap-south\"]\npolicy = \"geo\"",
        "regions = [\"us-east\", \"ap-south\"]\npolicy = \"geo\"",
    );
    assert_ne!(cfg, static_config(""));
    write(&s.dir.join("signpost.toml"), &cfg);
    write(
        &s.dir.join("example.test.zone"),
        &format!("{ZONE}new IN A 192.0.2.77\n"),
    );
    let v = call("POST", &format!("{a}/v1/reload"), None, 200);
    println!("reload: {v}");
    assert_eq!(
        answer(&s, WWW, RecordType::A, EU).0,
        vec![ip("192.0.2.1")],
        "eu-west left the service"
    );
    let r = s.udp(&query("new.example.test.", RecordType::A, None));
    assert_eq!(
        addresses(&r),
        vec![ip("192.0.2.77")],
        "the new static record"
    );
    let st = status(&s);
    let svc = st["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == WWW)
        .unwrap()
        .clone();
    assert_eq!(
        svc["regions"],
        serde_json::json!(["us-east", "ap-south"]),
        "{svc}"
    );
    assert!(s.stop().success());
}

#[test]
fn reload_carries_health_state_over() {
    let n = 3;
    let eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let _us = FakeLb::start(lb_addr(n, 2, port));
    eu.set(LbMode::Fail);
    // rise 5: coming back takes ~5 s, a fresh first probe would take 0 s
    let cfg = format!(
        "{}{}{}",
        head(""),
        web_check(port, "rise = 5\nfall = 1"),
        checked_regions(n, WWW_SERVICE)
    );
    let s = start("reload-health", &cfg);
    let a = s.admin_url();
    let eu_addr = format!("127.92.{n}.1");
    let us_ip = ip(&format!("127.92.{n}.2"));
    assert_eq!(s.a(WWW, Some(EU)), vec![us_ip]);
    let before = status(&s);
    let since = endpoint(&before, "eu-west", &eu_addr)["since"].clone();
    assert_eq!(endpoint(&before, "eu-west", &eu_addr)["healthy"], false);

    // The LB recovers, and right away the config is reloaded (a new
    // static record; the check and endpoints are unchanged).
    let t = Instant::now();
    eu.set(LbMode::Ok);
    write(
        &s.dir.join("example.test.zone"),
        &format!("{ZONE}new IN A 192.0.2.77\n"),
    );
    let v = call("POST", &format!("{a}/v1/reload"), None, 200);
    println!("reload: {v}");
    assert_eq!(
        addresses(&s.udp(&query("new.example.test.", RecordType::A, None))),
        vec![ip("192.0.2.77")]
    );
    let after = status(&s);
    let e = endpoint(&after, "eu-west", &eu_addr);
    assert_eq!(
        e["healthy"], false,
        "down before the reload, down right after: {e}"
    );
    assert_eq!(e["since"], since, "the state is the same state: {e}");
    // and the up one stayed up all along
    assert_eq!(
        endpoint(&after, "us-east", &format!("127.92.{n}.2"))["healthy"],
        true
    );
    // No flap to up: it comes back by the normal rule, after rise (5)
    // passes, not after the first probe of a fresh target.
    wait_until(Duration::from_secs(20), || {
        s.a(WWW, Some(EU)) == [ip(&eu_addr)]
    })
    .expect("comes back after rise");
    let back = Instant::now();
    let passes = eu
        .answered()
        .iter()
        .filter(|&&(at, ok)| ok && at >= t && at <= back)
        .count();
    assert!(
        passes >= 5,
        "came back {:?} after the reload, after {passes} passes (rise 5)",
        back - t
    );
    assert!(s.stop().success());
}

/// A reload that removes a probe address drops its metric series (probe
/// counts, transitions, latency histogram, endpoint gauges): deployments
/// whose load balancers' addresses rotate must not grow without bound.
#[test]
fn reload_drops_the_metric_series_of_removed_probe_addresses() {
    let n = 4;
    let eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let _us = FakeLb::start(lb_addr(n, 2, port));
    let cfg = format!(
        "{}{}{}",
        head(""),
        web_check(port, ""),
        checked_regions(n, WWW_SERVICE)
    );
    let s = start("reload-metrics", &cfg);
    let a = s.admin_url();
    let eu_addr = format!("127.92.{n}.1");
    let us_addr = format!("127.92.{n}.2");
    let series = |text: &str, addr: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains(&format!("address=\"{addr}\"")))
            .count()
    };
    let before = metrics(&s);
    assert!(
        series(&before, &eu_addr) >= 6,
        "eu-west's probe series are exported:\n{before}"
    );
    // eu-west leaves the configuration
    let cfg = cfg
        .replace(
            &format!(
                "[regions.eu-west]\nlocation = {{ lat = 53.35, lon = -6.26 }}\ncheck = \"web\"\nendpoints = [{{ address = \"{eu_addr}\" }}]\n"
            ),
            "",
        )
        .replace(
            "regions = [\"us-east\", \"eu-west\"]",
            "regions = [\"us-east\"]",
        );
    assert!(!cfg.contains(&eu_addr), "{cfg}");
    write(&s.dir.join("signpost.toml"), &cfg);
    let v = call("POST", &format!("{a}/v1/reload"), None, 200);
    assert_eq!(v["summary"]["targets_removed"], 1, "{v}");
    let after = metrics(&s);
    assert_eq!(
        series(&after, &eu_addr),
        0,
        "no series of the removed address is left:\n{after}"
    );
    assert!(
        series(&after, &us_addr) >= 6,
        "the kept address keeps its series:\n{after}"
    );
    assert!(s.stop().success());
}

#[test]
fn reload_bad_configs_keep_the_old_one() {
    let s = start("reload-bad", &static_config(""));
    let a = s.admin_url();
    let good = static_config("");
    let cfg_path = s.dir.join("signpost.toml");
    let zone_path = s.dir.join("example.test.zone");
    let line_of = |text: &str, pat: &str| text.lines().position(|l| l.contains(pat)).unwrap() + 1;

    // 1. TOML syntax error
    let broken = good.replace("ttl = 30", "ttl = = 30");
    let line = line_of(&broken, "ttl = = 30");
    write(&cfg_path, &broken);
    let errs = reload_errors(&a);
    assert!(
        errs.iter()
            .any(|e| e.contains("signpost.toml") && e.contains(&format!(":{line}:"))),
        "syntax error names the file and line {line}: {errs:?}"
    );
    assert_old(&s);

    // 2. unknown region
    write(
        &cfg_path,
        &good.replace(
            "regions = [\"us-east\", \"eu-west\", \"ap-south\"]\npolicy = \"geo\"",
            "regions = [\"us-east\", \"eu-wets\", \"ap-south\"]\npolicy = \"geo\"",
        ),
    );
    let errs = reload_errors(&a);
    assert!(
        errs.iter().any(|e| e.contains("signpost.toml")
            && e.contains(r#"services."www.example.test.".regions[1]"#)
            && e.contains(r#"unknown region "eu-wets""#)),
        "{errs:?}"
    );
    assert_old(&s);

    // 3. a broken zone file line (with a good config)
    write(&cfg_path, &good);
    let zone = format!("{ZONE}new IN A 192.0.2.77\nbroken IN A 999.1.2.3\n");
    let zline = line_of(&zone, "broken");
    write(&zone_path, &zone);
    let errs = reload_errors(&a);
    assert!(
        errs.iter()
            .any(|e| e.contains("example.test.zone") && e.contains(&format!(":{zline}:"))),
        "zone error names the file and line {zline}: {errs:?}"
    );
    assert_old(&s);
    // the good line of the broken zone was not loaded either
    let r = s.udp(&query("new.example.test.", RecordType::A, None));
    assert_eq!(r.response_code, ResponseCode::NXDomain);

    // 4. an unknown key
    write(&zone_path, ZONE);
    write(
        &cfg_path,
        &good.replace("ttl = 30", "ttl = 30\ncolour = \"blue\""),
    );
    let errs = reload_errors(&a);
    assert!(errs.iter().any(|e| e.contains("colour")), "{errs:?}");
    assert_old(&s);

    // 5. a GeoIP database that is not there
    write(&cfg_path, &good.replace(GEOIP, "geoip/missing.mmdb"));
    let errs = reload_errors(&a);
    assert!(errs.iter().any(|e| e.contains("missing.mmdb")), "{errs:?}");
    assert_old(&s);

    // 6. a zone file that is not there
    write(
        &cfg_path,
        &good.replace("example.test.zone", "missing.zone"),
    );
    let errs = reload_errors(&a);
    assert!(errs.iter().any(|e| e.contains("missing.zone")), "{errs:?}");
    assert_old(&s);

    // and a good one afterwards works
    write(&cfg_path, &good.replace("ttl = 30", "ttl = 42"));
    call("POST", &format!("{a}/v1/reload"), None, 200);
    let r = s.udp(&query(WWW, RecordType::A, Some(EU)));
    assert_eq!(r.answers[0].ttl, 42);
    assert!(
        s.log().iter().any(|l| l.contains("reload failed")),
        "failed reloads are logged"
    );
    assert!(s.stop().success());
}

fn reload_errors(admin: &str) -> Vec<String> {
    let v = call("POST", &format!("{admin}/v1/reload"), None, 400);
    println!("bad reload: {v:#}");
    let errs: Vec<String> = v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{{\"errors\": [...]}} in {v}"))
        .iter()
        .map(|e| e.as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!errs.is_empty(), "{v}");
    errs
}

/// The answers of `static_config("")` as first loaded.
fn assert_old(s: &Server) {
    let r = s.udp(&query(WWW, RecordType::A, Some(EU)));
    assert_eq!(addresses(&r), vec![ip("192.0.2.2")]);
    assert_eq!(r.answers[0].ttl, 30);
    assert_eq!(answer(s, WWW, RecordType::A, US).0, vec![ip("192.0.2.1")]);
    assert_eq!(
        addresses(&s.udp(&query("mail.example.test.", RecordType::A, None))),
        vec![ip("192.0.2.25")]
    );
}

#[test]
fn sighup_reloads_good_and_survives_bad() {
    let mut s = start("sighup", &static_config(""));
    let cfg_path = s.dir.join("signpost.toml");
    let good = static_config("");
    write(&cfg_path, &good.replace("ttl = 30", "ttl = 42"));
    s.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(20), || {
        s.udp(&query(WWW, RecordType::A, Some(EU))).answers[0].ttl == 42
    })
    .expect("SIGHUP applied the new config");
    write(&cfg_path, "[server\nthis is not toml");
    s.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(20), || {
        s.log().iter().any(|l| l.contains("reload failed"))
    })
    .expect("the failed reload is logged");
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.alive(), "a bad config on SIGHUP must not stop the server");
    let r = s.udp(&query(WWW, RecordType::A, Some(EU)));
    assert_eq!(addresses(&r), vec![ip("192.0.2.2")]);
    assert_eq!(r.answers[0].ttl, 42, "still the last good config");
    // and the admin API still works
    assert_eq!(status(&s)["regions"].as_array().unwrap().len(), 3);
    assert!(s.stop().success());
}

/// One query, never panicking: Ok(message) or why not.
fn try_query(addr: SocketAddr, msg: &Message, tcp: bool) -> Result<Message, String> {
    let bytes = msg.to_vec().map_err(|e| e.to_string())?;
    let raw = if tcp {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| format!("tcp connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&bytes);
        s.write_all(&out).map_err(|e| format!("tcp write: {e}"))?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len)
            .map_err(|e| format!("tcp read: {e}"))?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf)
            .map_err(|e| format!("tcp read: {e}"))?;
        buf
    } else {
        udp_raw(addr, &bytes, Duration::from_secs(2)).ok_or("udp: no reply within 2 s")?
    };
    Message::from_vec(&raw).map_err(|e| format!("unparsable reply: {e}"))
}

#[test]
fn twenty_reloads_under_query_load_lose_nothing() {
    let s = start("reload-load", &static_config(""));
    let a = s.admin_url();
    let dns = s.dns;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let worker = std::thread::spawn(move || {
        let (mut total, mut bad) = (0usize, Vec::new());
        let want = vec![ip("192.0.2.2")];
        while !stop2.load(Ordering::SeqCst) && total < 100_000 {
            let tcp = total % 5 == 4;
            let q = query(WWW, RecordType::A, Some(EU));
            match try_query(dns, &q, tcp) {
                Ok(r)
                    if r.response_code == ResponseCode::NoError
                        && addresses(&r) == want
                        && r.id == q.id => {}
                Ok(r) => bad.push(format!(
                    "query {total} (tcp {tcp}): {:?} {:?}",
                    r.response_code,
                    addresses(&r)
                )),
                Err(e) => bad.push(format!("query {total} (tcp {tcp}): {e}")),
            }
            total += 1;
        }
        (total, bad)
    });
    let cfg_path = s.dir.join("signpost.toml");
    let zone_path = s.dir.join("example.test.zone");
    for i in 0..20 {
        // alternate configs that do not change the www answer
        let ttl = if i % 2 == 0 { "ttl = 31" } else { "ttl = 30" };
        write(&cfg_path, &static_config("").replace("ttl = 30", ttl));
        write(&zone_path, &format!("{ZONE}r{i} IN TXT \"reload {i}\"\n"));
        call("POST", &format!("{a}/v1/reload"), None, 200);
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let (total, bad) = worker.join().unwrap();
    println!("{total} queries during 20 reloads, {} failed", bad.len());
    assert!(total >= 20, "only {total} queries were sent");
    assert!(
        bad.is_empty(),
        "{} of {total} queries failed during reloads: {:?}",
        bad.len(),
        &bad[..bad.len().min(10)]
    );
    let st = status(&s);
    assert!(st["generation"].as_u64().unwrap_or(0) >= 21, "{st}");
    assert!(s.stop().success());
}
