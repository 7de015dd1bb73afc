//! `signpost check` refuses a signed zone whose keys cannot sign it,
//! naming the key file and the config key; and a zone file that holds
//! records signpost makes itself. `serve` refuses the same.

use crate::common::*;
use crate::tools::*;
use crate::*;

const CONFIG_KEY: &str = "zones.\"example.test.\".dnssec.keys";

/// `signpost check` on a config signing with `keys`: (exit code, output).
fn check(dir: &std::path::Path, keys: &[String]) -> (i32, String) {
    std::fs::write(dir.join("example.test.zone"), zone()).unwrap();
    std::fs::write(dir.join("signpost.toml"), config(keys, &services())).unwrap();
    let (code, out, err) = run(dir, &["check", "--config", "signpost.toml"], &[]);
    (code, format!("{out}{err}"))
}

/// Asserts a refusal that names `file` and the config key.
fn refused(dir: &std::path::Path, keys: &[String], file: &str, why: &str) {
    let (code, out) = check(dir, keys);
    println!("{why}: exit {code}\n{out}");
    assert_ne!(code, 0, "{why}: check passed:\n{out}");
    assert!(
        out.lines()
            .any(|l| l.contains(file) && l.contains(CONFIG_KEY)),
        "{why}: no line names {file} and {CONFIG_KEY}:\n{out}"
    );
    // serve refuses it too, and says the same
    match Server::try_start_in(dir.to_path_buf(), &["serve", "--config", "signpost.toml"]) {
        Ok(_) => panic!("{why}: serve started"),
        Err((log, status)) => {
            assert_ne!(status.and_then(|s| s.code()), Some(0), "{why}");
            assert!(
                log.iter().any(|l| l.contains(file)),
                "{why}: serve's log names {file}:\n{}",
                log.join("\n")
            );
        }
    }
}

#[test]
fn check_accepts_good_keys_in_every_path_form() {
    let dir = scratch("dnssec-check-good");
    let ksk = fixture(&dir, "Kexample.test.+013+64068");
    let zsk = fixture(&dir, "Kexample.test.+013+13951");
    let csk = fixture(&dir, "Kexample.test.+015+22404");
    let (code, out) = check(
        &dir,
        &[
            format!("keys/{}.private", ksk.base),
            format!("keys/{}.key", zsk.base),
            format!("keys/{}", csk.base),
        ],
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn check_refuses_bad_key_files() {
    let dir = scratch("dnssec-check-bad");
    let good = fixture(&dir, "Kexample.test.+013+13951");
    let keys = dir.join("keys");

    // missing: neither file exists
    refused(
        &dir,
        &["keys/Kexample.test.+013+00001.private".into()],
        "Kexample.test.+013+00001",
        "missing key file",
    );
    // a .key without its .private
    let k2 = KeyFile {
        base: "Kexample.test.+013+00002".into(),
        ..good.clone()
    };
    std::fs::copy(good.key_path(), k2.key_path()).unwrap();
    refused(
        &dir,
        &[k2.config_path()],
        "Kexample.test.+013+00002",
        "missing .private",
    );
    // garbage in both files
    for ext in ["key", "private"] {
        std::fs::write(
            keys.join(format!("Kexample.test.+013+00003.{ext}")),
            "garbage\n\0\u{7f}",
        )
        .unwrap();
    }
    refused(
        &dir,
        &["keys/Kexample.test.+013+00003.private".into()],
        "Kexample.test.+013+00003",
        "garbage key file",
    );
    // a good .key with a garbage private key
    std::fs::copy(good.key_path(), keys.join("Kexample.test.+013+00004.key")).unwrap();
    std::fs::write(
        keys.join("Kexample.test.+013+00004.private"),
        "Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\nPrivateKey: AAAA\n",
    )
    .unwrap();
    refused(
        &dir,
        &["keys/Kexample.test.+013+00004.private".into()],
        "Kexample.test.+013+00004",
        "garbage private key",
    );
    // another key's private key: it does not match the DNSKEY
    let other = fixture(&dir, "Kexample.test.+013+64068");
    std::fs::copy(good.key_path(), keys.join("Kexample.test.+013+00005.key")).unwrap();
    std::fs::copy(
        other.private_path(),
        keys.join("Kexample.test.+013+00005.private"),
    )
    .unwrap();
    refused(
        &dir,
        &["keys/Kexample.test.+013+00005.private".into()],
        "Kexample.test.+013+00005",
        "private key of another key",
    );
    // a directory where the files should be (unreadable as a file)
    std::fs::create_dir_all(keys.join("Kexample.test.+013+00006.key")).unwrap();
    std::fs::create_dir_all(keys.join("Kexample.test.+013+00006.private")).unwrap();
    refused(
        &dir,
        &["keys/Kexample.test.+013+00006".into()],
        "Kexample.test.+013+00006",
        "key path is a directory",
    );
    // one bad key among good ones is enough
    refused(
        &dir,
        &[
            good.config_path(),
            "keys/Kexample.test.+013+00001.key".into(),
        ],
        "Kexample.test.+013+00001",
        "one missing among good keys",
    );
}

#[test]
fn check_refuses_foreign_and_unsupported_keys() {
    require!("dnssec-keygen");
    let dir = scratch("dnssec-check-foreign");
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let k = keys.to_str().unwrap();
    let make = |args: &[&str]| -> String {
        let mut all = vec!["-q", "-K", k];
        all.extend_from_slice(args);
        let out = run_tool("dnssec-keygen", &all, std::time::Duration::from_secs(120));
        assert_eq!(out.code, 0, "{}", out.text());
        out.stdout.trim().to_string()
    };
    // a key of another zone
    let other = make(&["-a", "ECDSAP256SHA256", "other.test"]);
    refused(
        &dir,
        &[format!("keys/{other}.private")],
        &other,
        "key of another zone",
    );
    // RSASHA256 (algorithm 8)
    let rsa = make(&["-a", "RSASHA256", "-b", "2048", "example.test"]);
    assert!(rsa.contains("+008+"), "{rsa}");
    refused(&dir, &[format!("keys/{rsa}.key")], &rsa, "RSASHA256 key");
    let (_, out) = check(&dir, &[format!("keys/{rsa}.key")]);
    assert!(
        out.contains("RSASHA256") || out.contains("algorithm 8"),
        "{out}"
    );
}

#[test]
fn check_refuses_a_signed_zone_without_an_active_key() {
    require!("dnssec-keygen");
    let dir = scratch("dnssec-check-inactive");
    // published now, active tomorrow: nothing can sign yet
    let later = keygen(&dir, &["-a", "ECDSAP256SHA256", "-P", "now", "-A", "+1d"]);
    let (code, out) = check(&dir, &[later.config_path()]);
    println!("{out}");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("no key is active now"), "{out}");
    assert!(out.contains(&later.base), "names the key: {out}");
    // retired yesterday
    let dir = scratch("dnssec-check-retired");
    let old = keygen(
        &dir,
        &[
            "-a",
            "ECDSAP256SHA256",
            "-P",
            "-2d",
            "-A",
            "-2d",
            "-I",
            "-1d",
        ],
    );
    let (code, out) = check(&dir, &[old.config_path()]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("no key is active now"), "{out}");
}

#[test]
fn check_refuses_dnssec_records_in_the_zone_file() {
    let dir = scratch("dnssec-check-zone");
    let ksk = fixture(&dir, "Kexample.test.+013+64068");
    let zsk = fixture(&dir, "Kexample.test.+013+13951");
    let keys = [ksk.config_path(), zsk.config_path()];
    for rr in [
        format!("@ 3600 IN DNSKEY {}", ksk.rdata()),
        "www2 300 IN RRSIG A 13 3 300 20270101000000 20261201000000 13951 example.test. AAAA"
            .into(),
        "www3 300 IN NSEC www4.example.test. A RRSIG NSEC".into(),
        "@ 3600 IN CDS 64068 13 2 15F962D1DA3296F64DC90D360E6AA1709CD96D84BC00986D16510315C31D53FB"
            .into(),
    ] {
        std::fs::write(dir.join("signpost.toml"), config(&keys, &services())).unwrap();
        std::fs::write(dir.join("example.test.zone"), format!("{}{rr}\n", zone())).unwrap();
        let (code, out, err) = run(&dir, &["check", "--config", "signpost.toml"], &[]);
        let out = format!("{out}{err}");
        println!("{rr}: exit {code}\n{out}");
        assert_ne!(code, 0, "{rr}: check passed:\n{out}");
        let t = rr.split_whitespace().nth(3).unwrap();
        assert!(
            out.lines()
                .any(|l| l.contains("example.test.zone") && l.contains(t)),
            "{rr}: the refusal names the zone file and {t}:\n{out}"
        );
    }
}
