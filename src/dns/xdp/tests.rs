//! The XDP program run by the kernel over a table of frames
//! (`BPF_PROG_TEST_RUN`, needs root or CAP_BPF + CAP_NET_ADMIN; no
//! network), and the in-place answer path.

use std::net::IpAddr;

use super::bpf::{self, Map, Prog, XDP_DROP, XDP_PASS};
use super::frame::tests::frame;
use super::*;

fn ip(a: &str) -> IpAddr {
    a.parse().unwrap()
}

fn dns() -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(b"\x01a\x00\x00\x01\x00\x01");
    q
}

/// (name, frame, served): with `XDP_DROP` as the empty slot's action, a
/// frame the program would redirect comes back as DROP, others as PASS.
fn table() -> Vec<(&'static str, Vec<u8>, bool)> {
    let c4 = ip("198.18.0.2");
    let s4 = ip("198.18.0.1");
    let c6 = ip("2001:db8::2");
    let s6 = ip("2001:db8::1");
    let v4 = frame(c4, s4, false, 53, &dns());
    let v6 = frame(c6, s6, false, 53, &dns());
    let edit = |f: &Vec<u8>, at: usize, b: &[u8]| {
        let mut f = f.clone();
        f[at..at + b.len()].copy_from_slice(b);
        f
    };
    let mut big = frame(c4, s4, false, 53, &vec![0; 1750 - 42]);
    big[42..54].copy_from_slice(&dns()[..12]);
    let mut over = frame(c4, s4, false, 53, &vec![0; 1800 - 42]);
    over[42..54].copy_from_slice(&dns()[..12]);
    let mut opts = v4.clone();
    opts[14] = 0x46;
    opts.splice(34..34, [1, 1, 1, 0]);
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 2, 0x08, 0x06]);
    arp.resize(42, 0);
    vec![
        ("v4 udp/53", v4.clone(), true),
        ("v4 udp/54", frame(c4, s4, false, 54, &dns()), false),
        (
            "v4 other address",
            frame(c4, ip("198.18.0.9"), false, 53, &dns()),
            false,
        ),
        ("v4 tcp/53", edit(&v4, 23, &[6]), false),
        ("v4 MF", edit(&v4, 20, &[0x20]), false),
        ("v4 frag offset", edit(&v4, 21, &[0x10]), false),
        ("v4 DF", edit(&v4, 20, &[0x40]), true),
        ("v4 ip options", opts, false),
        ("vlan v4 udp/53", frame(c4, s4, true, 53, &dns()), true),
        ("v6 udp/53 (wildcard)", v6.clone(), true),
        (
            "v6 other address (wildcard)",
            frame(c6, ip("2001:db8::9"), false, 53, &dns()),
            true,
        ),
        ("v6 udp/5353", frame(c6, s6, false, 5353, &dns()), false),
        ("v6 tcp/53", edit(&v6, 20, &[6]), false),
        ("v6 frag header", edit(&v6, 20, &[44]), false),
        ("vlan v6 udp/53", frame(c6, s6, true, 53, &dns()), true),
        ("v4 1750 B", big, true),
        ("v4 1800 B", over, false),
        ("arp", arp, false),
        ("short v4", v4[..40].to_vec(), false),
        ("ethernet only", v4[..14].to_vec(), false),
        (
            "vlan tag only",
            frame(c4, s4, true, 53, &dns())[..18].to_vec(),
            false,
        ),
    ]
}

#[test]
fn the_kernel_runs_the_program_over_the_table() {
    let (xsks, listen) = match (Map::xsks(), Map::listen()) {
        (Ok(x), Ok(l)) => (x, l),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("SKIPPED: cannot create BPF maps ({e}); needs root or CAP_BPF");
            return;
        }
    };
    for a in ["198.18.0.1:53", "[::]:53"] {
        listen
            .update(&bpf::listen_key(a.parse().unwrap()), &1u32.to_ne_bytes())
            .unwrap();
    }
    let prog = Prog::load(&bpf::program(xsks.raw(), listen.raw(), XDP_DROP), 0)
        .unwrap_or_else(|e| panic!("verifier refused: {}: {}", e.err, e.log));
    let mut wrong = Vec::new();
    for (name, f, served) in table() {
        let want = if served { XDP_DROP } else { XDP_PASS } as u32;
        let got = prog.test_run(&f).unwrap_or_else(|e| panic!("{name}: {e}"));
        if got != want {
            wrong.push(format!("{name}: got {got}, want {want}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
    // it also loads as a multi-buffer program (large MTUs)
    Prog::load(
        &bpf::program(xsks.raw(), listen.raw(), XDP_PASS),
        bpf::BPF_F_XDP_HAS_FRAGS,
    )
    .unwrap_or_else(|e| panic!("with HAS_FRAGS: {}: {}", e.err, e.log));
}

#[test]
fn answers_in_place_with_what_respond_returns() {
    let q = frame(ip("198.18.0.2"), ip("198.18.0.1"), true, 53, &dns());
    let mut f = q.clone();
    f.resize(2048 - 256, 0);
    let mut scratch = [0u8; 2048];
    let got = answer(&mut f, q.len(), &mut scratch, |query, src, out| {
        assert_eq!(query, &dns()[..]);
        assert_eq!(src, ip("198.18.0.2"));
        assert!(out.len() >= SEND_BUF);
        out[..query.len()].copy_from_slice(query);
        out[2] |= 0x80;
        out[query.len()] = 0xaa;
        Some(query.len() + 1)
    });
    let Outcome::Reply(len) = got else {
        panic!("{got:?}")
    };
    assert_eq!(len, 18 + 20 + 8 + dns().len() + 1);
    assert_eq!(&f[..6], &q[6..12]);
    assert_eq!(f[46 + 2] & 0x80, 0x80);
    assert_eq!(f[len - 1], 0xaa);
    // respond() declining means no reply
    let mut f = q.clone();
    f.resize(2048 - 256, 0);
    let got = answer(&mut f, q.len(), &mut scratch, |_, _, _| None);
    assert_eq!(got, Outcome::Declined);
    // a frame with no room for a full-size reply is dropped, not cut
    let mut f = q.clone();
    let got = answer(&mut f, q.len(), &mut scratch, |_, _, _| Some(1));
    assert_eq!(got, Outcome::NotAQuery);
    // and a frame that is not a query never reaches respond()
    let mut f = vec![0u8; 2048 - 256];
    let got = answer(&mut f, 60, &mut scratch, |_, _, _| panic!("called"));
    assert_eq!(got, Outcome::NotAQuery);
}
