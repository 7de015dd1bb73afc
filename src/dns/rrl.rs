//! Response rate limiting (`[server.rrl]`), BIND/NSD style, for UDP
//! answers: a client network that is sent too many identical responses
//! (or too many errors) has the excess dropped, except every `slip`th,
//! which goes out truncated so that a real client retries over TCP. This
//! blunts reflection attacks, where spoofed queries aim our answers at a
//! victim.
//!
//! The accounts live in one table shared by every UDP worker: a fixed
//! array of 64-bit words, each a whole account (tag, time, balance)
//! updated with one compare-and-swap, so the answer path takes no lock and
//! allocates nothing, and a client whose queries the kernel spreads over
//! several workers is still counted once. When the table is full the
//! stalest account of a small neighbourhood is reused: a flood of spoofed
//! networks can push accounts out early (they then start fresh, so the
//! worst case is answering more, never less).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use crate::model::{Limits, MAX_DEBT, MAX_RATE};
use crate::steer::dynamic::{mix, net_key};

/// Accounts in the table (a power of two): 1 MiB.
const SLOTS: usize = 1 << 17;
/// Accounts looked at for one key (the neighbourhood).
const WAYS: usize = 4;
/// Time is kept in sixteenths of a second.
const TICKS_PER_SEC: u64 = 16;
/// Balances are kept in sixteenths of a response, so that one tick of
/// refill at `r` responses per second is exactly `r` units.
const UNIT: i64 = 16;
/// Field widths of a packed account.
const TAG_BITS: u32 = 20;
const TIME_BITS: u32 = 20;
const BAL_BITS: u32 = 24;

// The configuration checks `rate × window` against `MAX_DEBT`, which
// must be what a balance of `BAL_BITS` in `UNIT`s can hold.
const _: () = assert!(MAX_DEBT == ((1 << (BAL_BITS - 1)) - 1) / UNIT as u64);

/// What to do with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limits: send it.
    Send,
    /// Over a limit.
    Limited,
}

/// The shared accounts.
#[derive(Debug)]
pub struct Table {
    slots: Box<[AtomicU64]>,
    epoch: Instant,
    /// Per process, so that the keys an attacker would need to make
    /// accounts collide cannot be computed offline.
    seed: u64,
}

impl Default for Table {
    fn default() -> Self {
        Table::new()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Account {
    tag: u32,
    time: u32,
    /// In `UNIT`s; negative is debt.
    balance: i32,
}

const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;
const BAL_MASK: u64 = (1 << BAL_BITS) - 1;

impl Account {
    fn pack(self) -> u64 {
        (u64::from(self.tag) & TAG_MASK) << (TIME_BITS + BAL_BITS)
            | (u64::from(self.time) & TIME_MASK) << BAL_BITS
            | (self.balance as u32 as u64 & BAL_MASK)
    }

    fn unpack(w: u64) -> Account {
        let raw = (w & BAL_MASK) as u32;
        // sign-extend the 24-bit balance
        let balance = ((raw << (32 - BAL_BITS)) as i32) >> (32 - BAL_BITS);
        Account {
            tag: ((w >> (TIME_BITS + BAL_BITS)) & TAG_MASK) as u32,
            time: ((w >> BAL_BITS) & TIME_MASK) as u32,
            balance,
        }
    }
}

/// Ticks from `then` to `now` on the wrapping 20-bit clock (18 hours).
fn elapsed(now: u32, then: u32) -> u64 {
    u64::from(now.wrapping_sub(then)) & TIME_MASK
}

impl Table {
    /// An empty table.
    pub fn new() -> Table {
        use std::hash::BuildHasher;
        // RandomState is keyed from the operating system's randomness
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x0072_726c_u64);
        Table {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
            seed,
        }
    }

    /// The table's clock; read once per batch of packets.
    pub fn now(&self) -> u32 {
        let t = self.epoch.elapsed().as_millis() as u64 * TICKS_PER_SEC / 1000;
        // 0 marks an unused account
        ((t & TIME_MASK) as u32).max(1)
    }

    /// Charges `response` (a complete DNS response about to go to `client`)
    /// to its account and says whether it may be sent.
    pub fn check(
        &self,
        limits: &Limits,
        now: u32,
        client: IpAddr,
        response: &[u8],
        wildcard: Option<u64>,
    ) -> Verdict {
        if limits
            .exempt
            .iter()
            .any(|n| n.contains(&client.to_canonical()))
        {
            return Verdict::Send;
        }
        let Some((key, rate)) = classify(limits, client, response, wildcard) else {
            return Verdict::Send;
        };
        self.charge(mix(key ^ self.seed), rate, limits.window, now)
    }

    fn charge(&self, key: u64, rate: u32, window: Duration, now: u32) -> Verdict {
        let rate = i64::from(rate.max(1));
        let cap = rate * UNIT;
        let window_secs = window.as_secs().max(1) as i64;
        let floor = -(rate * window_secs * UNIT).min(i64::from(i32::MAX >> (32 - BAL_BITS)));
        let tag = ((key >> 40) & TAG_MASK) as u32 | 1;
        let base = (key as usize) & (SLOTS - 1) & !(WAYS - 1);
        for _attempt in 0..4 {
            // find the account, or the stalest one to take over
            let mut pick = base;
            let mut found = None;
            let mut stalest = 0;
            for i in base..base + WAYS {
                let w = self.slots[i].load(Ordering::Relaxed);
                let a = Account::unpack(w);
                if w != 0 && a.tag == tag {
                    found = Some((i, w, a));
                    break;
                }
                let age = if w == 0 {
                    u64::MAX
                } else {
                    elapsed(now, a.time)
                };
                if age >= stalest {
                    stalest = age;
                    pick = i;
                }
            }
            let (slot, old, balance) = match found {
                Some((i, w, a)) => {
                    let refill = elapsed(now, a.time) as i64 * rate;
                    (i, w, (i64::from(a.balance) + refill).min(cap))
                }
                None => (pick, self.slots[pick].load(Ordering::Relaxed), cap),
            };
            let after = (balance - UNIT).max(floor);
            let verdict = if balance - UNIT >= 0 {
                Verdict::Send
            } else {
                Verdict::Limited
            };
            let new = Account {
                tag,
                time: now,
                balance: after as i32,
            }
            .pack();
            if self.slots[slot]
                .compare_exchange(old, new, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return verdict;
            }
        }
        // heavy contention on one account: let the response through
        Verdict::Send
    }
}

/// Cuts the response in `buf[..len]` down to its header and question, with
/// TC set and empty sections (a "slip"): a real client retries over TCP,
/// which is never limited, while a reflection victim gets a packet no
/// bigger than the query. Returns the new length.
pub fn slip(buf: &mut [u8], len: usize) -> usize {
    let r = &buf[..len.min(buf.len())];
    if r.len() < 12 {
        return r.len();
    }
    let mut end = 12;
    let qdcount = u16::from_be_bytes([r[4], r[5]]);
    if qdcount == 1 {
        let mut i = 12;
        end = loop {
            match r.get(i) {
                Some(0) if i + 5 <= r.len() => break i + 5,
                Some(&l) if (1..=63).contains(&l) => i += 1 + l as usize,
                _ => break 12,
            }
        };
    }
    buf[2] |= 0x02; // TC
    if end == 12 {
        buf[4..6].copy_from_slice(&[0, 0]);
    }
    buf[6..12].copy_from_slice(&[0; 6]);
    end
}

/// The account key and rate of a response, or None for one that is not
/// counted (too short to be a DNS response).
///
/// Answers are counted per client network, name and type (for a wildcard
/// expansion, the wildcard's name, as BIND does: random labels under a
/// wildcard would otherwise each get a fresh budget): responses to
/// the same question count as identical even when a weighted draw varied
/// the address, or a flood could spread itself over many accounts. Errors
/// (any rcode but NOERROR, and NOERROR without answers) are counted per
/// client network alone, so that a flood of random names shares one
/// account, as BIND's errors-per-second does.
fn classify(
    limits: &Limits,
    client: IpAddr,
    r: &[u8],
    wildcard: Option<u64>,
) -> Option<(u64, u32)> {
    if r.len() < 12 {
        return None;
    }
    let net = net_key(client, limits.prefix);
    let rcode = r[3] & 0x0f;
    let ancount = u16::from_be_bytes([r[6], r[7]]);
    let qdcount = u16::from_be_bytes([r[4], r[5]]);
    if rcode != 0 || ancount == 0 || qdcount != 1 {
        return Some((
            mix(net ^ 0x6572_726f_7273 ^ u64::from(rcode)),
            limits.errors,
        ));
    }
    // the question: labels, then type and class (never compressed here)
    let mut h = net ^ 0x616e_7377_6572;
    let mut i = 12;
    loop {
        let len = *r.get(i)? as usize;
        if len == 0 || len > 63 {
            break;
        }
        let label = r.get(i + 1..i + 1 + len)?;
        i += 1 + len;
        if wildcard.is_some() {
            continue; // counted by the wildcard, below
        }
        for chunk in label.chunks(8) {
            let mut w = [0u8; 8];
            for (d, s) in w.iter_mut().zip(chunk) {
                *d = s.to_ascii_lowercase();
            }
            h = mix(h ^ u64::from_le_bytes(w));
        }
        h = mix(h ^ len as u64);
    }
    if let Some(id) = wildcard {
        h = mix(h ^ 0x2a2e ^ id);
    }
    let qtype = r.get(i + 1..i + 3)?;
    h = mix(h ^ u64::from(u16::from_be_bytes([qtype[0], qtype[1]])) << 8);
    Some((h, limits.responses))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u32, window: u64) -> Limits {
        Limits {
            responses: rate,
            errors: 2,
            window: Duration::from_secs(window),
            slip: 2,
            prefix: (24, 56),
            exempt: vec!["10.9.0.0/16".parse().unwrap()],
        }
    }

    /// A NOERROR response with one answer to `name` A.
    fn answer(name: &str, rcode: u8, ancount: u16) -> Vec<u8> {
        let mut r = vec![0x12, 0x34, 0x84, rcode, 0, 1, 0, ancount as u8, 0, 0, 0, 0];
        for l in name.split('.').filter(|l| !l.is_empty()) {
            r.push(l.len() as u8);
            r.extend_from_slice(l.as_bytes());
        }
        r.extend_from_slice(&[0, 0, 1, 0, 1]);
        r
    }

    fn count_sent(t: &Table, l: &Limits, now: u32, ip: &str, r: &[u8], n: usize) -> usize {
        let ip: IpAddr = ip.parse().unwrap();
        (0..n)
            .filter(|_| t.check(l, now, ip, r, None) == Verdict::Send)
            .count()
    }

    #[test]
    fn a_slip_keeps_header_and_question_only() {
        let mut r = answer("www.example.com", 0, 1);
        let qlen = r.len();
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 1]);
        r[11] = 1; // pretend there is an additional record too
        let n = slip(&mut r, qlen + 16);
        assert_eq!(n, qlen);
        assert_eq!(r[2] & 0x02, 0x02, "TC set");
        assert_eq!(&r[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        // a response whose question is cut short keeps the header alone
        let mut cut = answer("www.example.com", 0, 1);
        let n = slip(&mut cut, 15);
        assert_eq!(n, 12);
        assert_eq!(&cut[4..12], &[0; 8]);
        let mut tiny = [0u8; 5];
        assert_eq!(slip(&mut tiny, 5), 5);
    }

    #[test]
    fn account_packing_round_trips() {
        for balance in [0, 1, -1, 12345, -(1 << 23), (1 << 23) - 1] {
            let a = Account {
                tag: 0xabcde,
                time: 0xfffff,
                balance,
            };
            assert_eq!(Account::unpack(a.pack()), a);
        }
    }

    #[test]
    fn a_burst_gets_one_seconds_worth() {
        let t = Table::new();
        let l = limits(10, 5);
        let r = answer("www.example.com", 0, 1);
        assert_eq!(count_sent(&t, &l, 100, "192.0.2.1", &r, 50), 10);
        // the same /24 shares the account
        assert_eq!(count_sent(&t, &l, 100, "192.0.2.200", &r, 5), 0);
        // another network, another name: their own accounts
        assert_eq!(count_sent(&t, &l, 100, "192.0.3.1", &r, 50), 10);
        let other = answer("api.example.com", 0, 1);
        assert_eq!(count_sent(&t, &l, 100, "192.0.2.1", &other, 50), 10);
        // names differ only in case: the same account
        let upper = answer("WWW.Example.COM", 0, 1);
        assert_eq!(count_sent(&t, &l, 100, "192.0.2.1", &upper, 5), 0);
    }

    #[test]
    fn the_debt_is_paid_back_at_the_rate_and_bounded_by_the_window() {
        let t = Table::new();
        let l = limits(10, 2);
        let r = answer("www.example.com", 0, 1);
        // a long flood: the balance sinks to -rate x window and no lower
        assert_eq!(count_sent(&t, &l, 100, "192.0.2.1", &r, 10_000), 10);
        // one second later (16 ticks): the debt of 20 is 10 smaller
        assert_eq!(count_sent(&t, &l, 116, "192.0.2.1", &r, 1), 0);
        // after the window plus a second of quiet, a full second's worth
        assert_eq!(count_sent(&t, &l, 116 + 3 * 16, "192.0.2.1", &r, 50), 10);
    }

    #[test]
    fn errors_share_one_account_per_network() {
        let t = Table::new();
        let l = limits(10, 5);
        let mut sent = 0;
        for i in 0..20 {
            let r = answer(&format!("nx{i}.example.com"), 3, 0);
            sent += count_sent(&t, &l, 100, "192.0.2.1", &r, 1);
        }
        assert_eq!(sent, 2, "errors_per_second applies over all names");
        // NODATA is an error too, and each kind of error has its own account
        let nodata = answer("www.example.com", 0, 0);
        assert_eq!(count_sent(&t, &l, 100, "192.0.2.9", &nodata, 10), 2);
        let refused = answer("www.example.com", 5, 0);
        assert_eq!(count_sent(&t, &l, 100, "192.0.2.9", &refused, 10), 2);
        assert_eq!(count_sent(&t, &l, 100, "192.0.2.9", &nodata, 10), 0);
    }

    #[test]
    fn exempt_networks_and_junk_are_never_limited() {
        let t = Table::new();
        let l = limits(1, 5);
        let r = answer("www.example.com", 0, 1);
        assert_eq!(count_sent(&t, &l, 100, "10.9.1.1", &r, 100), 100);
        assert_eq!(count_sent(&t, &l, 100, "::ffff:10.9.1.1", &r, 100), 100);
        assert_eq!(count_sent(&t, &l, 100, "192.0.2.1", &r[..5], 100), 100);
        // a cut-off question is not counted (and is no panic)
        let cut = &r[..r.len() - 3];
        assert_eq!(count_sent(&t, &l, 100, "192.0.2.1", cut, 100), 100);
    }

    #[test]
    fn ipv6_clients_are_grouped_by_their_prefix() {
        let t = Table::new();
        let l = limits(3, 5);
        let r = answer("www.example.com", 0, 1);
        assert_eq!(count_sent(&t, &l, 100, "2001:db8:0:1::1", &r, 10), 3);
        assert_eq!(count_sent(&t, &l, 100, "2001:db8:0:1:ffff::9", &r, 10), 0);
        assert_eq!(count_sent(&t, &l, 100, "2001:db8:0:100::1", &r, 10), 3);
    }

    #[test]
    fn the_clock_wraps_without_harm() {
        let t = Table::new();
        let l = limits(5, 2);
        let r = answer("www.example.com", 0, 1);
        let late = TIME_MASK as u32 - 2;
        assert_eq!(count_sent(&t, &l, late, "192.0.2.1", &r, 20), 5);
        // 8 ticks later across the wrap: half a second, 2.5 responses
        assert_eq!(count_sent(&t, &l, 5, "192.0.2.1", &r, 20), 0);
        assert_eq!(count_sent(&t, &l, 5 + 3 * 16 + 16, "192.0.2.1", &r, 20), 5);
    }
}
