//! HTTPS checks against real TLS servers on loopback.

use super::*;

/// A self-signed P-256 certificate for `selfsigned.invalid` (DER), made
/// with openssl for this test; valid until 2126.
pub(super) const TLS_CERT: &str = "308201b130820156a0030201020214482ddf52e889bcdedec07dff70c9706c98c15a62300a06082a8648ce3d040302301d311b301906035504030c1273656c667369676e65642e696e76616c69643020170d3236313132323132353533325a180f32313236313032393132353533325a301d311b301906035504030c1273656c667369676e65642e696e76616c69643059301306072a8648ce3d020106082a8648ce3d0301070342000401f06c0ef7b8c54838869b70b4b358e6d65373772d093eee3be018b6db75505836dc8640a64c7e34c4905c3fbbda4917bc36fbfeb8e7782ad85f94da53e9f938a3723070301d0603551d0e041604142b6546deac08401bf1cc5c6f1849e544b70ade9c301f0603551d230418301680142b6546deac08401bf1cc5c6f1849e544b70ade9c300f0603551d130101ff040530030101ff301d0603551d1104163014821273656c667369676e65642e696e76616c6964300a06082a8648ce3d0403020349003046022100dd21151b5ee2167f066b7faf6d366388a6e40de5af7b03ad9cac793938430f28022100bb947747b86de80ae80c43cfd6619e2b1a4dc164cb5a0b6c41b28e918df318fe";
/// Its PKCS#8 private key (a throwaway test key).
pub(super) const TLS_KEY: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b020101042073f1550daa2a2a28fba94f63ecaef7e84fbf11b1b368a9010332e42f31213642a1440342000401f06c0ef7b8c54838869b70b4b358e6d65373772d093eee3be018b6db75505836dc8640a64c7e34c4905c3fbbda4917bc36fbfeb8e7782ad85f94da53e9f938";

pub(super) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A minimal HTTPS server answering 200 "ok" to every request.
pub(super) struct TlsLb {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl TlsLb {
    fn start(addr: SocketAddr) -> TlsLb {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(unhex(TLS_CERT))],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(unhex(TLS_KEY))),
            )
            .unwrap();
        let cfg = Arc::new(cfg);
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((sock, _)) => {
                        let cfg = cfg.clone();
                        std::thread::spawn(move || {
                            sock.set_nonblocking(false).unwrap();
                            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                            let Ok(conn) = rustls::ServerConnection::new(cfg) else {
                                return;
                            };
                            let mut tls = rustls::StreamOwned::new(conn, sock);
                            let mut buf = [0u8; 4096];
                            if tls.read(&mut buf).is_err() {
                                return; // handshake refused by the client
                            }
                            let _ = tls.write_all(
                                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                            );
                            tls.conn.send_close_notify();
                            let _ = tls.flush();
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TlsLb { addr, stop }
    }
}

impl Drop for TlsLb {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// An https check with `insecure = true` and one verifying against `host`,
/// both probing a self-signed TLS server; returns the strict endpoint's
/// status.
pub(super) fn https_scenario(n: u8) -> Value {
    let tls = TlsLb::start(lb_addr(n, 1, 0));
    let port = tls.addr.port();
    let cfg = format!(
        r#"{}
[checks.strict]
type = "https"
port = {port}
path = "/health"
host = "www.example.test"
interval = "1s"
timeout = "500ms"

[checks.insecure]
type = "https"
port = {port}
path = "/health"
host = "www.example.test"
insecure = true
body = "ok"
interval = "1s"
timeout = "500ms"

[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "strict"
endpoints = [{{ address = "192.0.2.21", probe = "127.91.{n}.1" }}]

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
check = "insecure"
endpoints = [{{ address = "192.0.2.22", probe = "127.91.{n}.1" }}]

[services."www.example.test."]
regions = ["eu-west", "us-east"]
"#,
        head()
    );
    let s = start("https", &cfg);
    assert_eq!(
        s.a(WWW, Some(EU)),
        vec![ip("192.0.2.22")],
        "log:\n{}",
        s.log().join("\n")
    );
    let strict = endpoint_status(&s, "eu-west", "192.0.2.21");
    assert_eq!(strict["healthy"], false, "{strict}");
    let reason = strict["last_probe"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("certificate"),
        "strict check of a self-signed cert: {strict}"
    );
    let insecure = endpoint_status(&s, "us-east", "192.0.2.22");
    assert_eq!(insecure["healthy"], true, "{insecure}");
    assert_eq!(insecure["last_probe"]["reason"], "status 200", "{insecure}");
    assert!(s.stop().success());
    strict
}

#[test]
pub(super) fn https_check_insecure_passes_strict_fails_on_self_signed() {
    https_scenario(11);
}

/// Issue 3 §1: a TLS failure is reported with the reason `tls: ...`.
#[test]
pub(super) fn https_certificate_failure_reason_is_tls() {
    let strict = https_scenario(12);
    let reason = strict["last_probe"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("tls: "),
        "reason should start with \"tls: \": {strict}"
    );
}

#[test]
pub(super) fn hysteresis_short_blips_do_not_flip() {
    let n = 13;
    let eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let us = FakeLb::start(lb_addr(n, 2, port));
    let _ap = FakeLb::start(lb_addr(n, 3, port));
    // fall 3, rise 3: a blip shorter than an interval gives at most two
    // failures (one plus the rapid recheck) or one pass.
    let cfg = format!(
        "{}{}{}",
        head(),
        check("web", port, "").replace("rise = 2\nfall = 2", "rise = 3\nfall = 3"),
        three_regions(n)
    );
    let s = start("hysteresis", &cfg);
    let eu_ip = ip(&format!("127.91.{n}.1"));
    let us_ip = ip(&format!("127.91.{n}.2"));
    let ap_ip = ip(&format!("127.91.{n}.3"));
    for _ in 0..3 {
        eu.set(LbMode::Fail);
        std::thread::sleep(Duration::from_millis(500));
        eu.set(LbMode::Ok);
        assert_stable(&s, WWW, EU, &[eu_ip], Duration::from_millis(1500));
    }
    // Down for good (both eu-west and us-east), then short good blips.
    eu.set(LbMode::Fail);
    us.set(LbMode::Fail);
    wait_until(Duration::from_secs(20), || s.a(WWW, Some(EU)) == [ap_ip]).expect("goes down");
    for _ in 0..3 {
        eu.set(LbMode::Ok);
        std::thread::sleep(Duration::from_millis(400));
        eu.set(LbMode::Fail);
        assert_stable(&s, WWW, EU, &[ap_ip], Duration::from_millis(1600));
    }
    let st = endpoint_status(&s, "eu-west", &eu_ip.to_string());
    assert_eq!(st["healthy"], false, "{st}");
    let st = endpoint_status(&s, "us-east", &us_ip.to_string());
    assert_eq!(st["healthy"], false, "{st}");
    drop(us);
    assert!(s.stop().success());
}

/// A server that records the first lines of each request and answers 200.
pub(super) fn recording_lb(addr: SocketAddr) -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind(addr).unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().take(50) {
            let Ok(mut s) = s else { continue };
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            seen2
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).to_string());
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    (addr, seen)
}

#[test]
pub(super) fn http_probe_sends_path_and_host() {
    let n = 14;
    let (addr, seen) = recording_lb(lb_addr(n, 1, 0));
    let cfg = format!(
        r#"{}
[checks.web]
type = "http"
port = {}
path = "/lb/health?deep=1"
host = "lb.example.test"
interval = "1s"
timeout = "500ms"

[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "127.91.{n}.1" }}]

[services."www.example.test."]
regions = ["eu-west"]
"#,
        head(),
        addr.port()
    );
    let s = start("probe-request", &cfg);
    assert_eq!(s.a(WWW, Some(EU)), vec![ip(&format!("127.91.{n}.1"))]);
    let req = seen
        .lock()
        .unwrap()
        .first()
        .cloned()
        .expect("probed before serving");
    let lower = req.to_ascii_lowercase();
    assert!(
        req.starts_with("GET /lb/health?deep=1 HTTP/1.1\r\n"),
        "{req}"
    );
    assert!(
        lower.contains("\r\nhost: lb.example.test"),
        "Host header from `host`: {req}"
    );
    assert!(s.stop().success());
}

#[test]
pub(super) fn ipv6_endpoint_is_probed() {
    let n = 15;
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: this host has no IPv6 loopback");
        return;
    }
    let mut v6 = FakeLb::start("[::1]:0".parse().unwrap());
    let port = v6.addr.port();
    let _eu = FakeLb::start(lb_addr(n, 1, port));
    let _us = FakeLb::start(lb_addr(n, 2, port));
    let cfg = format!(
        r#"{}{}
[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "127.91.{n}.1" }}, {{ address = "::1" }}]

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
check = "web"
endpoints = [{{ address = "127.91.{n}.2" }}, {{ address = "2001:db8::2", probe = "127.91.{n}.2" }}]

[services."www.example.test."]
regions = ["us-east", "eu-west"]
"#,
        head(),
        check("web", port, "")
    );
    let s = start("ipv6-probe", &cfg);
    let aaaa = |s: &Server| addresses(&s.udp(&query(WWW, RecordType::AAAA, Some(EU))));
    assert_eq!(aaaa(&s), vec![ip("::1")]);
    assert!(v6.hits() >= 1, "::1 is probed");
    v6.kill();
    wait_until(Duration::from_secs(20), || aaaa(&s) == [ip("2001:db8::2")]).expect("::1 goes down");
    assert_eq!(
        s.a(WWW, Some(EU)),
        vec![ip(&format!("127.91.{n}.1"))],
        "A is unaffected"
    );
    let st = endpoint_status(&s, "eu-west", "::1");
    assert_eq!(st["last_probe"]["reason"], "connect refused", "{st}");
    v6.revive();
    wait_until(Duration::from_secs(20), || aaaa(&s) == [ip("::1")]).expect("::1 comes back");
    assert!(s.stop().success());
}

#[test]
pub(super) fn reload_probes_new_targets_before_the_swap() {
    let n = 16;
    let eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let _us = FakeLb::start(lb_addr(n, 2, port));
    let _ap = FakeLb::start(lb_addr(n, 3, port));
    let fra = FakeLb::start(lb_addr(n, 4, port));
    fra.set(LbMode::Fail);
    let cfg = format!("{}{}{}", head(), check("web", port, ""), three_regions(n));
    let s = start("reload-new-target", &cfg);
    let eu_ip = ip(&format!("127.91.{n}.1"));
    let fra_ip = ip(&format!("127.91.{n}.4"));
    assert_eq!(s.a(WWW, Some(EU)), vec![eu_ip]);
    // Add eu-central (Frankfurt, nearer to Amsterdam than Dublin), whose LB fails.
    let new = cfg.replace(
        "regions = [\"us-east\", \"eu-west\", \"ap-south\"]",
        "regions = [\"us-east\", \"eu-west\", \"ap-south\", \"eu-central\"]",
    ) + &format!(
        r#"
[regions.eu-central]
location = {{ lat = 50.11, lon = 8.68 }}
check = "web"
endpoints = [{{ address = "127.91.{n}.4" }}]
"#
    );
    write(&s.dir.join("signpost.toml"), &new);
    let (code, body) = http("POST", &format!("{}/v1/reload", s.admin_url()), None);
    assert_eq!(code, 200, "{body}");
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(1500) {
        assert_eq!(
            s.a(WWW, Some(EU)),
            vec![eu_ip],
            "a new target that is down is never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = endpoint_status(&s, "eu-central", &fra_ip.to_string());
    assert_eq!(st["healthy"], false, "{st}");
    assert_eq!(st["last_probe"]["reason"], "status 503", "{st}");
    // and it is probed from then on
    fra.set(LbMode::Ok);
    wait_until(Duration::from_secs(20), || s.a(WWW, Some(EU)) == [fra_ip])
        .expect("eu-central comes up");
    assert!(s.stop().success());
}

#[test]
pub(super) fn probe_before_serve_is_bounded_by_the_timeout() {
    let n = 17;
    let first = FakeLb::start(lb_addr(n, 1, 0));
    let port = first.addr.port();
    first.set(LbMode::Hang);
    let mut lbs = vec![first];
    for h in 2..=8 {
        let lb = FakeLb::start(lb_addr(n, h, port));
        lb.set(LbMode::Hang);
        lbs.push(lb);
    }
    let _us = FakeLb::start(lb_addr(n, 20, port));
    let eps: Vec<String> = (1..=8)
        .map(|h| format!("{{ address = \"127.91.{n}.{h}\" }}"))
        .collect();
    let cfg = format!(
        r#"{}{}
[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{}]

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
check = "web"
endpoints = [{{ address = "127.91.{n}.20" }}]

[services."www.example.test."]
regions = ["us-east", "eu-west"]
"#,
        head(),
        check("web", port, ""),
        eps.join(", ")
    );
    let t = Instant::now();
    let s = start("probe-bounded", &cfg);
    let took = t.elapsed();
    println!(
        "start-up with 8 hanging endpoints (timeout 500ms): {:.2}s",
        took.as_secs_f64()
    );
    // the first round runs concurrently, bounded by the 500 ms timeout
    assert!(took < Duration::from_secs(3), "start-up took {took:?}");
    assert_eq!(s.a(WWW, Some(EU)), vec![ip(&format!("127.91.{n}.20"))]);
    let st = endpoint_status(&s, "eu-west", &format!("127.91.{n}.5"));
    assert_eq!(st["last_probe"]["reason"], "timeout", "{st}");
    drop(lbs);
    assert!(s.stop().success());
}

/// A reload whose new targets are slow to probe (first probes are bounded
/// by their timeout) is prepared beside the control loop: a health change
/// meanwhile reaches answers at once, not after the reload.
#[test]
pub(super) fn health_changes_reach_answers_while_a_reload_is_prepared() {
    let n = 77;
    let eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let _us = FakeLb::start(lb_addr(n, 2, port));
    let _ap = FakeLb::start(lb_addr(n, 3, port));
    let slow = FakeLb::start(lb_addr(n, 4, port));
    slow.set(LbMode::Hang);
    let cfg = format!("{}{}{}", head(), check("web", port, ""), three_regions(n));
    let s = start("reload-beside", &cfg);
    assert_eq!(s.a(WWW, Some(EU)), vec![ip(&format!("127.91.{n}.1"))]);
    // the new configuration adds a region whose load balancer hangs, with a 4 s timeout
    let new = format!(
        "{cfg}\n[checks.slow]\ntype = \"http\"\nport = {port}\npath = \"/health\"\ninterval = \"10s\"\ntimeout = \"4s\"\n\n[regions.sa-east]\nlocation = {{ lat = -23.55, lon = -46.63 }}\ncheck = \"slow\"\nendpoints = [{{ address = \"127.91.{n}.4\" }}]\n"
    );
    write(&s.dir.join("signpost.toml"), &new);
    let url = format!("{}/v1/reload", s.admin_url());
    let started = Instant::now();
    let reload = std::thread::spawn(move || {
        let r = http("POST", &url, None);
        (r, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(200));
    eu.set(LbMode::Fail);
    wait_until(FAIL_LIMIT, || {
        s.a(WWW, Some(EU)) == vec![ip(&format!("127.91.{n}.2"))]
    })
    .expect("the failure reached answers");
    let moved_at = Instant::now();
    let ((code, body), done_at) = reload.join().unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(
        done_at.duration_since(started) >= Duration::from_secs(3),
        "the reload waited for the slow first probe"
    );
    assert!(
        moved_at < done_at,
        "the failure reached answers only after the reload: moved {:?}, reload done {:?} after start",
        moved_at.duration_since(started),
        done_at.duration_since(started)
    );
    assert!(s.stop().success());
}
