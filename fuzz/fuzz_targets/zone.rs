//! The zone-file loader: text → parsed RRsets (with the line of the first
//! error) → the lookup table, with a service name inside, then lookups of
//! the names the zone defines.
//!
//! `cargo +nightly fuzz run zone fuzz/seeds/zone`

#![no_main]

use libfuzzer_sys::fuzz_target;
use signpost::zone::{Table, ZoneInput, parse_text, rtype};

const ORIGIN: &str = "example.test.";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let rrsets = match parse_text(text, None, "fuzz.zone", ORIGIN) {
        Ok(r) => r,
        Err(e) => {
            assert_eq!(e.file, "fuzz.zone");
            if let Some(line) = e.line {
                assert!(
                    line >= 1 && line <= text.lines().count().max(1) + 1,
                    "line {line}"
                );
            }
            return;
        }
    };
    let names: Vec<Vec<u8>> = rrsets
        .iter()
        .map(|r| signpost::zone::name_wire(&r.name))
        .collect();
    let input = ZoneInput {
        name: ORIGIN,
        file: "fuzz.zone",
        rrsets,
    };
    let Ok(table) = Table::build(vec![input], &[("www.example.test.", 0)]) else {
        return;
    };
    let mut labels = [0u8; 128];
    for name in names.iter().take(64) {
        let mut lower = name.clone();
        lower.make_ascii_lowercase();
        let n = signpost::zone::label_offsets(&lower, &mut labels);
        for t in [rtype::A, rtype::AAAA, rtype::CNAME, 16, 65280] {
            let _ = table.lookup(&lower, &labels[..n], t);
        }
    }
});
