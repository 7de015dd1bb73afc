//! Bad input at start (issue 11): a GeoIP file that is missing, empty,
//! truncated or not a MaxMind DB, and zone files with two CNAMEs at one
//! name, are refused by `check` and by `serve` with an error naming the
//! file, never a panic. (Reloads of the same files keep the old data
//! serving: tests/geo_reload.rs and tests/admin/.)

mod common;

use common::*;

const CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:0"]

[geoip]
database = "geo.mmdb"

[zones."example.test."]
file = "example.test.zone"

[regions.eu-west]
location = { lat = 53.35, lon = -6.26 }
endpoints = [{ address = "192.0.2.2" }]

[regions.ap-south]
location = { lat = 19.08, lon = 72.88 }
endpoints = [{ address = "192.0.2.3" }]

[services."www.example.test."]
regions = ["eu-west", "ap-south"]
"#;

/// Runs `check` and `serve` on the directory; both must fail with exit
/// code 1 and say `want` (and no panic).
fn refused(dir: &std::path::Path, want: &[&str]) {
    for cmd in ["check", "serve"] {
        let (code, out, err) = run(dir, &[cmd, "--config", "signpost.toml"], &[]);
        assert_eq!(code, 1, "{cmd}: {out}{err}");
        for w in want {
            assert!(err.contains(w), "{cmd}: want {w:?} in: {err}");
        }
        assert!(!err.contains("panicked"), "{cmd}: {err}");
    }
}

#[test]
fn a_bad_geoip_file_is_a_clear_error_at_start() {
    let good = std::fs::read(GEOIP).unwrap();
    let cases: [(&str, Option<Vec<u8>>); 5] = [
        ("missing", None),
        ("empty", Some(Vec::new())),
        ("truncated", Some(good[..good.len() / 2].to_vec())),
        ("text", Some(b"this is not a MaxMind database\n".to_vec())),
        (
            "noise",
            Some(
                (0..50_000u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                    .collect(),
            ),
        ),
    ];
    for (kind, bytes) in cases {
        let dir = scratch(&format!("bad-geoip-{kind}"));
        write(&dir.join("example.test.zone"), ZONE);
        write(&dir.join("signpost.toml"), CONFIG);
        if let Some(b) = bytes {
            std::fs::write(dir.join("geo.mmdb"), b).unwrap();
        }
        refused(&dir, &["signpost.toml", "geo.mmdb"]);
    }
    // and the good file passes, so the failures above are the file's
    let dir = scratch("bad-geoip-good");
    write(&dir.join("example.test.zone"), ZONE);
    write(&dir.join("signpost.toml"), CONFIG);
    std::fs::write(dir.join("geo.mmdb"), good).unwrap();
    let (code, out, err) = run(&dir, &["check", "--config", "signpost.toml"], &[]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn two_cnames_at_one_name_are_refused_with_both_lines() {
    let dir = scratch("bad-zone-cnames");
    std::fs::copy(GEOIP, dir.join("geo.mmdb")).unwrap();
    write(&dir.join("signpost.toml"), CONFIG);
    let zone = format!("{ZONE}alias IN CNAME mail\nalias IN CNAME ns1\n");
    let first = zone
        .lines()
        .position(|l| l == "alias IN CNAME mail")
        .unwrap()
        + 1;
    let second = first + 1;
    write(&dir.join("example.test.zone"), &zone);
    refused(
        &dir,
        &[
            &format!("example.test.zone:{second}:"),
            &format!("the first is on line {first}"),
        ],
    );
}

#[test]
fn devices_and_fifos_are_refused_as_input_files() {
    // a zone "file" that is a device would never end; a FIFO would block
    let dir = scratch("bad-input-devices");
    std::fs::copy(GEOIP, dir.join("geo.mmdb")).unwrap();
    let fifo = dir.join("fifo.zone");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for file in ["/dev/zero", fifo.to_str().unwrap()] {
        write(
            &dir.join("signpost.toml"),
            &CONFIG.replace("example.test.zone", file),
        );
        refused(&dir, &[file, "not a regular file"]);
    }
    write(&dir.join("example.test.zone"), ZONE);
    write(
        &dir.join("signpost.toml"),
        &CONFIG.replace("geo.mmdb", "/dev/zero"),
    );
    refused(&dir, &["/dev/zero", "not a regular file"]);
}
