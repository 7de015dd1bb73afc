//! One worker's datagrams on their way through: received together by one
//! `recvmmsg`, answered one by one, then grouped so that equal-sized
//! answers to one peer leave as one UDP GSO send, and sent by one
//! `sendmmsg`.
//!
//! Everything here is allocated once per worker and reused for every
//! batch, and it is plain data: the kernel's own structures (message
//! headers, I/O vectors, socket addresses, control messages), with the
//! raw pointers they need, live in `mmsg.rs` and are built from a
//! [`Batch`] on each call.

use std::net::SocketAddr;
use std::ops::Range;

use super::{RECV_BUF, SEND_BUF};

/// Datagrams per `recvmmsg` (and most messages per `sendmmsg`).
pub(super) const BATCH: usize = 64;
/// Most datagrams in one UDP GSO send (the kernel's UDP_MAX_SEGMENTS).
const GSO_MAX_SEGMENTS: usize = 64;
/// Most bytes in one UDP GSO send (one IP datagram's worth).
const GSO_MAX_BYTES: usize = 65_000;

/// The local address a datagram arrived on (wildcard sockets), which its
/// answer must leave from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Local {
    /// Not reported (the socket is bound to one address).
    None,
    /// IPv4 address.
    V4([u8; 4]),
    /// IPv6 address and interface index.
    V6([u8; 16], u32),
}

/// What the kernel said about one received datagram.
#[derive(Debug, Clone, Copy)]
pub(super) struct Datagram {
    /// Bytes received.
    pub len: usize,
    /// Longer than the buffer (`MSG_TRUNC`): not answered.
    pub truncated: bool,
    /// The sender; None when it cannot be answered (not IP, or port 0).
    pub peer: Option<SocketAddr>,
    /// Where it arrived.
    pub local: Local,
}

/// An answer to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reply {
    /// The datagram answered: its index in the [`Batch`].
    pub slot: usize,
    /// Where the answer goes.
    pub peer: SocketAddr,
    /// The address it leaves from.
    pub local: Local,
    /// Its length: the answer is `answers[slot][..len]`.
    pub len: usize,
}

/// The buffers of one worker, for one batch at a time.
///
/// Index `i` means the `i`th datagram of the last receive, everywhere:
/// its bytes are `queries[i][..received[i].len]`, its answer is written
/// to `answers[i]`, and the kernel's arrays keep its sender's socket
/// address at `i`. `queries` and `answers` have [`BATCH`] entries;
/// `received` has one per datagram of the last receive (at most
/// [`BATCH`]). `replies` name their datagram by [`Reply::slot`]; after
/// [`Batch::group`] they are in sending order, and each range in `groups`
/// is a run of replies that leaves as one message.
pub(super) struct Batch {
    /// Receive buffers.
    pub queries: Box<[[u8; RECV_BUF]]>,
    /// The datagrams of the last receive.
    pub received: Vec<Datagram>,
    /// Answer buffers.
    pub answers: Box<[[u8; SEND_BUF]]>,
    /// Answers to send.
    pub replies: Vec<Reply>,
    /// Runs of `replies` that leave as one message each.
    pub groups: Vec<Range<usize>>,
}

impl Batch {
    /// Allocates every buffer; nothing is allocated afterwards.
    pub fn new() -> Batch {
        Batch {
            queries: vec![[0u8; RECV_BUF]; BATCH].into_boxed_slice(),
            received: Vec::with_capacity(BATCH),
            answers: vec![[0u8; SEND_BUF]; BATCH].into_boxed_slice(),
            replies: Vec::with_capacity(BATCH),
            groups: Vec::with_capacity(BATCH),
        }
    }

    /// Puts the replies in sending order and cuts them into `groups`.
    /// With `gso`, replies to the same peer from the same local address
    /// and of the same length join the first of them (up to the kernel's
    /// limits), so that they leave in one send; without, each reply is a
    /// group of its own. Otherwise the order of the replies is kept.
    pub fn group(&mut self, gso: bool) {
        group(&mut self.replies, &mut self.groups, gso);
    }
}

/// [`Batch::group`] on its parts: reorders `replies` in place (a member
/// found later is rotated to the end of its group, the others keeping
/// their order) and fills `groups`.
fn group(replies: &mut [Reply], groups: &mut Vec<Range<usize>>, gso: bool) {
    groups.clear();
    let mut start = 0;
    while start < replies.len() {
        let first = replies[start];
        let max = GSO_MAX_SEGMENTS.min(GSO_MAX_BYTES / first.len.max(1));
        let mut end = start + 1;
        if gso {
            for c in start + 1..replies.len() {
                if end - start >= max {
                    break;
                }
                let r = replies[c];
                if r.peer == first.peer && r.local == first.local && r.len == first.len {
                    replies[end..=c].rotate_right(1);
                    end += 1;
                }
            }
        }
        groups.push(start..end);
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(slot: usize, peer: &str, len: usize) -> Reply {
        Reply {
            slot,
            peer: peer.parse().unwrap(),
            local: Local::None,
            len,
        }
    }

    /// The slots of each group.
    fn grouped(replies: &mut [Reply], gso: bool) -> Vec<Vec<usize>> {
        let mut groups = Vec::new();
        group(replies, &mut groups, gso);
        groups
            .iter()
            .map(|g| replies[g.clone()].iter().map(|r| r.slot).collect())
            .collect()
    }

    #[test]
    fn equal_answers_to_one_peer_join_the_first() {
        let (a, b) = ("192.0.2.1:5000", "192.0.2.2:5000");
        let mut r = [
            reply(0, a, 100),
            reply(1, b, 100),
            reply(2, a, 100),
            reply(3, a, 90),
            reply(4, b, 100),
            reply(5, a, 100),
        ];
        assert_eq!(
            grouped(&mut r.clone(), true),
            [vec![0, 2, 5], vec![1, 4], vec![3]]
        );
        // without GSO every answer leaves on its own, in order
        assert_eq!(
            grouped(&mut r, false),
            (0..6).map(|i| vec![i]).collect::<Vec<_>>()
        );
    }

    #[test]
    fn different_ports_and_local_addresses_stay_apart() {
        let mut r = [
            reply(0, "192.0.2.1:5000", 100),
            reply(1, "192.0.2.1:5001", 100),
            Reply {
                local: Local::V4([127, 0, 0, 2]),
                ..reply(2, "192.0.2.1:5000", 100)
            },
            reply(3, "192.0.2.1:5000", 100),
        ];
        assert_eq!(grouped(&mut r, true), [vec![0, 3], vec![1], vec![2]]);
    }

    #[test]
    fn groups_stay_within_the_kernels_limits() {
        // UDP_MAX_SEGMENTS at most
        let n = GSO_MAX_SEGMENTS;
        let mut r: Vec<Reply> = (0..n + 6).map(|i| reply(i, "192.0.2.1:5000", 10)).collect();
        let g = grouped(&mut r, true);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0], (0..n).collect::<Vec<_>>());
        assert_eq!(g[1], (n..n + 6).collect::<Vec<_>>());
        // 65,000 bytes at most: 1232-byte answers go 52 to a send
        let mut r: Vec<Reply> = (0..60).map(|i| reply(i, "192.0.2.1:5000", 1232)).collect();
        let g = grouped(&mut r, true);
        assert_eq!(g.iter().map(Vec::len).collect::<Vec<_>>(), [52, 8]);
        // nothing to group
        assert!(grouped(&mut [], true).is_empty());
    }
}
