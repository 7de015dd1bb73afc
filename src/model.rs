//! The ground floor: plain types and limits that both the configuration
//! and the answer path name, so that neither has to import the other.
//! `config` validates into them, `steer` and `dns` read them from the
//! snapshot. Nothing here imports from the rest of the crate.

use std::time::Duration;

use ipnet::IpNet;

/// How a service orders its regions (`policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Nearest region first.
    Geo,
    /// Random by region weight.
    Weighted,
    /// List order.
    Failover,
    /// Weighted rendezvous hashing of the client network.
    Hash,
    /// Random by spare capacity.
    LeastLoaded,
    /// Lowest smoothed probe latency first.
    Fastest,
}

impl Policy {
    /// Every policy, in the order the documentation lists them.
    pub const ALL: [Policy; 6] = [
        Policy::Geo,
        Policy::Weighted,
        Policy::Failover,
        Policy::Hash,
        Policy::LeastLoaded,
        Policy::Fastest,
    ];

    /// The name used in the config (and by explain).
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Geo => "geo",
            Policy::Weighted => "weighted",
            Policy::Failover => "failover",
            Policy::Hash => "hash",
            Policy::LeastLoaded => "least-loaded",
            Policy::Fastest => "fastest",
        }
    }

    /// The policy named `name` in the config, if there is one.
    pub fn from_name(name: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// What a service answers when every region is down (`when_all_down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenAllDown {
    /// Fail open: answer as if every non-drained endpoint were up.
    All,
    /// Answer NODATA.
    Nodata,
}

impl WhenAllDown {
    /// The name used in the config (and in the status).
    pub fn as_str(self) -> &'static str {
        match self {
            WhenAllDown::All => "all",
            WhenAllDown::Nodata => "nodata",
        }
    }
}

/// How endpoints are drawn inside a region (`select`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// By weight, without replacement.
    Weighted,
    /// Weighted rendezvous hashing of the client network.
    Hash,
    /// By weight times spare capacity.
    LeastLoaded,
    /// Those within the latency tolerance of the fastest, by weight.
    Fastest,
}

impl Select {
    /// Every way of drawing, in the order the documentation lists them.
    pub const ALL: [Select; 4] = [
        Select::Weighted,
        Select::Hash,
        Select::LeastLoaded,
        Select::Fastest,
    ];

    /// The name used in the config (and by explain).
    pub fn as_str(self) -> &'static str {
        match self {
            Select::Weighted => "weighted",
            Select::Hash => "hash",
            Select::LeastLoaded => "least-loaded",
            Select::Fastest => "fastest",
        }
    }

    /// The way of drawing named `name` in the config, if there is one.
    pub fn from_name(name: &str) -> Option<Select> {
        Select::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// Response rate limiting (`[server.rrl]`): the limits of one
/// configuration, compiled into a snapshot and applied by `dns::rrl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Identical responses per second per client network.
    pub responses: u32,
    /// Error responses per second per client network.
    pub errors: u32,
    /// How far back a flood is remembered: a balance goes no lower than
    /// `-rate × window`, so a network that flooded stays limited until it
    /// has been quiet for up to `window`.
    pub window: Duration,
    /// Every `slip`th limited response is sent truncated; 0 drops all.
    pub slip: u32,
    /// Client network prefixes (IPv4, IPv6).
    pub prefix: (u8, u8),
    /// Networks never limited.
    pub exempt: Vec<IpNet>,
}

/// Largest `rate × window` (in responses) an RRL account can owe: its
/// balance is a 24-bit signed field in sixteenths of a response
/// (`dns::rrl` asserts that it agrees).
pub const MAX_DEBT: u64 = ((1 << 23) - 1) / 16;
/// Largest RRL rate accepted (responses per second).
pub const MAX_RATE: u32 = 100_000;

/// Longest NSID signpost sends (keeps header, question and OPT within 512
/// bytes).
pub const MAX_NSID: usize = 128;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Policy::ALL {
            assert_eq!(Policy::from_name(p.as_str()), Some(p));
        }
        for s in Select::ALL {
            assert_eq!(Select::from_name(s.as_str()), Some(s));
        }
        assert_eq!(Policy::from_name("Geo"), None);
        assert_eq!(Select::from_name("failover"), None);
    }
}
