mod common;
use common::*;
use hickory_proto::rr::RecordType;

#[test]
fn geo_answer_smoke() {
    let cfg = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
[geoip]
database = "{GEOIP}"
[zones."example.test."]
file = "example.test.zone"
[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
endpoints = [{{ address = "192.0.2.1" }}]
[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
endpoints = [{{ address = "192.0.2.2" }}]
[services."www.example.test."]
regions = ["us-east", "eu-west"]
"#
    );
    let s = Server::start("smoke", &cfg, &[("example.test.zone", ZONE)]);
    assert_eq!(
        s.a("www.example.test.", Some("193.0.6.0/24")),
        vec!["192.0.2.2".parse::<std::net::IpAddr>().unwrap()]
    );
    let r = s.tcp(&query(
        "www.example.test.",
        RecordType::A,
        Some("24.24.24.0/24"),
    ));
    assert_eq!(
        addresses(&r),
        vec!["192.0.2.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(ecs_of(&r).map(|e| e.1), Some(16));
    assert!(s.stop().success());
}
