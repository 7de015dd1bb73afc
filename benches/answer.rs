//! The answer path without sockets: `dns::answer::respond` on the demo
//! configuration (signpost.toml, the demo GeoIP db), per query kind.
//! Shows the user-space share of a query; the kernel's share (recv/send on
//! loopback) is measured against gdnsd, PowerDNS and NSD by the peers
//! harness (`benches/peers.sh`).
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
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if let Some((a, p)) = ecs {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
            a.parse().unwrap(),
            p,
            0,
        )));
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let metrics = Metrics::new();
    let compiled =
        state::load(&root.join("signpost.toml"), &metrics).expect("the demo config loads");
    let snap = Arc::new(Snapshot::all_up(Arc::new(compiled), 1));
    let mut ctx = Ctx::new(metrics.worker(false));
    let src: IpAddr = "127.0.0.1".parse().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("static SOA", query("example.test.", RecordType::SOA, None)),
        (
            "NXDOMAIN",
            query("nx12345.example.test.", RecordType::A, None),
        ),
        (
            "geo A, no ECS",
            query("www.example.test.", RecordType::A, None),
        ),
        (
            "geo A, ECS EU /24",
            query("www.example.test.", RecordType::A, Some(("193.0.6.0", 24))),
        ),
        ("geo A, ECS 3 continents", Vec::new()),
        (
            "geo AAAA, ECS v6 /48",
            query(
                "www.example.test.",
                RecordType::AAAA,
                Some(("2001:67c:2e8::", 48)),
            ),
        ),
        (
            "weighted A",
            query("api.example.test.", RecordType::A, None),
        ),
        (
            "hash A, ECS /24",
            query(
                "sticky.example.test.",
                RecordType::A,
                Some(("198.51.100.0", 24)),
            ),
        ),
        (
            "least-loaded A",
            query("ll.example.test.", RecordType::A, None),
        ),
        (
            "fastest A",
            query("fast.example.test.", RecordType::A, None),
        ),
        (
            "CNAME -> geo",
            query("app.example.test.", RecordType::A, Some(("49.207.0.0", 24))),
        ),
    ];
    let rotating = [
        query("www.example.test.", RecordType::A, Some(("193.0.6.0", 24))),
        query("www.example.test.", RecordType::A, Some(("49.207.0.0", 24))),
        query("www.example.test.", RecordType::A, Some(("24.24.24.0", 24))),
    ];
    let mut out = [0u8; 1232];
    println!(
        "{:<28} {:>10} {:>14}",
        "query", "ns/query", "queries/s/core"
    );
    for (name, pkt) in &cases {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let mut run = |n: u64| {
            let start = Instant::now();
            for i in 0..n {
                let p = if pkt.is_empty() {
                    &rotating[(i % 3) as usize]
                } else {
                    pkt
                };
                let len = respond(&snap, black_box(p), src, Transport::Udp, &mut out, &mut ctx);
                black_box(len.expect("answered"));
            }
            start.elapsed()
        };
        run(10_000); // warm up
        // pick n so one sample takes ~200 ms, take the best of 5
        let n = (200_000_000 / run(100_000).as_nanos().max(1) as u64 * 100_000).max(10_000);
        let best = (0..5).map(|_| run(n)).min().unwrap_or(Duration::MAX);
        let ns = best.as_nanos() as f64 / n as f64;
        println!("{name:<28} {ns:>10.1} {:>14.0}", 1e9 / ns);
    }
    rrl_cases(&snap, &mut ctx, filter.as_deref());
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
