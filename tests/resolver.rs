//! Delegation end to end: a real Unbound with a stub zone in front of
//! signpost, configured from the walkthrough in docs/operations.md.
//! Clients send ECS to Unbound; Unbound forwards it to signpost and caches
//! per the scope signpost returns.

mod common;

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

fn unbound_bin() -> Option<PathBuf> {
    [
        "/usr/sbin/unbound",
        "/usr/bin/unbound",
        "/usr/local/sbin/unbound",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// A port free on 127.0.0.1 for both UDP and TCP.
fn free_port() -> u16 {
    for _ in 0..50 {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

/// The Unbound configuration from docs/operations.md, pointed at the
/// ports of this test.
fn unbound_config(dir: &Path, port: u16, signpost: SocketAddr) -> String {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"))
            .unwrap();
    let start = doc
        .find("<!-- unbound-test-config -->")
        .expect("marker in docs/operations.md");
    let block = &doc[start..];
    let body_start = block
        .find("```text\n")
        .expect("code block after the marker")
        + "```text\n".len();
    let body = &block[body_start..];
    let body = &body[..body.find("```").expect("end of code block")];
    assert!(
        body.contains("port: 5300") && body.contains("stub-addr: 127.0.0.1@5353"),
        "doc snippet changed shape"
    );
    let body = body
        .replace("port: 5300", &format!("port: {port}"))
        .replace(
            "stub-addr: 127.0.0.1@5353",
            &format!("stub-addr: {}@{}", signpost.ip(), signpost.port()),
        );
    // test-only: keep Unbound's files in the scratch directory
    body.replacen(
        "server:\n",
        &format!(
            "server:\n    directory: \"{0}\"\n    pidfile: \"{0}/unbound.pid\"\n",
            dir.display()
        ),
        1,
    )
}

struct Unbound {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_unbound(bin: &Path, dir: &Path, signpost: SocketAddr) -> Unbound {
    let port = free_port();
    let conf = dir.join("unbound.conf");
    std::fs::write(&conf, unbound_config(dir, port, signpost)).unwrap();
    let log = std::fs::File::create(dir.join("unbound.log")).unwrap();
    let child = Command::new(bin)
        .arg("-d")
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start unbound");
    let mut u = Unbound {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    let mut probe = query("example.test.", RecordType::SOA, None);
    probe.metadata.recursion_desired = true;
    let probe = probe.to_vec().unwrap();
    let up = wait_until(Duration::from_secs(20), || {
        udp_raw(u.addr, &probe, Duration::from_millis(300)).is_some()
    });
    if up.is_none() {
        let _ = u.child.kill();
        panic!(
            "unbound did not answer:\n{}",
            std::fs::read_to_string(dir.join("unbound.log")).unwrap_or_default()
        );
    }
    u
}

fn ask(u: &Unbound, name: &str, subnet: &str) -> Message {
    let mut q = query(name, RecordType::A, Some(subnet));
    q.metadata.recursion_desired = true;
    let m = udp_exchange(u.addr, &q.to_vec().unwrap()).expect("unbound replied");
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{name} {subnet}: {m:?}"
    );
    m
}

fn answer_ttl(m: &Message) -> u32 {
    m.answers.iter().map(|r| r.ttl).max().unwrap_or(0)
}

/// Sum of `signpost_answers_total` for one service.
fn answers_total(s: &Server, service: &str) -> u64 {
    let (code, body) = http("GET", &format!("{}/metrics", s.admin_url()), None);
    assert_eq!(code, 200);
    let prefix = format!("signpost_answers_total{{service=\"{service}\"");
    body.lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn config() -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
admin = "127.0.0.1:0"

[geoip]
database = "{GEOIP}"

[zones."example.test."]
file = "example.test.zone"

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
endpoints = [{{ address = "192.0.2.1" }}]

[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
endpoints = [{{ address = "192.0.2.2" }}]

[regions.ap-south]
location = {{ lat = 19.08, lon = 72.88 }}
endpoints = [{{ address = "192.0.2.3" }}]

[services."www.example.test."]
regions = ["us-east", "eu-west", "ap-south"]
policy = "geo"
ttl = 2

[services."db.example.test."]
regions = ["eu-west", "us-east"]
policy = "failover"
ttl = 30
"#
    )
}

const EU: &str = "193.0.6.0/24";
const ASIA: &str = "49.207.0.0/24";

#[test]
fn clients_through_unbound_get_their_own_region_and_follow_failures() {
    let Some(bin) = unbound_bin() else {
        eprintln!("SKIPPED: no unbound binary (Debian package `unbound`); .ci/run installs it");
        return;
    };
    let s = Server::start("resolver", &config(), &[("example.test.zone", ZONE)]);
    let u = start_unbound(&bin, &s.dir, s.dns);
    let eu: IpAddr = "192.0.2.2".parse().unwrap();
    let us: IpAddr = "192.0.2.1".parse().unwrap();
    let asia: IpAddr = "192.0.2.3".parse().unwrap();

    // Two continents, each its own region; the TTL never exceeds the service's.
    let m = ask(&u, "www.example.test.", EU);
    assert_eq!(addresses(&m), vec![eu]);
    assert!(
        answer_ttl(&m) <= 2,
        "TTL through the resolver: {}",
        answer_ttl(&m)
    );
    let before = answers_total(&s, "www.example.test.");
    let m = ask(&u, "www.example.test.", ASIA);
    assert_eq!(
        addresses(&m),
        vec![asia],
        "the Asian client must not get the European cached answer"
    );
    assert!(answer_ttl(&m) <= 2);
    assert!(
        answers_total(&s, "www.example.test.") > before,
        "the scoped answer must not be shared: signpost should have been asked again"
    );
    // the European client is still served the European answer (from its subnet's cache or anew)
    assert_eq!(addresses(&ask(&u, "www.example.test.", EU)), vec![eu]);

    // A failover answer has scope 0: one cached copy serves every client.
    let m1 = ask(&u, "db.example.test.", EU);
    assert_eq!(addresses(&m1), vec![eu]);
    let n = answers_total(&s, "db.example.test.");
    let m2 = ask(&u, "db.example.test.", ASIA);
    assert_eq!(addresses(&m2), vec![eu]);
    assert_eq!(
        answers_total(&s, "db.example.test."),
        n,
        "a scope-0 answer must come from Unbound's shared cache"
    );
    assert!(answer_ttl(&m2) <= 30);

    // The European region fails (drain): once the cached answer expires,
    // the European client moves to the next-nearest region.
    let (code, body) = http(
        "POST",
        &format!("{}/v1/regions/eu-west/drain", s.admin_url()),
        None,
    );
    assert_eq!(code, 200, "{body}");
    let moved = wait_until(Duration::from_secs(8), || {
        addresses(&ask(&u, "www.example.test.", EU)) == vec![us]
    });
    let took = moved.expect("the European client did not move to us-east through the resolver");
    eprintln!(
        "moved through the resolver after {:.2}s (service TTL 2s)",
        took.as_secs_f64()
    );
    assert!(
        took <= Duration::from_secs(5),
        "took {took:?}; the TTL is 2 s"
    );
    // The Asian client is unaffected.
    assert_eq!(addresses(&ask(&u, "www.example.test.", ASIA)), vec![asia]);

    // And back after the undrain.
    let (code, _) = http(
        "DELETE",
        &format!("{}/v1/regions/eu-west/drain", s.admin_url()),
        None,
    );
    assert_eq!(code, 200);
    wait_until(Duration::from_secs(8), || {
        addresses(&ask(&u, "www.example.test.", EU)) == vec![eu]
    })
    .expect("the European client did not come back");
}

#[test]
fn the_documented_unbound_config_names_the_stub_zone() {
    let dir = scratch("unbound-conf");
    let conf = unbound_config(&dir, 5999, "127.0.0.1:6000".parse().unwrap());
    assert!(conf.contains("stub-addr: 127.0.0.1@6000"));
    assert!(conf.contains("port: 5999"));
    assert!(conf.contains("send-client-subnet: 127.0.0.1"));
    assert!(conf.contains("module-config: \"subnetcache iterator\""));
    if let Some(bin) = unbound_bin() {
        let checkconf = bin.with_file_name("unbound-checkconf");
        if checkconf.exists() {
            std::fs::write(dir.join("unbound.conf"), &conf).unwrap();
            let out = Command::new(checkconf)
                .arg(dir.join("unbound.conf"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "unbound-checkconf: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
