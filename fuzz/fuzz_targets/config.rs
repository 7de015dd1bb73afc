//! The configuration loader: TOML text → validated configuration, and when
//! it validates, the compiled snapshot (zone files and the GeoIP database
//! it names are read relative to the repository, so the demo's
//! `zones/example.test.zone` and `geoip/demo-city.mmdb` load).
//!
//! `cargo +nightly fuzz run config fuzz/seeds/config -- -dict=fuzz/config.dict`

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use signpost::metrics::Metrics;
use signpost::{config, state};

fn path() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz.toml"))
}

fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::parse(text, path()) {
        Ok(c) => {
            // every error is reported as one, never a panic
            if let Err(e) = state::Compiled::build(c, metrics(), None) {
                assert!(!e.0.is_empty(), "an error without a message");
            }
        }
        Err(e) => {
            assert!(!e.0.is_empty(), "an error without a message");
            for err in &e.0 {
                assert!(!err.to_string().is_empty());
            }
        }
    }
});
