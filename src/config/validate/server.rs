//! What is this node's own: `[server]` (with `[server.rrl]`) and
//! `[cluster]`, the sections left out of the configuration nodes share.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;

use super::{Errs, parse_duration, resolve};
use crate::config::raw::{RawCluster, RawRrl, RawServer, RawXdp};
use crate::config::{Cluster, Quorum, Server, Xdp};
use crate::model::{Limits, MAX_DEBT, MAX_NSID, MAX_RATE};

/// `[server]`.
pub(super) fn validate_server(s: &RawServer, base: &Path, errs: &mut Errs<'_>) -> Server {
    let listen = validate_listen(&s.listen, errs);
    let admin = match &s.admin {
        None => None,
        Some(a) => match a.parse::<SocketAddr>() {
            Ok(sa) => Some(sa),
            Err(_) => {
                errs.push("server.admin", format!("{a:?} is not an address:port"));
                None
            }
        },
    };
    if s.workers > 1024 {
        errs.push("server.workers", format!("{} is more than 1024", s.workers));
    }
    if let Some(t) = &s.admin_token {
        check_admin_token(t, errs);
    }
    let tcp_idle_timeout = match parse_duration(&s.tcp_idle_timeout) {
        Ok(d) if d.is_zero() => {
            errs.push("server.tcp_idle_timeout", "must be longer than 0");
            Duration::from_secs(1)
        }
        Ok(d) => d,
        Err(e) => {
            errs.push("server.tcp_idle_timeout", e);
            Duration::from_secs(1)
        }
    };
    let udp_batch_wait = match parse_duration(&s.udp_batch_wait) {
        Ok(d) if d > Duration::from_millis(1) => {
            errs.push(
                "server.udp_batch_wait",
                "must be at most 1ms (0 disables it)",
            );
            Duration::ZERO
        }
        Ok(d) => d,
        Err(e) => {
            errs.push("server.udp_batch_wait", e);
            Duration::ZERO
        }
    };
    if s.tcp_max_connections == 0 || s.tcp_max_connections > 1_000_000 {
        errs.push(
            "server.tcp_max_connections",
            format!("{} is not between 1 and 1000000", s.tcp_max_connections),
        );
    }
    let probe_source = s
        .probe_source
        .as_deref()
        .and_then(|a| validate_probe_source(a, errs));
    if let Some(st) = &s.state
        && st.trim().is_empty()
    {
        errs.push(
            "server.state",
            "must name a file (omit it to keep no state)",
        );
    }
    if let Some(n) = &s.nsid
        && (n.is_empty() || n.len() > MAX_NSID)
    {
        errs.push(
            "server.nsid",
            format!("must be 1 to {MAX_NSID} bytes (e.g. the node's name)"),
        );
    }
    if s.tcp_per_source == 0 {
        errs.push("server.tcp_per_source", "must be at least 1");
    }
    if s.tcp_max_queries == 0 {
        errs.push("server.tcp_max_queries", "must be at least 1");
    }
    let tcp_max_lifetime = match parse_duration(&s.tcp_max_lifetime) {
        Ok(d) if d < Duration::from_secs(1) => {
            errs.push("server.tcp_max_lifetime", "must be at least 1s");
            Duration::from_secs(1)
        }
        Ok(d) => d,
        Err(e) => {
            errs.push("server.tcp_max_lifetime", e);
            Duration::from_secs(120)
        }
    };
    let rrl = s.rrl.as_ref().map(|r| validate_rrl(r, errs));
    let xdp = s.xdp.as_ref().map(|x| validate_xdp(x, errs));
    Server {
        rrl,
        xdp,
        listen,
        admin,
        workers: s.workers,
        admin_token: s.admin_token.clone(),
        tcp_idle_timeout,
        tcp_max_connections: s.tcp_max_connections,
        udp_batch_wait,
        state: s
            .state
            .as_deref()
            .filter(|p| !p.trim().is_empty())
            .map(|p| resolve(base, p)),
        probe_source,
        nsid: s.nsid.clone(),
        tcp_per_source: s.tcp_per_source,
        tcp_max_lifetime,
        tcp_max_queries: s.tcp_max_queries,
    }
}

/// `server.listen`: at least one address, none twice.
fn validate_listen(list: &[String], errs: &mut Errs<'_>) -> Vec<SocketAddr> {
    let mut listen = Vec::new();
    if list.is_empty() {
        errs.push("server.listen", "at least one address is needed");
    }
    for (i, a) in list.iter().enumerate() {
        match a.parse::<SocketAddr>() {
            Ok(sa) if listen.contains(&sa) => errs.push(
                format!("server.listen[{i}]"),
                format!("{a:?} is listed twice"),
            ),
            Ok(sa) => listen.push(sa),
            Err(_) => errs.push(
                format!("server.listen[{i}]"),
                format!("{a:?} is not an address:port (IPv6: \"[::1]:5353\")"),
            ),
        }
    }
    listen
}

/// `server.admin_token`: something an Authorization header can carry.
fn check_admin_token(t: &str, errs: &mut Errs<'_>) {
    if t.trim().is_empty() {
        errs.push(
            "server.admin_token",
            "must not be empty (omit it to disable auth)",
        );
    } else if t.trim() != t {
        errs.push(
            "server.admin_token",
            "has spaces at its start or end, which no Authorization header can carry: remove them",
        );
    } else if t.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
        errs.push(
            "server.admin_token",
            "may hold only visible ASCII characters (no spaces or control characters)",
        );
    }
}

/// `server.probe_source`: an address a probe can be sent from.
fn validate_probe_source(a: &str, errs: &mut Errs<'_>) -> Option<IpAddr> {
    match a.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
            errs.push(
                "server.probe_source",
                format!("{ip} cannot be a source address"),
            );
            None
        }
        Ok(ip) => Some(ip),
        Err(_) => {
            errs.push("server.probe_source", format!("{a:?} is not an IP address"));
            None
        }
    }
}

/// Most rx queues served per interface (the XSKMAP's size).
const MAX_XDP_QUEUES: u32 = 64;

/// `[server.xdp]`.
fn validate_xdp(x: &RawXdp, errs: &mut Errs<'_>) -> Xdp {
    for (i, name) in x.interfaces.iter().enumerate() {
        if name.is_empty()
            || name.len() > 15
            || name
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        {
            errs.push(
                format!("server.xdp.interfaces[{i}]"),
                format!("{name:?} is not an interface name (1 to 15 bytes, no '/', ':' or spaces)"),
            );
        }
        if x.interfaces[..i].contains(name) {
            errs.push(
                format!("server.xdp.interfaces[{i}]"),
                format!("{name:?} is listed twice"),
            );
        }
    }
    if x.queues > MAX_XDP_QUEUES {
        errs.push(
            "server.xdp.queues",
            format!(
                "{} is more than {MAX_XDP_QUEUES} (0 = every rx queue)",
                x.queues
            ),
        );
    }
    let native = match x.mode.as_str() {
        "native" => true,
        "skb" => false,
        m => {
            errs.push(
                "server.xdp.mode",
                format!("{m:?} is not \"native\" or \"skb\""),
            );
            true
        }
    };
    Xdp {
        interfaces: x.interfaces.clone(),
        queues: x.queues,
        native,
    }
}

/// `[server.rrl]`.
fn validate_rrl(r: &RawRrl, errs: &mut Errs<'_>) -> Limits {
    let window = match parse_duration(&r.window) {
        Ok(d) if d < Duration::from_secs(1) || d > Duration::from_secs(3600) => {
            errs.push("server.rrl.window", "must be between 1s and 1h");
            Duration::from_secs(15)
        }
        Ok(d) => d,
        Err(e) => {
            errs.push("server.rrl.window", e);
            Duration::from_secs(15)
        }
    };
    let errors = r.errors_per_second.unwrap_or(r.responses_per_second);
    for (key, rate) in [
        ("responses_per_second", r.responses_per_second),
        ("errors_per_second", errors),
    ] {
        if rate == 0 || rate > MAX_RATE {
            errs.push(
                format!("server.rrl.{key}"),
                format!("{rate} is not between 1 and {MAX_RATE}"),
            );
        } else if u64::from(rate) * window.as_secs() > MAX_DEBT {
            errs.push(
                format!("server.rrl.{key}"),
                format!(
                    "{rate} per second over a window of {}s is more than the {MAX_DEBT} \
                     responses an account can owe; shorten server.rrl.window",
                    window.as_secs()
                ),
            );
        }
    }
    if r.slip > 10 {
        errs.push(
            "server.rrl.slip",
            format!("{} is not between 0 (drop all) and 10", r.slip),
        );
    }
    if !(1..=32).contains(&r.ipv4_prefix) {
        errs.push(
            "server.rrl.ipv4_prefix",
            format!("{} is not between 1 and 32", r.ipv4_prefix),
        );
    }
    if !(1..=128).contains(&r.ipv6_prefix) {
        errs.push(
            "server.rrl.ipv6_prefix",
            format!("{} is not between 1 and 128", r.ipv6_prefix),
        );
    }
    let mut exempt = Vec::new();
    for (i, n) in r.exempt.iter().enumerate() {
        let parsed = n
            .trim()
            .parse::<IpNet>()
            .or_else(|_| n.trim().parse::<IpAddr>().map(IpNet::from));
        match parsed {
            Ok(net) => exempt.push(net.trunc()),
            Err(_) => errs.push(
                format!("server.rrl.exempt[{i}]"),
                format!("{n:?} is not a network (e.g. \"192.0.2.0/24\") or an address"),
            ),
        }
    }
    Limits {
        responses: r.responses_per_second,
        errors,
        window,
        slip: r.slip,
        prefix: (r.ipv4_prefix, r.ipv6_prefix),
        exempt,
    }
}

/// `[cluster]`; `None` when it has errors.
pub(super) fn validate_cluster(c: &RawCluster, errs: &mut Errs<'_>) -> Option<Cluster> {
    let before = errs.list.len();
    if c.etcd.is_empty() {
        errs.push("cluster.etcd", "list at least one etcd client URL");
    }
    for (i, u) in c.etcd.iter().enumerate() {
        let ok = u
            .strip_prefix("http://")
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
        if !ok {
            errs.push(
                format!("cluster.etcd[{i}]"),
                format!("{u:?} is not an etcd client URL like \"http://10.0.0.1:2379\" (TLS is not supported yet)"),
            );
        }
    }
    let node = match &c.node {
        Some(n) => n.clone(),
        None => crate::os::hostname().unwrap_or_default(),
    };
    let node_ok = !node.is_empty()
        && node.len() <= 63
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !node_ok {
        errs.push(
            "cluster.node",
            format!(
                "{node:?} is not a node name (letters, digits, '-', '_', '.'; at most 63){}",
                if c.node.is_none() {
                    " (taken from the host name)"
                } else {
                    ""
                }
            ),
        );
    }
    let prefix = c.prefix.trim_end_matches('/').to_string();
    if !c.prefix.starts_with('/') || prefix.is_empty() || c.prefix.chars().any(char::is_whitespace)
    {
        errs.push(
            "cluster.prefix",
            format!(
                "{:?} must start with '/' and name a key prefix, e.g. \"/signpost\"",
                c.prefix
            ),
        );
    }
    let down_quorum = match c.down_quorum.as_str() {
        "majority" => Quorum::Majority,
        "any" => Quorum::Any,
        "all" => Quorum::All,
        other => {
            errs.push(
                "cluster.down_quorum",
                format!("unknown quorum {other:?} (expected majority, any or all)"),
            );
            Quorum::Majority
        }
    };
    (errs.list.len() == before).then(|| Cluster {
        etcd: c.etcd.clone(),
        node,
        prefix,
        down_quorum,
    })
}
