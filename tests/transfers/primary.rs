//! signpost as the secondary of a real hidden primary (Knot) with TSIG:
//! the first AXFR, a change on the primary (knotc, which bumps the serial
//! and NOTIFYs) reaching signpost's answers within seconds by IXFR, a
//! transfer that breaks the zone rules rejected while the previous copy
//! keeps serving, a restart with the primary down serving the copy on
//! disk, and a primary that does not accept signpost's key.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use serde_json::Value;

use crate::common::*;
use crate::tools::*;
use crate::*;

const SERIAL: u32 = 1000;

/// The primary's zone: refresh 3600 and retry 600, so that only a NOTIFY
/// explains a change reaching signpost within seconds.
fn primary_zone() -> String {
    let mut z = format!(
        r#"$ORIGIN example.test.
$TTL 300
@       IN SOA  ns1.example.test. hostmaster.example.test. {SERIAL} 3600 600 604800 60
        IN NS   ns1.example.test.
        IN TXT  "from the primary"
        IN CAA  0 issue "ca.example.net; account=1"
ns1     IN A    127.0.0.1
mail    IN A    192.0.2.25
multi   IN TXT  "first string" "a \"quoted\" one" "semi;colon" ""
_sip._tcp IN SRV 10 5 5060 ns1.example.test.
v6      IN AAAA 2001:db8::53
"#
    );
    for i in 0..50 {
        z.push_str(&format!("p{i:02} IN TXT \"{i:02}{}\"\n", "y".repeat(100)));
    }
    z
}

/// The answers to the records whose text form is easy to get wrong (TXT
/// strings with quotes, separators and an empty one; CAA; SRV; AAAA), as
/// rdata text, from the server at `addr`.
fn exotic(addr: SocketAddr) -> Vec<Vec<String>> {
    [
        ("multi.example.test.", RecordType::TXT),
        (ZONE_NAME, RecordType::CAA),
        ("_sip._tcp.example.test.", RecordType::SRV),
        ("v6.example.test.", RecordType::AAAA),
    ]
    .iter()
    .map(|(n, t)| {
        let m = ask(addr, n, *t);
        let v = rdata_of(&m, *t);
        assert_eq!(v.len(), 1, "{addr}: {n} {t}: {m:?}");
        v
    })
    .collect()
}

/// signpost taking example.test from `primary` with `key`, its copy
/// beside the state file in `state/`.
fn secondary_config(listen: &str, primary: SocketAddr, key: &Key) -> String {
    format!(
        r#"
[server]
listen = ["{listen}"]
admin = "127.0.0.1:0"
state = "state/signpost.state"

[geoip]
database = "{GEOIP}"

[zones."example.test."]
primary = "{primary}"
tsig = "{name}"
{tsig}{services}"#,
        name = key.name,
        tsig = key.toml(),
        services = services(&default_fallback()),
    )
}

fn start(dir: &Path, listen: &str, primary: SocketAddr, key: &Key) -> Server {
    std::fs::write(
        dir.join("signpost.toml"),
        secondary_config(listen, primary, key),
    )
    .unwrap();
    Server::start_in(dir.to_path_buf(), &["serve", "--config", "signpost.toml"])
}

fn transfer_status(s: &Server) -> Value {
    zone_status(s)["transfer"].clone()
}

/// signpost's answer for mail, as strings.
fn mail(s: &Server) -> Vec<String> {
    addrs(&ask(s.dns, "mail.example.test.", RecordType::A))
}

#[test]
fn follows_a_knot_primary_by_ixfr_and_rejects_a_broken_zone() {
    require!("knotd", "knotc");
    let dir = Scratch::new("knot-primary");
    let key = Key::random("xfr-key");
    let sp_port = free_port();
    let knot = knot_primary(
        &dir.sub("knot"),
        free_port(),
        &primary_zone(),
        SocketAddr::from(([127, 0, 0, 1], sp_port)),
        &key,
        false,
    );
    let s = start(&dir.0, &format!("127.0.0.1:{sp_port}"), knot.addr, &key);
    let ctx = || format!("knot:\n{}\nsignpost:\n{}", knot.log(), log_text(&s));

    // the first transfer: AXFR, kept beside the state file
    eventually(
        Duration::from_secs(20),
        "signpost serves the primary's zone",
        || soa_serial(s.dns) == Some(SERIAL),
        ctx,
    );
    assert_eq!(mail(&s), ["192.0.2.25"]);
    let txt = ask(s.dns, "p49.example.test.", RecordType::TXT);
    assert_eq!(rdata_of(&txt, RecordType::TXT).len(), 1, "{txt:?}");
    assert_eq!(addrs_of(s.dns, "www.example.test.", RecordType::A), [LIVE]);
    let z = zone_status(&s);
    assert_eq!(z["source"], format!("primary {}", knot.addr), "{z}");
    assert_eq!(z["serial"], SERIAL, "{z}");
    let t = &z["transfer"];
    assert_eq!(t["primary"], knot.addr.to_string(), "{z}");
    assert_eq!(t["serial"], SERIAL, "{z}");
    assert_eq!(t["last_result"], "AXFR", "{z}");
    assert!(t["last_ok"].is_string() && t["error"].is_null(), "{z}");
    let copy = dir.0.join("state/example.test.xfr");
    assert!(copy.is_file(), "no copy at {}", copy.display());
    assert!(
        log_text(&s).contains(&format!(
            "zone example.test.: AXFR from {} to serial {SERIAL}",
            knot.addr
        )),
        "{}",
        ctx()
    );
    assert!(xfr_count(&s, "in", "ok") >= 1.0);

    // a change on the primary: NOTIFY, then IXFR, within seconds (the
    // SOA refresh is an hour)
    knot_change(
        &knot,
        &[
            ("zone-unset", "mail A 192.0.2.25"),
            ("zone-set", "mail 300 A 192.0.2.26"),
            ("zone-set", "new 300 TXT v1001"),
        ],
    );
    eventually(
        Duration::from_secs(10),
        "the change reaches signpost's answers",
        || mail(&s) == ["192.0.2.26"],
        ctx,
    );
    let new = ask(s.dns, "new.example.test.", RecordType::TXT);
    assert_eq!(rdata_of(&new, RecordType::TXT).len(), 1, "{new:?}");
    let t = transfer_status(&s);
    assert_eq!(t["serial"], SERIAL + 1, "{t}");
    assert_eq!(t["last_result"], "IXFR", "{t}");
    assert!(
        log_text(&s).contains(&format!(
            "zone example.test.: NOTIFY from its primary {}",
            knot.addr
        )),
        "{}",
        ctx()
    );
    let ixfr = format!("serial {SERIAL} -> {}", SERIAL + 1);
    assert!(
        knot.log()
            .lines()
            .any(|l| l.contains("IXFR, outgoing") && l.ends_with(&ixfr)),
        "Knot served no IXFR from {SERIAL}:\n{}",
        ctx()
    );
    assert!(xfr_count(&s, "notify_received", "accepted") >= 1.0);

    // the primary puts an A record at the service's name (SPEC §3): the
    // transfer is rejected as a whole; the previous copy keeps serving
    let before = std::fs::read(&copy).unwrap();
    knot_change(&knot, &[("zone-set", "www 300 A 192.0.2.99")]);
    eventually(
        Duration::from_secs(10),
        "signpost rejects the transfer",
        || {
            transfer_status(&s)["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("rejected"))
        },
        || format!("{}\n{}", transfer_status(&s), ctx()),
    );
    assert!(xfr_count(&s, "in", "rejected") >= 1.0, "{}", metrics(&s));
    assert!(
        log_text(&s).contains("the transfer from")
            && log_text(&s).contains("is rejected")
            && log_text(&s).contains("the previous copy keeps serving"),
        "{}",
        ctx()
    );
    assert_eq!(soa_serial(s.dns), Some(SERIAL + 1));
    assert_eq!(mail(&s), ["192.0.2.26"]);
    assert_eq!(addrs_of(s.dns, "www.example.test.", RecordType::A), [LIVE]);
    assert_eq!(transfer_status(&s)["serial"], SERIAL + 1);
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        before,
        "the copy on disk changed"
    );

    // the primary repairs it: two changes since the copy held, one IXFR
    knot_change(
        &knot,
        &[
            ("zone-unset", "www A"),
            ("zone-unset", "mail A 192.0.2.26"),
            ("zone-set", "mail 300 A 192.0.2.27"),
        ],
    );
    eventually(
        Duration::from_secs(10),
        "the repaired zone reaches signpost",
        || mail(&s) == ["192.0.2.27"],
        ctx,
    );
    let t = transfer_status(&s);
    assert_eq!(t["serial"], SERIAL + 3, "{t}");
    assert!(t["error"].is_null(), "{t}");
    assert!(
        t["last_result"]
            .as_str()
            .is_some_and(|r| r.starts_with("IXFR")),
        "{t}"
    );
    assert_eq!(addrs_of(s.dns, "www.example.test.", RecordType::A), [LIVE]);
    assert_ne!(std::fs::read(&copy).unwrap(), before);

    // a reload of the configuration keeps the copy served and its state
    reload(&s);
    assert_eq!(soa_serial(s.dns), Some(SERIAL + 3));
    assert_eq!(mail(&s), ["192.0.2.27"]);
    assert_eq!(transfer_status(&s)["serial"], SERIAL + 3);

    // the CLI shows the zone's source
    let (code, out, err) = run(&dir.0, &["ctl", "status", "--admin", &s.admin_url()], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("example.test."))
        .unwrap_or_else(|| panic!("no zone line in ctl status:\n{out}"));
    assert!(
        line.contains(&(SERIAL + 3).to_string())
            && line.contains(&format!("primary {}", knot.addr)),
        "{line}"
    );
}

#[test]
fn a_restart_with_the_primary_down_serves_the_copy_on_disk() {
    require!("knotd", "knotc");
    let dir = Scratch::new("knot-primary-down");
    let key = Key::random("xfr-key");
    let sp_port = free_port();
    let knot_dir = dir.sub("knot");
    let mut knot = knot_primary(
        &knot_dir,
        free_port(),
        &primary_zone(),
        SocketAddr::from(([127, 0, 0, 1], sp_port)),
        &key,
        false,
    );
    let primary = knot.addr;
    let s = start(&dir.0, &format!("127.0.0.1:{sp_port}"), primary, &key);
    eventually(
        Duration::from_secs(20),
        "signpost serves the primary's zone",
        || soa_serial(s.dns) == Some(SERIAL),
        || format!("{}\n{}", knot.log(), log_text(&s)),
    );
    let want = exotic(knot.addr);
    assert_eq!(exotic(s.dns), want, "as the primary serves them");
    assert!(s.stop().success());
    knot.stop();

    // the primary is down: the copy on disk serves
    let s = Server::start_in(dir.0.clone(), &["serve", "--config", "signpost.toml"]);
    let ctx = || log_text(&s);
    assert_eq!(soa_serial(s.dns), Some(SERIAL), "{}", ctx());
    assert_eq!(mail(&s), ["192.0.2.25"], "{}", ctx());
    let txt = ask(s.dns, "p00.example.test.", RecordType::TXT);
    assert_eq!(rdata_of(&txt, RecordType::TXT).len(), 1, "{txt:?}");
    assert_eq!(addrs_of(s.dns, "www.example.test.", RecordType::A), [LIVE]);
    assert_eq!(exotic(s.dns), want, "read back from the copy on disk");
    eventually(
        Duration::from_secs(10),
        "the failed transfer shows in status and metrics",
        || {
            let t = transfer_status(&s);
            t["error"].as_str().is_some_and(|e| !e.is_empty())
                && xfr_count(&s, "in", "failed") >= 1.0
        },
        || format!("{}\n{}", transfer_status(&s), ctx()),
    );
    let z = zone_status(&s);
    assert_eq!(z["serial"], SERIAL, "{z}");
    assert_eq!(z["transfer"]["serial"], SERIAL, "{z}");

    // the primary comes back; its NOTIFY at start has signpost check it
    let knot = knot_primary(
        &knot_dir,
        primary.port(),
        &primary_zone(),
        SocketAddr::from(([127, 0, 0, 1], sp_port)),
        &key,
        false,
    );
    eventually(
        Duration::from_secs(15),
        "signpost finds itself up to date",
        || {
            let t = transfer_status(&s);
            t["error"].is_null() && t["last_result"] == "up to date"
        },
        || format!("{}\nknot:\n{}\n{}", transfer_status(&s), knot.log(), ctx()),
    );
    assert!(xfr_count(&s, "in", "up_to_date") >= 1.0);
    assert_eq!(soa_serial(s.dns), Some(SERIAL));

    // signpost restarts while the primary moves on: an IXFR from the
    // serial of the copy on disk, applied to the records read back
    assert!(s.stop().success());
    knot_change(
        &knot,
        &[
            ("zone-unset", "mail A 192.0.2.25"),
            ("zone-set", "mail 300 A 192.0.2.26"),
        ],
    );
    let s = Server::start_in(dir.0.clone(), &["serve", "--config", "signpost.toml"]);
    eventually(
        Duration::from_secs(10),
        "signpost takes the change by IXFR from its copy",
        || soa_serial(s.dns) == Some(SERIAL + 1),
        || {
            format!(
                "{}\nknot:\n{}\n{}",
                transfer_status(&s),
                knot.log(),
                log_text(&s)
            )
        },
    );
    assert_eq!(transfer_status(&s)["last_result"], "IXFR");
    assert_eq!(mail(&s), ["192.0.2.26"]);
    assert_eq!(exotic(s.dns), want, "after an IXFR onto the copy read back");
}

#[test]
fn a_primary_that_refuses_the_key_leaves_only_the_services() {
    require!("knotd", "knotc");
    let dir = Scratch::new("knot-primary-badkey");
    let key = Key::random("xfr-key");
    let sp_port = free_port();
    let knot = knot_primary(
        &dir.sub("knot"),
        free_port(),
        &primary_zone(),
        SocketAddr::from(([127, 0, 0, 1], sp_port)),
        &key,
        false,
    );
    let s = start(
        &dir.0,
        &format!("127.0.0.1:{sp_port}"),
        knot.addr,
        &key.wrong_secret(),
    );
    let ctx = || format!("knot:\n{}\nsignpost:\n{}", knot.log(), log_text(&s));
    eventually(
        Duration::from_secs(10),
        "the refused transfer shows in status and metrics",
        || {
            transfer_status(&s)["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty())
                && xfr_count(&s, "in", "failed") >= 1.0
        },
        ctx,
    );
    let t = transfer_status(&s);
    let e = t["error"].as_str().unwrap();
    assert!(
        e.contains("BadSig") || e.contains("NOTAUTH") || e.to_lowercase().contains("not auth"),
        "the error should say the primary refused the key: {t}"
    );
    assert!(t["last_ok"].is_null(), "{t}");
    // no copy: the services answer, the static names wait
    assert_eq!(addrs_of(s.dns, "www.example.test.", RecordType::A), [LIVE]);
    assert!(mail(&s).is_empty(), "{}", ctx());
    assert_eq!(soa_serial(s.dns), Some(0), "the placeholder SOA");
    assert!(!dir.0.join("state/example.test.xfr").exists());
}
