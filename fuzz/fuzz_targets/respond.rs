//! What the packet targets share: the demo configuration (signed for
//! `signed`) compiled into snapshots of varied health, and one input run
//! through `dns::answer::respond`, the checks on its response, and the
//! rate limiter's accounting and slip.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use signpost::dns::answer::{Ctx, respond};
use signpost::dns::rrl;
use signpost::metrics::{Metrics, Transport};
use signpost::state::{self, Snapshot};
use signpost::steer::{DRAINED, Live, UP};

pub struct World {
    snaps: Vec<Arc<Snapshot>>,
    metrics: Metrics,
    limits: rrl::Limits,
    table: rrl::Table,
}

/// The world of one target: the demo configuration, signed or not.
pub fn world(signed: bool) -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .canonicalize()
            .expect("the repository");
        let metrics = Metrics::new();
        let config = if signed {
            signed_config(&root)
        } else {
            root.join("signpost.toml")
        };
        let compiled = Arc::new(state::load(&config, &metrics).expect("the demo config loads"));
        let n = compiled.slots.len();
        let mut snaps = Vec::new();
        // all up; all down (fail open / nodata); every other one drained
        // or down, with loads and latencies (least-loaded, fastest, shed)
        let patterns: [&dyn Fn(usize) -> (u8, Live); 4] = [
            &|_| (UP, Live::UNKNOWN),
            &|_| (0, Live::UNKNOWN),
            &|i| {
                let flags = match i % 3 {
                    0 => UP,
                    1 => UP | DRAINED,
                    _ => 0,
                };
                (
                    flags,
                    Live {
                        load: (i * 37 % 120) as f32,
                        latency_ms: (i % 7) as f32 * 3.5,
                    },
                )
            },
            &|i| {
                let load = if i % 2 == 0 { f32::NAN } else { 1e9 };
                (
                    UP,
                    Live {
                        load,
                        latency_ms: f32::INFINITY,
                    },
                )
            },
        ];
        for (g, p) in patterns.iter().enumerate() {
            let mut s = Snapshot::all_up(compiled.clone(), g as u64 + 1);
            for i in 0..n {
                let (f, l) = p(i);
                s.flags[i] = f;
                s.live[i] = l;
            }
            snaps.push(Arc::new(s));
        }
        World {
            snaps,
            metrics,
            limits: rrl::Limits {
                responses: 5,
                errors: 2,
                window: Duration::from_secs(3),
                slip: 2,
                prefix: (24, 56),
                exempt: vec!["10.0.0.0/8".parse().expect("a network")],
            },
            table: rrl::Table::new(),
        }
    })
}

/// The demo configuration with its zone signed, written to a temporary
/// file with absolute paths.
fn signed_config(root: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(root.join("signpost.toml")).expect("signpost.toml");
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
        std::env::temp_dir().join(format!("signpost-fuzz-signed-{}.toml", std::process::id()));
    std::fs::write(&path, text).expect("a temporary file");
    path
}

fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// One input: answered, checked, then counted by the rate limiter; with
/// `parse`, a response to a query hickory-proto parses must parse too.
pub fn run(w: &World, data: &[u8], parse: bool) {
    let h = hash(data);
    let snap = &w.snaps[(h % w.snaps.len() as u64) as usize];
    let src: IpAddr = match (h >> 8) % 4 {
        0 => "127.0.0.1".parse().unwrap(),
        1 => "193.0.6.139".parse().unwrap(),
        2 => "2001:67c:2e8::1".parse().unwrap(),
        _ => IpAddr::from(std::net::Ipv4Addr::from((h >> 16) as u32)),
    };
    let transport = if (h >> 12) & 1 == 0 {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    thread_local! {
        static CTX: std::cell::RefCell<Option<Ctx>> = const { std::cell::RefCell::new(None) };
    }
    let mut out = vec![0u8; 65535];
    let (len, wildcard) = CTX.with(|c| {
        let mut c = c.borrow_mut();
        let ctx = c.get_or_insert_with(|| Ctx::new(w.metrics.worker(false)));
        let len = respond(snap, data, src, transport, &mut out, ctx);
        (len, ctx.wildcard)
    });
    if let Some(len) = len {
        assert!(len <= out.len());
        if transport == Transport::Udp {
            let max = usize::from(signpost::dns::wire::MAX_UDP_PAYLOAD);
            assert!(len <= max, "a UDP response of {len} bytes");
        }
        assert!(len >= 12, "a response has a header");
        assert!(out[2] & 0x80 != 0, "QR set");
        let _ = w.table.check(
            &w.limits,
            (h >> 20) as u32 & 0xfff,
            src,
            &out[..len],
            wildcard,
        );
        if parse && hickory_proto::op::Message::from_vec(data).is_ok() {
            if let Err(e) = hickory_proto::op::Message::from_vec(&out[..len]) {
                panic!("a response hickory cannot parse ({e}) to a query it can");
            }
        }
        let cut = rrl::slip(&mut out, len);
        assert!(cut <= len);
    }
}
