//! Tests of the key loader with keys made by the real tools.
use super::*;
use hickory_proto::dnssec::{PublicKey, TBS};
use std::process::Command;

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("signpost-keys-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The tool's path, or `None` (and a SKIP line) when it is not installed.
fn tool(name: &str) -> Option<PathBuf> {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    eprintln!("SKIP: {name} is not installed");
    None
}

/// Runs dnssec-keygen in `dir`; returns the key's base name.
fn keygen(bin: &Path, dir: &Scratch, args: &[&str]) -> String {
    let out = Command::new(bin)
        .arg("-q")
        .arg("-K")
        .arg(&dir.0)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dnssec-keygen {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The tag in a base name `K<zone>+<alg>+<tag>`.
fn tag_of(base: &str) -> u16 {
    base.rsplit('+').next().unwrap().parse().unwrap()
}

fn load_ok(path: &Path) -> Key {
    load(path, "cfg/key", "example.test.").unwrap()
}

fn load_err(path: &Path, zone: &str) -> String {
    match load(path, "cfg/key", zone) {
        Ok(k) => panic!("{} loaded: {k:?}", path.display()),
        Err(e) => e,
    }
}

/// Signs "hello" and checks the signature with ring against the DNSKEY.
fn assert_signs(key: &Key) {
    let sig = key.signer.sign(&TBS::from(&b"hello"[..])).unwrap();
    let public = key.dnskey.public_key().public_bytes().to_vec();
    let verifier = match key.algorithm {
        13 => {
            assert_eq!(sig.len(), 64, "r||s, fixed width");
            let mut point = vec![0x04];
            point.extend_from_slice(&public);
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point,
            )
        }
        15 => {
            assert_eq!(sig.len(), 64);
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public)
        }
        other => panic!("algorithm {other}"),
    };
    assert!(
        verifier.verify(b"hello", &sig).is_ok(),
        "signature of {key:?} does not verify"
    );
    assert!(verifier.verify(b"hellp", &sig).is_err());
}

/// `dnssec-dsfromkey -2`'s "TAG ALG 2 HEX" for a .key file.
fn dsfromkey(key_file: &Path) -> Option<String> {
    let bin = tool("dnssec-dsfromkey")?;
    let out = Command::new(bin).arg("-2").arg(key_file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let ds_at = tokens.iter().position(|t| *t == "DS").unwrap();
    Some(tokens[ds_at + 1..].join(" "))
}

fn unix(date: &str) -> i64 {
    parse_time(date).unwrap().unwrap()
}

#[test]
fn bind_ecdsa_zsk_loads_by_each_name() {
    let Some(bin) = tool("dnssec-keygen") else {
        return;
    };
    let dir = Scratch::new("ecdsa-zsk");
    let base = keygen(
        &bin,
        &dir,
        &["-a", "ECDSAP256SHA256", "-n", "ZONE", "example.test"],
    );
    for name in [
        format!("{base}.private"),
        format!("{base}.key"),
        base.clone(),
    ] {
        let key = load_ok(&dir.path(&name));
        assert_eq!(key.tag, tag_of(&base), "{name}");
        assert_eq!(key.algorithm, 13);
        assert_eq!(key.algorithm_name(), "ECDSAP256SHA256");
        assert_eq!(key.flags, 256);
        assert!(!key.is_sep());
        assert_eq!(key.zone, "example.test.");
        assert_eq!(key.file, "cfg/key");
        assert_eq!(key.dnskey.flags(), 256);
        assert_eq!(key.signer.algorithm(), Algorithm::ECDSAP256SHA256);
        // BIND's defaults: created = publish = activate = now, no end.
        let t = key.timing;
        assert!(t.created.is_some());
        assert_eq!(t.publish, t.activate);
        assert_eq!(t.inactive, None);
        assert_eq!(t.delete, None);
        let act = t.activate.unwrap();
        assert_eq!(key.state(act - 1), KeyState::Future);
        assert_eq!(key.state(act), KeyState::Active);
        assert_eq!(key.state(i64::MAX), KeyState::Active);
        assert_eq!(key.next_event(act), None);
        assert_eq!(key.next_event(act - 1), Some(act));
        assert_signs(&key);
        // Debug shows no key material
        let debug = format!("{key:?}");
        assert!(debug.contains("tag"), "{debug}");
        assert!(!debug.contains("signer"), "{debug}");
    }
    let key = load_ok(&dir.path(&base));
    if let Some(ds) = dsfromkey(&dir.path(&format!("{base}.key"))) {
        assert_eq!(key.ds_sha256().unwrap(), ds);
    }
    let ds = key.ds_sha256_rdata().unwrap();
    assert_eq!(ds.key_tag(), key.tag);
    assert_eq!(ds.digest_type(), DigestType::SHA256);
    assert_eq!(ds.digest().len(), 32);
    assert!(
        ds.covers(&Name::from_ascii("example.test.").unwrap(), &key.dnskey)
            .unwrap()
    );
}

#[test]
fn bind_ecdsa_ksk_and_ed25519() {
    let Some(bin) = tool("dnssec-keygen") else {
        return;
    };
    let dir = Scratch::new("ksk-ed");
    let ksk = keygen(
        &bin,
        &dir,
        &["-a", "ECDSAP256SHA256", "-f", "KSK", "example.test"],
    );
    let key = load_ok(&dir.path(&format!("{ksk}.key")));
    assert_eq!((key.flags, key.algorithm, key.tag), (257, 13, tag_of(&ksk)));
    assert!(key.is_sep());
    assert_signs(&key);
    if let Some(ds) = dsfromkey(&dir.path(&format!("{ksk}.key"))) {
        assert_eq!(key.ds_sha256().unwrap(), ds);
    }

    for flags in [&[][..], &["-f", "KSK"][..]] {
        let mut args = vec!["-a", "ED25519"];
        args.extend_from_slice(flags);
        args.push("example.test");
        let ed = keygen(&bin, &dir, &args);
        let key = load_ok(&dir.path(&format!("{ed}.private")));
        assert_eq!(key.algorithm, 15);
        assert_eq!(key.algorithm_name(), "ED25519");
        assert_eq!(key.signer.algorithm(), Algorithm::ED25519);
        assert_eq!(key.tag, tag_of(&ed));
        assert_eq!(key.flags, if flags.is_empty() { 256 } else { 257 });
        assert_signs(&key);
        if let Some(ds) = dsfromkey(&dir.path(&format!("{ed}.key"))) {
            assert_eq!(key.ds_sha256().unwrap(), ds);
        }
    }
}

#[test]
fn bind_timing_points_and_states() {
    let Some(bin) = tool("dnssec-keygen") else {
        return;
    };
    let dir = Scratch::new("timing");
    let base = keygen(
        &bin,
        &dir,
        &[
            "-a",
            "ECDSAP256SHA256",
            "-P",
            "20300101000000",
            "-A",
            "20300201000000",
            "-I",
            "20300301000000",
            "-D",
            "20300401000000",
            "example.test",
        ],
    );
    let key = load_ok(&dir.path(&base));
    let (p, a, i, d) = (1_893_456_000, 1_896_134_400, 1_898_553_600, 1_901_232_000);
    assert_eq!(key.timing.publish, Some(p));
    assert_eq!(key.timing.activate, Some(a));
    assert_eq!(key.timing.inactive, Some(i));
    assert_eq!(key.timing.delete, Some(d));
    let expect = [
        (0, KeyState::Future, Some(p)),
        (p - 1, KeyState::Future, Some(p)),
        (p, KeyState::Published, Some(a)),
        (a - 1, KeyState::Published, Some(a)),
        (a, KeyState::Active, Some(i)),
        (i - 1, KeyState::Active, Some(i)),
        (i, KeyState::Inactive, Some(d)),
        (d - 1, KeyState::Inactive, Some(d)),
        (d, KeyState::Deleted, None),
        (d + 86_400 * 365, KeyState::Deleted, None),
    ];
    for (now, state, next) in expect {
        assert_eq!(key.state(now), state, "state at {now}");
        assert_eq!(key.next_event(now), next, "next event after {now}");
    }
    assert!(!KeyState::Future.published() && !KeyState::Future.signs());
    assert!(KeyState::Published.published() && !KeyState::Published.signs());
    assert!(KeyState::Active.published() && KeyState::Active.signs());
    assert!(KeyState::Inactive.published() && !KeyState::Inactive.signs());
    assert!(!KeyState::Deleted.published() && !KeyState::Deleted.signs());

    // Relative times count from the moment of generation.
    let rel = keygen(
        &bin,
        &dir,
        &[
            "-a",
            "ED25519",
            "-P",
            "now",
            "-A",
            "+1d",
            "-I",
            "+30d",
            "-D",
            "+60d",
            "example.test",
        ],
    );
    let t = load_ok(&dir.path(&rel)).timing;
    let p = t.publish.unwrap();
    assert_eq!(t.activate, Some(p + 86_400));
    assert_eq!(t.inactive, Some(p + 30 * 86_400));
    assert_eq!(t.delete, Some(p + 60 * 86_400));

    // No publish and no activate: published and active since always.
    let none = keygen(
        &bin,
        &dir,
        &[
            "-a",
            "ED25519",
            "-P",
            "none",
            "-A",
            "none",
            "-I",
            "20300301000000",
            "example.test",
        ],
    );
    let key = load_ok(&dir.path(&none));
    assert_eq!((key.timing.publish, key.timing.activate), (None, None));
    assert!(key.timing.created.is_some());
    assert_eq!(key.state(0), KeyState::Active);
    assert_eq!(key.state(i), KeyState::Inactive);
    assert_eq!(key.next_event(0), Some(i));
}

#[test]
fn state_rules_without_files() {
    let t = |p, a, i, d| Timing {
        created: Some(5),
        publish: p,
        activate: a,
        inactive: i,
        delete: d,
    };
    // nothing set (Created alone changes nothing): active forever
    assert!(t(None, None, None, None).is_unset());
    assert_eq!(t(None, None, None, None).state(i64::MIN), KeyState::Active);
    assert_eq!(t(None, None, None, None).next_event(0), None);
    // activate only: publish defaults to it
    let a_only = t(None, Some(100), None, None);
    assert_eq!(a_only.state(99), KeyState::Future);
    assert_eq!(a_only.state(100), KeyState::Active);
    // publish only: published, never signs
    let p_only = t(Some(100), None, None, None);
    assert_eq!(p_only.state(99), KeyState::Future);
    assert_eq!(p_only.state(1_000_000), KeyState::Published);
    // activate before publish: active from activate (it implies publication)
    let early = t(Some(200), Some(100), None, None);
    assert_eq!(early.state(150), KeyState::Active);
    assert_eq!(early.next_event(150), Some(200));
    // delete without inactive
    let del = t(Some(10), Some(20), None, Some(30));
    assert_eq!(del.state(29), KeyState::Active);
    assert_eq!(del.state(30), KeyState::Deleted);
    // inactive or delete only: active until then
    assert_eq!(t(None, None, Some(50), None).state(49), KeyState::Active);
    assert_eq!(t(None, None, Some(50), None).state(50), KeyState::Inactive);
    assert_eq!(t(None, None, None, Some(50)).state(50), KeyState::Deleted);
    assert_eq!(KeyState::Inactive.as_str(), "inactive");
    assert_eq!(KeyState::Future.to_string(), "future");
}

#[test]
fn times_convert_and_bad_dates_are_refused() {
    assert_eq!(unix("19700101000000"), 0);
    assert_eq!(unix("20261207120311"), 1_796_644_991);
    assert_eq!(unix("20300101000000"), 1_893_456_000);
    assert_eq!(unix("20000229235959"), 951_868_799);
    assert_eq!(unix("19691231235959"), -1);
    assert_eq!(parse_time("0").unwrap(), None);
    for bad in [
        "20260230000000",
        "21000229000000",
        "20261301000000",
        "20261200000000",
        "20261207240000",
        "20261207126000",
        "20261207120060",
        "2026120712000",
        "202612071200000",
        "2026-12-07T12:00",
        "+1d",
        "",
    ] {
        assert!(parse_time(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn ldns_keygen_keys_have_no_timing_and_are_active() {
    let Some(bin) = tool("ldns-keygen") else {
        return;
    };
    let dir = Scratch::new("ldns");
    for (alg, ksk) in [("ECDSAP256SHA256", true), ("ED25519", false)] {
        let mut cmd = Command::new(&bin);
        cmd.current_dir(&dir.0).args(["-a", alg]);
        if ksk {
            cmd.arg("-k");
        }
        let out = cmd.arg("example.test").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let base = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let key = load_ok(&dir.path(&format!("{base}.key")));
        assert_eq!(key.tag, tag_of(&base));
        assert_eq!(key.flags, if ksk { 257 } else { 256 });
        assert_eq!(key.timing, Timing::default());
        assert_eq!(key.state(0), KeyState::Active);
        assert_eq!(key.next_event(0), None);
        assert_signs(&key);
        // ldns writes the DS too (-k: SHA-256, lowercase hex)
        if let Ok(ds) = std::fs::read_to_string(dir.path(&format!("{base}.ds"))) {
            let ldns: Vec<&str> = ds.split_whitespace().collect();
            let ours = key.ds_sha256().unwrap();
            let ours: Vec<&str> = ours.split_whitespace().collect();
            if ldns[5] == "2" {
                assert_eq!(ours[..3], ldns[3..6]);
                assert_eq!(ours[3], ldns[6].to_ascii_uppercase());
            }
        }
    }
}

#[test]
fn fixtures_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dnssec");
    for (base, alg, flags) in [
        ("Kexample.test.+013+64068", 13, 257),
        ("Kexample.test.+013+13951", 13, 256),
        ("Kexample.test.+015+22404", 15, 257),
        // ldns-keygen's: the scalar written with 31 bytes (leading zero dropped)
        ("Kexample.test.+013+47015", 13, 256),
    ] {
        let key = load_ok(&dir.join(base));
        assert_eq!((key.algorithm, key.flags), (alg, flags), "{base}");
        assert_eq!(key.tag, tag_of(base));
        assert_signs(&key);
    }
}

#[test]
fn errors_say_what_and_where() {
    let Some(bin) = tool("dnssec-keygen") else {
        return;
    };
    let dir = Scratch::new("errors");
    let write = |name: &str, text: &str| std::fs::write(dir.path(name), text).unwrap();
    let read = |name: &str| std::fs::read_to_string(dir.path(name)).unwrap();

    // missing
    let e = load_err(&dir.path("Kexample.test.+013+00001"), "example.test.");
    assert_eq!(e, "Kexample.test.+013+00001.key: no such file");
    let a = keygen(&bin, &dir, &["-a", "ECDSAP256SHA256", "example.test"]);
    let lonely = "Klonely.+013+00002";
    std::fs::copy(
        dir.path(&format!("{a}.key")),
        dir.path(&format!("{lonely}.key")),
    )
    .unwrap();
    let e = load_err(&dir.path(lonely), "example.test.");
    assert_eq!(e, format!("{lonely}.private: no such file"));

    // too large to be a key file
    write("Kbig.key", &"; padding\n".repeat(8000));
    let e = load_err(&dir.path("Kbig"), "example.test.");
    assert_eq!(
        e,
        "Kbig.key: 80000 bytes is too large for a key file (at most 65536)"
    );

    // a directory, not a file
    std::fs::create_dir(dir.path("Kdir.key")).unwrap();
    let e = load_err(&dir.path("Kdir.key"), "example.test.");
    assert!(e.contains("Kdir.key: not a regular file"), "{e}");

    // another zone
    let other = keygen(&bin, &dir, &["-a", "ECDSAP256SHA256", "Other.Test"]);
    let e = load_err(&dir.path(&other), "example.test.");
    assert!(
        e.ends_with("belongs to zone other.test., not example.test."),
        "{e}"
    );
    // the zone compares case-insensitively, with or without the dot
    assert_eq!(
        load(&dir.path(&other), "x", "OTHER.test").unwrap().zone,
        "other.test."
    );

    // RSA
    let rsa = keygen(
        &bin,
        &dir,
        &["-a", "RSASHA256", "-b", "2048", "example.test"],
    );
    let e = load_err(&dir.path(&rsa), "example.test.");
    assert!(
        e.ends_with(
            "algorithm 8 (RSASHA256) is not supported: signpost signs with 13 (ECDSAP256SHA256) and 15 (ED25519)"
        ),
        "{e}"
    );

    // corrupted base64
    let b = keygen(&bin, &dir, &["-a", "ECDSAP256SHA256", "example.test"]);
    let good_private = read(&format!("{b}.private"));
    let corrupt = good_private
        .lines()
        .map(|l| {
            if l.starts_with("PrivateKey:") {
                "PrivateKey: xH/Uduayzr4VDeyq8iLXu5v+JscjPDdRTC4Zmk*ZGJSM=".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    write(&format!("{b}.private"), &corrupt);
    let e = load_err(&dir.path(&b), "example.test.");
    assert!(
        e.starts_with(&format!(
            "{b}.private: line 3: PrivateKey is not valid base64"
        )),
        "{e}"
    );

    // wrong length
    let long = good_private.replace(
        good_private
            .lines()
            .find(|l| l.starts_with("PrivateKey:"))
            .unwrap(),
        &format!("PrivateKey: {}", data_encoding::BASE64.encode(&[7u8; 33])),
    );
    write(&format!("{b}.private"), &long);
    let e = load_err(&dir.path(&b), "example.test.");
    assert!(
        e.contains("PrivateKey is 33 bytes; an ECDSAP256SHA256 private key is 32"),
        "{e}"
    );

    // missing PrivateKey
    let none: String = good_private
        .lines()
        .filter(|l| !l.starts_with("PrivateKey:"))
        .map(|l| format!("{l}\n"))
        .collect();
    write(&format!("{b}.private"), &none);
    let e = load_err(&dir.path(&b), "example.test.");
    assert_eq!(e, format!("{b}.private: no PrivateKey line"));

    // bad date
    let bad_date = good_private.replace("Activate: ", "Activate: 2026");
    write(&format!("{b}.private"), &bad_date);
    let e = load_err(&dir.path(&b), "example.test.");
    assert!(e.contains("Activate: \"2026"), "{e}");
    write(&format!("{b}.private"), &good_private);
    load_ok(&dir.path(&b));

    // private key swapped from another key of the same algorithm
    write(&format!("{b}.private"), &read(&format!("{a}.private")));
    let e = load_err(&dir.path(&b), "example.test.");
    assert_eq!(
        e,
        format!("{b}.private: the private key does not match the public key in {b}.key")
    );
    write(&format!("{b}.private"), &good_private);

    // the same for Ed25519
    let ed1 = keygen(&bin, &dir, &["-a", "ED25519", "example.test"]);
    let ed2 = keygen(&bin, &dir, &["-a", "ED25519", "example.test"]);
    write(&format!("{ed1}.private"), &read(&format!("{ed2}.private")));
    let e = load_err(&dir.path(&ed1), "example.test.");
    assert!(
        e.ends_with(&format!("does not match the public key in {ed1}.key")),
        "{e}"
    );

    // algorithm mismatch between .key and .private
    write(&format!("{ed1}.private"), &good_private);
    let e = load_err(&dir.path(&ed1), "example.test.");
    assert_eq!(
        e,
        format!(
            "{ed1}.private: algorithm 13 (ECDSAP256SHA256) does not match algorithm 15 (ED25519) in {ed1}.key"
        )
    );

    // text that is not a key
    write("Knotes.key", "hello world\nthis is not a key\n");
    write("Knotes.private", "hello world\n");
    let e = load_err(&dir.path("Knotes.key"), "example.test.");
    assert!(e.starts_with("Knotes.key: line 2: a second record"), "{e}");
    write("Knotes.key", "hello world\n");
    let e = load_err(&dir.path("Knotes.key"), "example.test.");
    assert!(
        e.starts_with("Knotes.key: line 1: not a DNSKEY record"),
        "{e}"
    );
    write("Knotes.key", "; only a comment\n");
    let e = load_err(&dir.path("Knotes"), "example.test.");
    assert!(e.starts_with("Knotes.key: no DNSKEY record"), "{e}");
    std::fs::copy(dir.path(&format!("{b}.key")), dir.path("Knotes.key")).unwrap();
    let e = load_err(&dir.path("Knotes.private"), "example.test.");
    assert!(
        e.starts_with("Knotes.private: line 1: not a BIND private key file"),
        "{e}"
    );
    write("Knotes.private", "");
    let e = load_err(&dir.path("Knotes.private"), "example.test.");
    assert!(e.starts_with("Knotes.private: empty"), "{e}");

    // a revoked key (dnssec-revoke sets bit 128: flags 385 for a KSK)
    if let Some(revoke) = tool("dnssec-revoke") {
        let k = keygen(
            &bin,
            &dir,
            &["-a", "ECDSAP256SHA256", "-f", "KSK", "example.test"],
        );
        let out = Command::new(revoke)
            .arg("-K")
            .arg(&dir.0)
            .arg(format!("{k}.key"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let revoked = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let revoked = revoked.rsplit('/').next().unwrap().to_string();
        let e = load_err(&dir.path(&revoked), "example.test.");
        assert!(e.contains("flags 385: the REVOKE bit (128) is set"), "{e}");
    }

    // not a zone key, and an unusual flag
    let key_text = read(&format!("{b}.key"));
    write(
        &format!("{b}.key"),
        &key_text.replace("DNSKEY 256 3", "DNSKEY 1 3"),
    );
    let e = load_err(&dir.path(&b), "example.test.");
    assert_eq!(e, format!("{b}.key: flags 1: not a zone key"));
    write(
        &format!("{b}.key"),
        &key_text.replace("DNSKEY 256 3", "DNSKEY 258 3"),
    );
    let e = load_err(&dir.path(&b), "example.test.");
    assert!(
        e.contains("flags 258: signpost accepts 256 (ZSK) and 257"),
        "{e}"
    );

    // public key of the wrong length
    let short = key_text
        .lines()
        .map(|l| {
            if l.contains("DNSKEY") {
                "example.test. IN DNSKEY 256 3 13 AAAA".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    write(&format!("{b}.key"), &short);
    let e = load_err(&dir.path(&b), "example.test.");
    assert!(
        e.contains("the public key is 3 bytes; ECDSAP256SHA256 keys are 64"),
        "{e}"
    );
}

#[test]
fn key_file_variants_parse() {
    let pk =
        "aiea3EIkCRq1/thrVMT6951ojJK2zardAzWTn2srSjyORLgJOpvpg0bPdVupalzm1Ds7XjytgAFVG5YoWBATWg==";
    let (a, b) = pk.split_at(56);
    for text in [
        format!("; BIND\nexample.test. IN DNSKEY 256 3 13 {a} {b}\n"),
        format!("Example.Test.\t3600\tIN\tDNSKEY\t256 3 13 {pk} ;{{id = 1 (zsk), size = 256b}}\n"),
        format!("example.test 3600 dnskey 256 3 13 {pk}"),
        format!("example.test. IN DNSKEY 256 3 13 (\n  {a}\n  {b} )\n"),
    ] {
        let p = parse_key_file(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(
            (p.owner.as_str(), p.flags, p.algorithm),
            ("example.test.", 256, 13)
        );
        assert_eq!(p.key.len(), 64);
    }
    assert!(parse_key_file(&format!("  IN DNSKEY 256 3 13 {pk}")).is_err());
    assert!(parse_key_file(&format!("example.test. CH DNSKEY 256 3 13 {pk}")).is_err());
    assert!(parse_key_file(&format!("example.test. IN DNSKEY 256 2 13 {pk}")).is_err());
    assert!(parse_key_file("example.test. IN DNSKEY 256 3 13").is_err());
    // BIND's header comments hold parentheses: they do not group lines
    let two = format!(
        "; Created: 20261207120311 (Mon Dec  7 12:03:11 2026)\n\
         example.test. IN DNSKEY 256 3 13 {pk}\nexample.test. IN DNSKEY 256 3 13 {pk}\n"
    );
    assert_eq!(
        parse_key_file(&two).unwrap_err(),
        "line 3: a second record; a .key file holds one DNSKEY record"
    );
    let grouped_two = format!(
        "example.test. IN DNSKEY 256 3 13 ( {a}\n{b} )\nexample.test. IN DNSKEY 256 3 13 {pk}\n"
    );
    assert!(
        parse_key_file(&grouped_two)
            .unwrap_err()
            .contains("a second DNSKEY record")
    );
}

#[test]
fn private_file_variants_parse() {
    let ok = "Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\n\
              PrivateKey: 9sr2ToXBykakPJlYM6bGVHxwaolBGWwcJOOGoXWAcJ0=\n\
              Created: 20261207120312\nPublish: 0\nRevoke: 20301207120312\n\
              SyncPublish: 20301207120312\nSuccessor: 12345\n";
    let p = parse_private_file(ok).unwrap();
    assert_eq!(p.algorithm, 15);
    assert_eq!(p.key.len(), 32);
    assert_eq!(p.timing.publish, None);
    assert_eq!(p.timing.created, Some(unix("20261207120312")));
    assert!(parse_private_file(&ok.replace("v1.3", "v2.0")).is_err());
    assert!(parse_private_file(&ok.replace("v1.3", "v1.2")).is_ok());
    let dup = format!("{ok}Created: 20261207120312\n");
    assert!(
        parse_private_file(&dup)
            .unwrap_err()
            .contains("a second Created line")
    );
    assert!(
        parse_private_file(&ok.replace("Algorithm: 15 (ED25519)\n", ""))
            .unwrap_err()
            .contains("no Algorithm line")
    );
    assert!(
        parse_private_file(&ok.replace("15 (ED25519)", "16 (ED448)"))
            .unwrap_err()
            .contains("algorithm 16 (ED448) is not supported")
    );
}
