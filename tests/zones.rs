//! The shipped zone files must be accepted by the ecosystem's checker
//! (BIND's named-checkzone) so that a parent can delegate to them.

use std::path::Path;
use std::process::Command;

fn checker() -> Option<&'static str> {
    ["/usr/bin/named-checkzone", "/usr/sbin/named-checkzone"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

#[test]
fn named_checkzone_accepts_every_shipped_zone() {
    let Some(bin) = checker() else {
        eprintln!(
            "SKIPPED: named-checkzone not installed (Debian package bind9utils); .ci/run installs it"
        );
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let Some(name) = p
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_suffix(".zone"))
        else {
            continue;
        };
        let out = Command::new(bin).arg(name).arg(&p).output().unwrap();
        assert!(
            out.status.success(),
            "named-checkzone {name} {}:\n{}{}",
            p.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        n += 1;
    }
    assert!(n >= 1, "no zone files under zones/");
}

#[test]
fn shipped_zones_have_ns_and_glue() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones");
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let Some(origin) = p
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_suffix(".zone"))
        else {
            continue;
        };
        let origin = format!("{origin}.");
        let rrsets = signpost::zone::parse_file(&p, &p.display().to_string(), &origin).unwrap();
        let ns: Vec<String> = rrsets
            .iter()
            .filter(|r| {
                r.rtype == hickory_proto::rr::RecordType::NS
                    && r.name.to_ascii().eq_ignore_ascii_case(&origin)
            })
            .flat_map(|r| r.rdatas.iter().map(|d| d.to_string().to_ascii_lowercase()))
            .collect();
        assert!(
            ns.len() >= 2,
            "{}: want at least two NS records at the apex, got {ns:?}",
            p.display()
        );
        for target in ns.iter().filter(|t| t.ends_with(&origin)) {
            let glue = rrsets.iter().any(|r| {
                r.name.to_ascii().eq_ignore_ascii_case(target)
                    && matches!(
                        r.rtype,
                        hickory_proto::rr::RecordType::A | hickory_proto::rr::RecordType::AAAA
                    )
            });
            assert!(
                glue,
                "{}: in-zone name server {target} has no address (glue)",
                p.display()
            );
        }
    }
}
