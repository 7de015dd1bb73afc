//! Two independent signpost instances with the same config and key files
//! (no etcd): their answers both validate, their RRSIGs carry the same
//! inception and expiration (windows start on fixed boundaries), and with
//! Ed25519 (deterministic signatures) they are byte for byte the same.

use hickory_proto::rr::RecordType;

use crate::common::*;
use crate::tools::*;
use crate::*;

/// Queries whose RRSIGs the two instances are compared on.
const SIGNED: [(&str, RecordType); 9] = [
    ("mail.example.test.", RecordType::A),
    ("example.test.", RecordType::SOA),
    ("example.test.", RecordType::DNSKEY),
    ("example.test.", RecordType::CDS),
    ("www.example.test.", RecordType::A),
    ("app.example.test.", RecordType::A),
    ("x.wild.example.test.", RecordType::A),
    ("nope.example.test.", RecordType::A),
    ("mail.example.test.", RecordType::TXT),
];

/// (owner, covered type, key tag, inception, expiration, signature) of
/// every RRSIG of a response, sorted.
fn sig_list(m: &hickory_proto::op::Message) -> Vec<(String, u16, u16, u32, u32, Vec<u8>)> {
    let mut v: Vec<_> = all(m)
        .filter_map(|r| {
            let s = as_rrsig(r)?;
            let i = s.input();
            Some((
                r.name.to_lowercase().to_string(),
                u16::from(i.type_covered),
                i.key_tag,
                i.sig_inception.get(),
                i.sig_expiration.get(),
                s.sig().to_vec(),
            ))
        })
        .collect();
    v.sort();
    v
}

/// Starts two instances on one directory (same config, same key files).
fn two(dir: &std::path::Path, keys: &[&KeyFile]) -> (Server, Server) {
    let a = serve(dir, keys);
    let b = Server::start_in(dir.to_path_buf(), &["serve", "--config", "signpost.toml"]);
    assert_ne!(a.dns, b.dns);
    (a, b)
}

fn compare(a: &Server, b: &Server, identical: bool) {
    let mut checked = 0;
    let keys_a = dnskeys(&a.udp(&q("example.test.", RecordType::DNSKEY, DO)));
    for (name, t) in SIGNED {
        let ma = a.udp(&q(name, t, DO));
        let mb = b.udp(&q(name, t, DO));
        // one's answers verify with the other's keys
        assert!(verify_sigs(&mb, &keys_a) > 0, "{name} {t}");
        let (sa, sb) = (sig_list(&ma), sig_list(&mb));
        assert!(!sa.is_empty(), "{name} {t}: signed: {ma:?}");
        assert_eq!(sa.len(), sb.len(), "{name} {t}");
        for (x, y) in sa.iter().zip(&sb) {
            assert_eq!(
                (&x.0, x.1, x.2, x.3, x.4),
                (&y.0, y.1, y.2, y.3, y.4),
                "{name} {t}: same owner, type, key and window on both"
            );
            if identical {
                assert_eq!(x.5, y.5, "{name} {t}: Ed25519 signatures byte for byte");
            }
            checked += 1;
        }
    }
    assert!(checked >= SIGNED.len());
    // the status agrees
    let st = |s: &Server| {
        let v = get_json(&format!("{}/v1/status", s.admin_url()));
        let d = &v["zones"][0]["dnssec"];
        (
            d["inception"].clone(),
            d["expiration"].clone(),
            d["ds"].clone(),
        )
    };
    let (inception, expiration, _) = st(a);
    assert_eq!(st(a), st(b));
    // the window starts on a multiple of validity - refresh (7 d) since
    // the epoch; the inception is an hour before it (clock skew)
    let (inception, expiration) = (inception.as_i64().unwrap(), expiration.as_i64().unwrap());
    let start = expiration - 14 * 86_400;
    assert_eq!(start % (7 * 86_400), 0, "window start {start}");
    assert_eq!(inception, start - 3600);
}

#[test]
fn two_instances_agree_ed25519_byte_for_byte() {
    let dir = scratch("dnssec-twins-ed25519");
    let csk = fixture(&dir, "Kexample.test.+015+22404");
    let (a, b) = two(&dir, &[&csk]);
    compare(&a, &b, true);
    if missing(&["delv"]).is_none() {
        for s in [&a, &b] {
            let d = Delv::new(&dir, s.dns, &csk);
            d.validated(CLIENT_EU, "mail.example.test.", "A");
            d.validated(CLIENT_US, "www.example.test.", "A");
            d.negative(CLIENT_EU, "nope.example.test.", "A");
        }
    } else {
        eprintln!("SKIP (part): delv not installed; the signatures were compared only");
    }
}

#[test]
fn two_instances_agree_ecdsa_on_the_window() {
    require!("dnssec-keygen", "delv");
    let dir = scratch("dnssec-twins-ecdsa");
    let (ksk, zsk) = ecdsa_pair(&dir);
    let (a, b) = two(&dir, &[&ksk, &zsk]);
    compare(&a, &b, false);
    for s in [&a, &b] {
        let d = Delv::new(&dir, s.dns, &ksk);
        d.validated(CLIENT_EU, "mail.example.test.", "A");
        d.validated(CLIENT_US, "www.example.test.", "A");
        d.validated(CLIENT_US, "example.test.", "DNSKEY");
        d.negative(CLIENT_EU, "nope.example.test.", "A");
    }
    // a resolver may mix the two: the DNSKEY set from one, answers from
    // the other
    let da = Delv::new(&dir, a.dns, &ksk);
    let ka = da.validated(CLIENT_EU, "example.test.", "DNSKEY");
    let kb = Delv::new(&dir, b.dns, &ksk).validated(CLIENT_EU, "example.test.", "DNSKEY");
    let keys = |out: &str| {
        let mut v = delv_rdata(out, "example.test.", "DNSKEY");
        v.sort();
        v
    };
    assert_eq!(keys(&ka), keys(&kb));
}
