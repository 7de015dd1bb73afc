//! What is each node's own: `[server]`, `[server.rrl]`, `[cluster]`.

use std::time::Duration;

use super::*;

#[test]
fn cluster_state_and_probe_source() {
    let c = ok(&format!(
        "{BASE}\n[cluster]\netcd = [\"http://127.0.0.1:2379\", \"http://10.0.0.2:2379\"]\nnode = \"ns1\"\n"
    ));
    let cl = c.cluster.unwrap();
    assert_eq!(cl.node, "ns1");
    assert_eq!(cl.prefix, "/signpost");
    assert_eq!(cl.down_quorum, Quorum::Majority);
    assert_eq!(cl.etcd.len(), 2);
    let c = ok(&format!(
        "{BASE}\n[cluster]\netcd = [\"http://127.0.0.1:2379\"]\nnode = \"ns-2.a\"\nprefix = \"/gslb/prod/\"\ndown_quorum = \"any\"\n"
    ));
    let cl = c.cluster.unwrap();
    assert_eq!(
        (cl.prefix.as_str(), cl.down_quorum),
        ("/gslb/prod", Quorum::Any)
    );

    // (cluster body, key, reason fragment)
    let cases = [
        ("etcd = []\nnode = \"a\"", "cluster.etcd", "at least one"),
        (
            "etcd = [\"127.0.0.1:2379\"]\nnode = \"a\"",
            "cluster.etcd[0]",
            "not an etcd client URL",
        ),
        (
            "etcd = [\"https://e:2379\"]\nnode = \"a\"",
            "cluster.etcd[0]",
            "TLS",
        ),
        (
            "etcd = [\"http://e:2379\"]\nnode = \"a b\"",
            "cluster.node",
            "not a node name",
        ),
        (
            "etcd = [\"http://e:2379\"]\nnode = \"a\"\nprefix = \"x\"",
            "cluster.prefix",
            "must start with '/'",
        ),
        (
            "etcd = [\"http://e:2379\"]\nnode = \"a\"\ndown_quorum = \"most\"",
            "cluster.down_quorum",
            "unknown quorum",
        ),
        (
            "etcd = [\"http://e:2379\"]\nnode = \"a\"\nnodes = 3",
            "cluster",
            "unknown field",
        ),
    ];
    for (body, key, reason) in cases {
        let errs = errors(&format!("{BASE}\n[cluster]\n{body}\n"));
        assert!(
            errs.iter().any(|e| e.contains(key) && e.contains(reason)),
            "{body}: {errs:?}"
        );
    }

    let text = BASE.replacen(
        "[server]",
        "[server]\nstate = \"run/signpost.state\"\nprobe_source = \"127.0.0.21\"",
        1,
    );
    let c = ok(&text);
    assert_eq!(
        c.server.state,
        Some(Path::new(FILE).parent().unwrap().join("run/signpost.state"))
    );
    assert_eq!(c.server.probe_source, Some("127.0.0.21".parse().unwrap()));
    for (line, reason) in [
        ("probe_source = \"0.0.0.0\"", "cannot be a source address"),
        ("probe_source = \"eth0\"", "is not an IP address"),
        ("state = \"\"", "must name a file"),
    ] {
        let errs = errors(&BASE.replacen("[server]", &format!("[server]\n{line}"), 1));
        assert!(
            errs.iter()
                .any(|e| e.contains("server.") && e.contains(reason)),
            "{line}: {errs:?}"
        );
    }
}
#[test]
fn an_admin_token_that_no_header_can_carry_is_refused() {
    for (token, reason) in [
        ("\" s3cret\"", "spaces at its start or end"),
        ("\"s3cret \"", "spaces at its start or end"),
        ("\"s3 cret\"", "only visible ASCII"),
        ("\"   \"", "must not be empty"),
    ] {
        let errs =
            errors(&BASE.replacen("[server]", &format!("[server]\nadmin_token = {token}"), 1));
        assert!(
            errs.iter()
                .any(|e| e.contains("server.admin_token") && e.contains(reason)),
            "{token}: {errs:?}"
        );
    }
    let c = ok(&BASE.replacen(
        "[server]",
        "[server]\nadmin_token = \"s3cret-Token_1.~+/=\"",
        1,
    ));
    assert_eq!(c.server.admin_token.as_deref(), Some("s3cret-Token_1.~+/="));
}
#[test]
fn nsid_length_is_checked() {
    let c = ok(&BASE.replacen("[server]", "[server]\nnsid = \"ns1.example.net\"", 1));
    assert_eq!(c.server.nsid.as_deref(), Some("ns1.example.net"));
    for bad in ["\"\"".to_string(), format!("\"{}\"", "x".repeat(129))] {
        let errs = errors(&BASE.replacen("[server]", &format!("[server]\nnsid = {bad}"), 1));
        assert!(
            errs.iter()
                .any(|e| e.contains("server.nsid") && e.contains("1 to 128 bytes")),
            "{errs:?}"
        );
    }
}
#[test]
fn xdp_keys_and_defaults() {
    assert!(ok(BASE).server.xdp.is_none(), "absent = sockets only");
    let x = ok(&format!("{BASE}\n[server.xdp]\ninterfaces = [\"eth0\"]\n"))
        .server
        .xdp
        .unwrap();
    assert_eq!(
        x,
        Xdp {
            interfaces: vec!["eth0".into()],
            queues: 0,
            native: true
        }
    );
    let x = ok(&format!(
        "{BASE}\n[server.xdp]\ninterfaces = [\"eth0\", \"bond0.12\"]\nqueues = 4\nmode = \"skb\"\n"
    ))
    .server
    .xdp
    .unwrap();
    assert_eq!((x.interfaces.len(), x.queues, x.native), (2, 4, false));
    for (body, key, says) in [
        (
            "interfaces = [\"\"]",
            "server.xdp.interfaces[0]",
            "not an interface name",
        ),
        (
            "interfaces = [\"a-very-long-interface\"]",
            "server.xdp.interfaces[0]",
            "1 to 15 bytes",
        ),
        (
            "interfaces = [\"eth0\", \"eth0\"]",
            "server.xdp.interfaces[1]",
            "twice",
        ),
        (
            "interfaces = [\"eth0\"]\nqueues = 65",
            "server.xdp.queues",
            "more than 64",
        ),
        (
            "interfaces = [\"eth0\"]\nmode = \"zerocopy\"",
            "server.xdp.mode",
            "\"native\" or \"skb\"",
        ),
        ("interface = [\"eth0\"]", "server.xdp", "interface"),
    ] {
        let e = errors(&format!("{BASE}\n[server.xdp]\n{body}\n"));
        assert!(
            e.iter().any(|m| m.contains(key) && m.contains(says)),
            "{body}: {e:?}"
        );
    }
}

#[test]
fn rrl_defaults_and_keys() {
    let c = ok(&format!("{BASE}\n[server.rrl]\n"));
    let r = c.server.rrl.expect("an empty [server.rrl] turns it on");
    assert_eq!((r.responses, r.errors, r.slip), (20, 20, 2));
    assert_eq!(r.window, Duration::from_secs(15));
    assert_eq!(r.prefix, (24, 56));
    assert!(ok(BASE).server.rrl.is_none(), "absent = off");

    let c = ok(&format!(
        "{BASE}\n[server.rrl]\nresponses_per_second = 50\nerrors_per_second = 3\n\
         window = \"5s\"\nslip = 0\nipv4_prefix = 32\nipv6_prefix = 48\n\
         exempt = [\"192.0.2.7/24\", \"2001:db8::53\"]\n"
    ));
    let r = c.server.rrl.unwrap();
    assert_eq!((r.responses, r.errors, r.slip), (50, 3, 0));
    assert_eq!(r.window, Duration::from_secs(5));
    assert_eq!(r.prefix, (32, 48));
    let exempt: Vec<String> = r.exempt.iter().map(|n| n.to_string()).collect();
    assert_eq!(exempt, ["192.0.2.0/24", "2001:db8::53/128"]);
}

#[test]
fn rrl_bad_keys_are_named() {
    for (text, key, says) in [
        (
            "responses_per_second = 0",
            "server.rrl.responses_per_second",
            "between 1 and",
        ),
        (
            "errors_per_second = 200000",
            "server.rrl.errors_per_second",
            "between 1 and",
        ),
        (
            "responses_per_second = 100000\nwindow = \"1h\"",
            "server.rrl.responses_per_second",
            "shorten server.rrl.window",
        ),
        ("window = \"0s\"", "server.rrl.window", "between 1s and 1h"),
        ("window = \"soon\"", "server.rrl.window", "invalid duration"),
        ("slip = 11", "server.rrl.slip", "between 0"),
        (
            "ipv4_prefix = 0",
            "server.rrl.ipv4_prefix",
            "between 1 and 32",
        ),
        (
            "ipv6_prefix = 129",
            "server.rrl.ipv6_prefix",
            "between 1 and 128",
        ),
        (
            "exempt = [\"10.0.0.0/8\", \"ten\"]",
            "server.rrl.exempt[1]",
            "\"ten\"",
        ),
    ] {
        let errs = errors(&format!("{BASE}\n[server.rrl]\n{text}\n"));
        assert!(
            errs.iter().any(|e| e.contains(key) && e.contains(says)),
            "{text}: {errs:?}"
        );
    }
    let errs = errors(&format!("{BASE}\n[server.rrl]\nrate = 5\n"));
    assert!(errs.iter().any(|e| e.contains("rate")), "{errs:?}");
}

#[test]
fn dnssec_table_defaults_and_bad_values() {
    let zone = "[zones.\"example.test.\"]\nfile = \"example.test.zone\"";
    let c = ok(&edit(
        zone,
        &format!(
            "{zone}\n[zones.\"example.test.\".dnssec]\nkeys = [\"keys/Kexample.test.+013+1.private\"]"
        ),
    ));
    let d = c.zones[0].dnssec.as_ref().expect("dnssec table");
    assert_eq!(d.validity, Dnssec::VALIDITY);
    assert_eq!(d.refresh, Dnssec::REFRESH);
    assert_eq!(d.keys[0].1, "keys/Kexample.test.+013+1.private");
    assert!(d.keys[0].0.ends_with("keys/Kexample.test.+013+1.private"));
    assert!(c.zones[0].dnssec.is_some());

    let cases = [
        ("keys = []", "dnssec.keys", "no key files"),
        ("keys = [\"a\", \"a\"]", "dnssec.keys", "listed twice"),
        (
            "keys = [\"a\"]\ndenial = \"nsec3\"",
            "dnssec.denial",
            "compact",
        ),
        (
            "keys = [\"a\"]\nvalidity = \"1h\"",
            "dnssec.validity",
            "between 2h and 366d",
        ),
        (
            "keys = [\"a\"]\nvalidity = \"soon\"",
            "dnssec.validity",
            "invalid duration",
        ),
        (
            "keys = [\"a\"]\nrefresh = \"14d\"",
            "dnssec.refresh",
            "shorter than validity",
        ),
        (
            "keys = [\"a\"]\nrefresh = \"10m\"",
            "dnssec.refresh",
            "at least 1h",
        ),
    ];
    for (body, key, reason) in cases {
        let text = edit(
            zone,
            &format!("{zone}\n[zones.\"example.test.\".dnssec]\n{body}"),
        );
        let errs = errors(&text);
        assert!(
            errs.iter().any(|e| e.contains(key) && e.contains(reason)),
            "{body}: {errs:?}"
        );
    }
}

#[test]
fn transfer_tsig_primary_and_fallback_keys() {
    let zone = "[zones.\"example.test.\"]\nfile = \"example.test.zone\"";
    let secret = "wSE+lYHsP//Rko8wTnViDEyCW5NdXbkxxvzwrB6ZSzY=";
    let text = edit(
        zone,
        &format!(
            "{zone}\n[zones.\"example.test.\".transfer]\nallow = [\"127.0.0.0/8\", \"::1\", \"192.0.2.7\"]\ntsig = \"xfr\"\nnotify = [\"127.0.0.1:5399\"]\n\n[zones.\"other.test.\"]\nprimary = \"127.0.0.1:15301\"\ntsig = \"xfr\"\n\n[tsig.xfr]\nalgorithm = \"hmac-sha256\"\nsecret = \"{secret}\"\n"
        ),
    )
    .replacen(
        "regions = [\"us-east\", \"eu-west\"]",
        "regions = [\"us-east\", \"eu-west\"]\nfallback = [\"192.0.2.10\", \"2001:db8::10\"]",
        1,
    );
    let c = ok(&text);
    let z = c.zones.iter().find(|z| z.name == "example.test.").unwrap();
    let t = z.transfer.as_ref().expect("a transfer table");
    assert_eq!(t.allow.len(), 3);
    assert!(
        t.allow
            .iter()
            .any(|n| n.contains(&"192.0.2.7".parse::<std::net::IpAddr>().unwrap()))
    );
    assert_eq!(t.tsig.as_deref(), Some("xfr"));
    assert_eq!(t.notify, vec!["127.0.0.1:5399".parse().unwrap()]);
    let o = c.zones.iter().find(|z| z.name == "other.test.").unwrap();
    let p = o.primary.as_ref().expect("a primary");
    assert_eq!(p.addr, "127.0.0.1:15301".parse().unwrap());
    // the copy lives beside the configuration (no state file here)
    assert!(o.file.ends_with("other.test.xfr"), "{:?}", o.file);
    let k = &c.tsig["xfr"];
    assert_eq!(
        (k.name.as_str(), k.algorithm, k.secret.len()),
        ("xfr.", TsigAlgorithm::HmacSha256, 32)
    );
    assert!(k.signer().is_ok());
    assert!(
        !format!("{k:?}").contains("secret: ["),
        "the secret stays out of Debug"
    );
    assert_eq!(c.services[0].fallback.len(), 2);

    let cases = [
        (
            "[zones.\"x.test.\"]\nprimary = \"nowhere\"",
            "zones.\"x.test.\".primary",
            "not an address and port",
        ),
        (
            "[zones.\"x.test.\"]\nfile = \"a\"\nprimary = \"127.0.0.1:53\"",
            "zones.\"x.test.\"",
            "not both",
        ),
        (
            "[zones.\"x.test.\"]\ntsig = \"xfr\"\nfile = \"a\"",
            "zones.\"x.test.\".tsig",
            "for transfers from its primary",
        ),
        (
            "[zones.\"x.test.\"]\nprimary = \"127.0.0.1:53\"\ntsig = \"nope\"",
            "zones.\"x.test.\".tsig",
            "unknown TSIG key",
        ),
        (
            "[zones.\"x.test.\"]\nfile = \"a\"\n[zones.\"x.test.\".transfer]\nallow = [\"10.0.0.0/33\"]",
            "transfer.allow",
            "not an address or network",
        ),
        (
            "[zones.\"x.test.\"]\nfile = \"a\"\n[zones.\"x.test.\".transfer]\nnotify = [\"127.0.0.1\"]",
            "transfer.notify",
            "not an address and port",
        ),
        (
            "[tsig.k]\nalgorithm = \"hmac-md5\"\nsecret = \"c2VjcmV0c2VjcmV0c2VjcmV0\"",
            "tsig.k.algorithm",
            "not supported",
        ),
        (
            "[tsig.k]\nalgorithm = \"hmac-sha256\"",
            "tsig.k",
            "secret or secret_file",
        ),
        (
            "[tsig.k]\nalgorithm = \"hmac-sha256\"\nsecret = \"!!!\"",
            "tsig.k",
            "not base64",
        ),
        (
            "[tsig.k]\nalgorithm = \"hmac-sha256\"\nsecret = \"c2hvcnQ=\"",
            "tsig.k",
            "shorter than 16 bytes",
        ),
        (
            "[tsig.k]\nalgorithm = \"hmac-sha256\"\nsecret_file = \"/nonexistent/k\"",
            "tsig.k.secret_file",
            "/nonexistent/k",
        ),
        ("[zones.\"x.test.\"]", "zones.\"x.test.\"", "missing file"),
    ];
    for (extra, key, reason) in cases {
        let errs = errors(&format!("{BASE}\n{extra}\n"));
        assert!(
            errs.iter().any(|e| e.contains(key) && e.contains(reason)),
            "{extra}: {errs:?}"
        );
    }
    let errs = errors(&BASE.replacen(
        "regions = [\"us-east\", \"eu-west\"]",
        "regions = [\"us-east\", \"eu-west\"]\nfallback = [\"not-an-ip\", \"192.0.2.1\", \"192.0.2.1\"]",
        1,
    ));
    assert!(
        errs.iter()
            .any(|e| e.contains("fallback") && e.contains("not an IP address")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("fallback") && e.contains("listed twice")),
        "{errs:?}"
    );
}
