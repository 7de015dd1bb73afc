//! The issue-10 scale configuration, shared by the reload test and the
//! scale benchmark (`benches/scale.rs`).

use std::path::PathBuf;

use super::ZONE;

/// GeoLite2-City, from `SIGNPOST_TEST_MMDB` or the `maxminddb-geolite2`
/// Python package (which `.ci/run` installs).
pub fn geolite2() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SIGNPOST_TEST_MMDB") {
        return Some(PathBuf::from(p));
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import _maxminddb_geolite2, os; print(os.path.join(os.path.dirname(_maxminddb_geolite2.__file__), 'GeoLite2-City.mmdb'))",
        ])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    p.is_file().then_some(p)
}

/// 50 regions at real cloud locations (the first 20 are those of issue
/// 10), on 127.94.0.N.
pub const REGIONS: [(&str, f64, f64); 50] = [
    ("us-east-1", 39.04, -77.49),
    ("us-east-2", 40.10, -83.00),
    ("us-west-1", 37.35, -121.96),
    ("us-west-2", 45.84, -119.70),
    ("ca-central", 45.50, -73.57),
    ("sa-east", -23.55, -46.63),
    ("eu-west-1", 53.35, -6.26),
    ("eu-west-2", 51.51, -0.13),
    ("eu-west-3", 48.86, 2.35),
    ("eu-central", 50.11, 8.68),
    ("eu-north", 59.33, 18.07),
    ("eu-south", 45.46, 9.19),
    ("me-south", 26.07, 50.56),
    ("af-south", -33.92, 18.42),
    ("ap-south", 19.08, 72.88),
    ("ap-southeast-1", 1.35, 103.82),
    ("ap-southeast-2", -33.87, 151.21),
    ("ap-northeast-1", 35.68, 139.69),
    ("ap-northeast-2", 37.57, 126.98),
    ("ap-east", 22.32, 114.17),
    ("us-central", 41.26, -95.86),
    ("us-south", 29.42, -98.49),
    ("us-west-3", 40.76, -111.89),
    ("us-west-4", 36.17, -115.14),
    ("ca-west", 51.05, -114.07),
    ("mx-central", 20.59, -100.39),
    ("sa-west", -33.45, -70.67),
    ("eu-west-4", 53.44, 6.83),
    ("eu-central-2", 47.37, 8.54),
    ("eu-south-2", 40.42, -3.70),
    ("eu-north-2", 60.57, 27.20),
    ("eu-east", 52.23, 21.01),
    ("me-central", 25.20, 55.27),
    ("il-central", 32.09, 34.78),
    ("me-west", 25.29, 51.53),
    ("af-north", -26.20, 28.05),
    ("ap-south-2", 17.39, 78.49),
    ("ap-south-3", 28.61, 77.21),
    ("ap-southeast-3", -6.21, 106.85),
    ("ap-southeast-4", -37.81, 144.96),
    ("ap-southeast-5", 2.92, 101.65),
    ("ap-southeast-7", 13.76, 100.50),
    ("ap-northeast-3", 34.69, 135.50),
    ("ap-east-2", 25.03, 121.57),
    ("cn-north", 39.90, 116.40),
    ("nz-north", -36.85, 174.76),
    ("us-east-3", 33.75, -84.39),
    ("us-north-central", 41.88, -87.63),
    ("eu-west-5", 50.47, 3.82),
    ("sa-north", 4.71, -74.07),
];

/// The issue's test configuration: 200 geo services over 20 regions, each
/// over its own 2-8 of them, a third with a map (a country and a /24), and
/// a zone of 20,000 static names. `us-east-1` (with `all_checked`, every
/// region) is health-checked over HTTP on `port`; `svc0`'s map entry for
/// NL says `first`.
pub fn large_config(port: u16, first: &str, all_checked: bool) -> (String, String) {
    scaled_config(port, first, all_checked, 200, 20)
}

/// [`large_config`] with `services` services over the first `regions` of
/// [`REGIONS`] (8 to 50; with 200 and 20, the same configuration).
pub fn scaled_config(
    port: u16,
    first: &str,
    all_checked: bool,
    services: usize,
    regions: usize,
) -> (String, String) {
    let regions = regions.clamp(8, REGIONS.len());
    let mut rng = 0x5eed_u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut cfg = String::from(
        r#"
[server]
listen = ["127.0.0.1:0"]
admin = "127.0.0.1:0"

[geoip]
database = "geo.mmdb"
watch = false

[zones."example.test."]
file = "example.test.zone"

[checks.web]
type = "http"
"#,
    );
    cfg.push_str(&format!(
        "port = {port}\npath = \"/health\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nrise = 1\nfall = 1\n"
    ));
    for (i, (name, lat, lon)) in REGIONS[..regions].iter().enumerate() {
        let check = if i == 0 || all_checked {
            "check = \"web\"\n"
        } else {
            ""
        };
        cfg.push_str(&format!(
            "\n[regions.{name}]\nlocation = {{ lat = {lat}, lon = {lon} }}\n{check}endpoints = [{{ address = \"127.94.0.{}\" }}]\n",
            i + 1
        ));
    }
    let countries = ["DE", "JP", "BR", "IN", "AU", "ZA", "US", "FR", "GB", "SG"];
    for s in 0..services {
        let mut k = 2 + next(7) as usize;
        let mut picked: Vec<usize> = Vec::new();
        // svc0 holds us-east-1 and eu-west-1 among others; svc1 only those
        if s < 2 {
            picked.extend([0, 6]);
        }
        if s == 1 {
            k = 2;
        }
        while picked.len() < k {
            let r = next(regions as u64) as usize;
            if !picked.contains(&r) {
                picked.push(r);
            }
        }
        let names: Vec<String> = picked
            .iter()
            .map(|&r| format!("\"{}\"", REGIONS[r].0))
            .collect();
        cfg.push_str(&format!(
            "\n[services.\"svc{s}.example.test.\"]\nregions = [{}]\nttl = 20\n",
            names.join(", ")
        ));
        if s == 0 {
            cfg.push_str(&format!("map = {{ \"NL\" = [\"{first}\"] }}\n"));
        } else if s % 3 == 0 {
            let c = countries[next(countries.len() as u64) as usize];
            let net = format!("10.{}.{}.0/24", next(250), next(250));
            cfg.push_str(&format!(
                "map = {{ \"{c}\" = [{}], \"{net}\" = [{}] }}\n",
                names[names.len() - 1],
                names[0]
            ));
        }
    }
    let mut zone = String::from(ZONE);
    for i in 0..20_000 {
        zone.push_str(&format!("host{i} IN A 192.0.2.{}\n", i % 250 + 1));
    }
    (cfg, zone)
}
