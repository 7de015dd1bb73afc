//! The answer path without sockets: `dns::answer::respond` on the demo
//! configuration (signpost.toml, the demo GeoIP db), per query kind.
//! Shows the user-space share of a query; the kernel's share (recv/send on
//! loopback) is measured against gdnsd, PowerDNS and NSD by the peers
//! harness (`benches/peers.sh`).
//!
//! Then the same kinds with the DO bit against the zone signed (an ECDSA
//! KSK and ZSK from tests/data/dnssec): the signatures are copied from the
//! snapshot, except for names that exist only in the query (a name that
//! does not exist), which are signed on first use into the worker's
//! cache: "NXDOMAIN, new names" shows that cost, "NXDOMAIN" the cache hit.
//!
//! Last, the geo answer of a service whose scope map is kept in a store
//! shared with 39 other geo services (how the maps of a start or reload
//! with many services are kept) beside the same service alone.
//!
//! `cargo bench --bench answer` (add `-- <filter>` to run one kind).

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use signpost::dns::answer::{Ctx, respond};
use signpost::metrics::{Metrics, Transport};
use signpost::state::{self, Snapshot};

fn query(name: &str, t: RecordType, ecs: Option<(&str, u8)>) -> Vec<u8> {
    query_do(name, t, ecs, false)
}

fn query_do(name: &str, t: RecordType, ecs: Option<(&str, u8)>, dnssec_ok: bool) -> Vec<u8> {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if ecs.is_some() || dnssec_ok {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        e.set_dnssec_ok(dnssec_ok);
        if let Some((a, p)) = ecs {
            e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
                a.parse().unwrap(),
                p,
                0,
            )));
        }
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

/// The demo configuration with its zone signed, written to a temporary
/// file with absolute paths.
fn signed_config(root: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(root.join("signpost.toml")).unwrap();
    let keys = root.join("tests/data/dnssec");
    let text = text
        .replace(
            "database = \"geoip/",
            &format!("database = \"{}/geoip/", root.display()),
        )
        .replace(
            "file = \"zones/example.test.zone\"",
            &format!(
                "file = \"{}/zones/example.test.zone\"\n\n[zones.\"example.test.\".dnssec]\nkeys = [\"{k}/Kexample.test.+013+64068.private\", \"{k}/Kexample.test.+013+13951.private\"]",
                root.display(),
                k = keys.display()
            ),
        );
    let path =
        std::env::temp_dir().join(format!("signpost-bench-signed-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// The demo configuration with 40 more geo services over orders of its
/// four regions (some with a map), written to a temporary file with
/// absolute paths: their scope maps are computed together, in one store.
fn many_config(root: &Path) -> std::path::PathBuf {
    let mut text = std::fs::read_to_string(root.join("signpost.toml"))
        .unwrap()
        .replace(
            "database = \"geoip/",
            &format!("database = \"{}/geoip/", root.display()),
        )
        .replace(
            "file = \"zones/",
            &format!("file = \"{}/zones/", root.display()),
        );
    let regions = ["us-east", "eu-west", "ap-south", "sa-east"];
    for i in 0..40usize {
        let mut order: Vec<&str> = regions.to_vec();
        order.rotate_left(i % 4);
        order.swap(1, 1 + (i / 4) % 3);
        let list: Vec<String> = order.iter().map(|r| format!("\"{r}\"")).collect();
        text.push_str(&format!(
            "\n[services.\"g{i}.example.test.\"]\nregions = [{}]\npolicy = \"geo\"\nttl = 10\n",
            list.join(", ")
        ));
        if i % 3 == 1 {
            text.push_str(&format!("map = {{ \"NL\" = [{}] }}\n", list[3]));
        }
    }
    let path =
        std::env::temp_dir().join(format!("signpost-bench-many-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// The query kinds measured, with the DO bit or without. An empty packet
/// stands for the three `rotating` ECS queries.
fn cases(d: bool) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "static SOA",
            query_do("example.test.", RecordType::SOA, None, d),
        ),
        (
            "NXDOMAIN",
            query_do("nx12345.example.test.", RecordType::A, None, d),
        ),
        (
            "geo A, no ECS",
            query_do("www.example.test.", RecordType::A, None, d),
        ),
        (
            "geo A, ECS EU /24",
            query_do(
                "www.example.test.",
                RecordType::A,
                Some(("193.0.6.0", 24)),
                d,
            ),
        ),
        ("geo A, ECS 3 continents", Vec::new()),
        (
            "geo AAAA, ECS v6 /48",
            query_do(
                "www.example.test.",
                RecordType::AAAA,
                Some(("2001:67c:2e8::", 48)),
                d,
            ),
        ),
        (
            "weighted A",
            query_do("api.example.test.", RecordType::A, None, d),
        ),
        (
            "hash A, ECS /24",
            query_do(
                "sticky.example.test.",
                RecordType::A,
                Some(("198.51.100.0", 24)),
                d,
            ),
        ),
        (
            "least-loaded A",
            query_do("ll.example.test.", RecordType::A, None, d),
        ),
        (
            "fastest A",
            query_do("fast.example.test.", RecordType::A, None, d),
        ),
        (
            "CNAME -> geo",
            query_do(
                "app.example.test.",
                RecordType::A,
                Some(("49.207.0.0", 24)),
                d,
            ),
        ),
        (
            "wildcard A",
            query_do("x.static.example.test.", RecordType::A, None, d),
        ),
        (
            "NODATA",
            query_do("mail.example.test.", RecordType::TXT, None, d),
        ),
    ]
}

/// Nanoseconds per `respond` of `pkt` (or of `rotating` in turn), best of 5.
fn measure(snap: &Snapshot, ctx: &mut Ctx, pkt: &[u8], rotating: &[Vec<u8>]) -> f64 {
    let src: IpAddr = "127.0.0.1".parse().unwrap();
    let mut out = [0u8; 1232];
    let mut run = |n: u64| {
        let start = Instant::now();
        for i in 0..n {
            let p = if pkt.is_empty() {
                &rotating[(i % rotating.len() as u64) as usize]
            } else {
                pkt
            };
            let len = respond(snap, black_box(p), src, Transport::Udp, &mut out, ctx);
            black_box(len.expect("answered"));
        }
        start.elapsed()
    };
    run(10_000); // warm up
    // pick n so one sample takes ~200 ms, take the best of 5
    let n = (200_000_000 / run(100_000).as_nanos().max(1) as u64 * 100_000).max(10_000);
    let best = (0..5).map(|_| run(n)).min().unwrap_or(Duration::MAX);
    best.as_nanos() as f64 / n as f64
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let metrics = Metrics::new();
    let compiled =
        state::load(&root.join("signpost.toml"), &metrics).expect("the demo config loads");
    let snap = Arc::new(Snapshot::all_up(Arc::new(compiled), 1));
    let signed = state::load(&signed_config(root), &metrics).expect("the signed demo loads");
    let signed = Arc::new(Snapshot::all_up(Arc::new(signed), 1));
    let mut ctx = Ctx::new(metrics.worker(false));
    let rotating = |d: bool| -> Vec<Vec<u8>> {
        ["193.0.6.0", "49.207.0.0", "24.24.24.0"]
            .iter()
            .map(|a| query_do("www.example.test.", RecordType::A, Some((a, 24)), d))
            .collect()
    };
    let (plain_rot, do_rot) = (rotating(false), rotating(true));
    println!(
        "{:<28} {:>10} {:>14} {:>16} {:>8}",
        "query", "ns/query", "queries/s/core", "signed, DO ns", "ratio"
    );
    for ((name, pkt), (_, dpkt)) in cases(false).iter().zip(cases(true).iter()) {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let ns = measure(&snap, &mut ctx, pkt, &plain_rot);
        let sns = measure(&signed, &mut ctx, dpkt, &do_rot);
        println!(
            "{name:<28} {ns:>10.1} {:>14.0} {sns:>16.1} {:>7.2}x",
            1e9 / ns,
            sns / ns
        );
    }
    if filter
        .as_deref()
        .is_none_or(|f| "NXDOMAIN, new names".contains(f))
    {
        // every query a name never seen: the compact denial is signed then
        // (one ECDSA signature), then kept in the worker's cache
        let n = 20_000u32;
        let pkts: Vec<Vec<u8>> = (0..n)
            .map(|i| query_do(&format!("n{i}.example.test."), RecordType::A, None, true))
            .collect();
        let src: IpAddr = "127.0.0.1".parse().unwrap();
        let mut out = [0u8; 1232];
        let start = Instant::now();
        for p in &pkts {
            black_box(respond(&signed, p, src, Transport::Udp, &mut out, &mut ctx));
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
        println!(
            "{:<28} {:>10} {:>14} {ns:>16.1}",
            "NXDOMAIN, new names", "", ""
        );
    }
    rrl_cases(&snap, &mut ctx, filter.as_deref());
    if filter.as_deref().is_none_or(|f| "shared".contains(f)) {
        let many = state::load(&many_config(root), &metrics).expect("the many-service demo loads");
        let many = Arc::new(Snapshot::all_up(Arc::new(many), 1));
        let rot = |name: &str| -> Vec<Vec<u8>> {
            ["193.0.6.0", "49.207.0.0", "24.24.24.0"]
                .iter()
                .map(|a| query(name, RecordType::A, Some((a, 24))))
                .collect()
        };
        // www alone (the demo's few maps are computed one by one), then
        // www and g0 among 41 maps computed together into one store
        for (what, at, name) in [
            ("geo A, ECS, own map", &snap, "www.example.test."),
            ("geo A, ECS, map in a store", &many, "www.example.test."),
            ("geo A, ECS, another in it", &many, "g0.example.test."),
        ] {
            let ns = measure(at, &mut ctx, &[], &rot(name));
            println!("{what:<28} {ns:>10.1} {:>14.0}", 1e9 / ns);
        }
    }
}

/// Response rate limiting's share: the same geo answer, then the limiter's
/// accounting of it (`rrl::Table::check`, as the UDP workers call it) from
/// one client, and from 65,536 client networks in turn (a table far larger
/// than the cache). The one client floods (millions of identical answers a
/// second against a limit of 100,000), so most of its answers are limited;
/// the 65,536 networks stay under the limit, which is the cost every
/// answered query pays with `[server.rrl]` on.
fn rrl_cases(snap: &Snapshot, ctx: &mut Ctx, filter: Option<&str>) {
    use signpost::dns::rrl;
    let limits = rrl::Limits {
        responses: 100_000,
        errors: 100_000,
        window: Duration::from_secs(1),
        slip: 2,
        prefix: (24, 56),
        exempt: Vec::new(),
    };
    let table = rrl::Table::new();
    let pkt = query("www.example.test.", RecordType::A, Some(("193.0.6.0", 24)));
    let mut out = [0u8; 1232];
    for (name, clients, limit) in [
        ("geo A, ECS EU /24, no RRL", 1u32, false),
        ("  + RRL, 1 client flooding", 1, true),
        ("  + RRL, 65536 networks", 65_536, true),
    ] {
        if filter.is_some_and(|f| !name.contains(f) && !f.contains("RRL")) {
            continue;
        }
        let mut run = |n: u64| {
            let start = Instant::now();
            let now = table.now();
            for i in 0..n {
                let src = IpAddr::from(std::net::Ipv4Addr::from(
                    0x0a00_0000 | ((i as u32 % clients) << 8),
                ));
                let len = respond(snap, black_box(&pkt), src, Transport::Udp, &mut out, ctx)
                    .expect("answered");
                if limit {
                    black_box(table.check(&limits, now, src, &out[..len], ctx.wildcard));
                }
            }
            start.elapsed()
        };
        run(100_000);
        let n = (200_000_000 / run(100_000).as_nanos().max(1) as u64 * 100_000).max(10_000);
        let best = (0..5).map(|_| run(n)).min().unwrap_or(Duration::MAX);
        let ns = best.as_nanos() as f64 / n as f64;
        println!("{name:<28} {ns:>10.1} {:>14.0}", 1e9 / ns);
    }
}
