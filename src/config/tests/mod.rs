//! Configuration tests: table-driven, each case a small edit of one valid
//! file, so that every error names file, key and reason.

use super::*;

mod invalid;
mod names;
mod notify;
mod parse;
mod server;
mod syntax;

const FILE: &str = "signpost.toml";

/// A small valid configuration; negative cases edit one piece of it.
const BASE: &str = r#"
[server]
listen = ["127.0.0.1:5353"]
admin = "127.0.0.1:9053"

[geoip]
database = "geo.mmdb"

[zones."example.test."]
file = "example.test.zone"

[checks.web]
type = "http"
port = 8080
path = "/health"

[regions.us-east]
location = { lat = 39.04, lon = -77.49 }
check = "web"
endpoints = [{ address = "192.0.2.1" }]

[regions.eu-west]
location = { lat = 53.35, lon = -6.26 }
check = "web"
endpoints = [{ address = "192.0.2.2" }]

[services."www.example.test."]
regions = ["us-east", "eu-west"]
"#;

fn ok(text: &str) -> Config {
    match parse(text, Path::new(FILE)) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match parse(text, Path::new(FILE)) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

/// BASE with `from` replaced by `to` (which must be found).
fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "BASE lacks {from:?}");
    BASE.replacen(from, to, 1)
}
