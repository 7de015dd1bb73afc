//! One webhook's queue, as plain data: events in the order they were
//! sent, at most `cap` of them. A push into a full queue drops the oldest
//! (the receiver has been away longest for it, and newer news matters
//! more); so does an event older than [`MAX_AGE`]. The delivery task
//! looks at the head, tries it, and removes it only once delivered: the
//! head blocks the rest, which is the ordering guarantee. Each event has
//! a sequence number, so that a head dropped while it was being tried is
//! not mistaken for its successor. Nothing here blocks or awaits.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::EventKind;

/// How long an event is retried before it is given up.
pub const MAX_AGE: Duration = Duration::from_secs(3600);

/// Fastest retry after a failure.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// Slowest retry.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// One event waiting for one webhook.
#[derive(Debug, Clone)]
pub struct Item {
    /// Its place in this queue.
    pub seq: u64,
    /// For `X-Signpost-Event`.
    pub kind: EventKind,
    /// The JSON body, shared by every webhook it goes to.
    pub body: Arc<[u8]>,
    /// `X-Signpost-Id`: the same on every try, for receivers to spot a
    /// delivery they already have (a timeout after the receiver took it).
    pub id: Arc<str>,
    /// When it was queued.
    pub queued: Instant,
}

/// A bounded queue that drops its oldest.
#[derive(Debug)]
pub struct Queue {
    items: VecDeque<Item>,
    cap: usize,
    next_seq: u64,
}

impl Queue {
    /// An empty queue of at most `cap` (at least 1) events.
    pub fn new(cap: usize) -> Queue {
        Queue {
            items: VecDeque::new(),
            cap: cap.max(1),
            next_seq: 0,
        }
    }

    /// Appends an event; returns how many old ones it dropped (0 or 1).
    pub fn push(
        &mut self,
        kind: EventKind,
        body: Arc<[u8]>,
        id: Arc<str>,
        queued: Instant,
    ) -> usize {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.items.push_back(Item {
            seq,
            kind,
            body,
            id,
            queued,
        });
        self.trim()
    }

    /// A new bound (a reload); returns how many old events it dropped.
    pub fn set_cap(&mut self, cap: usize) -> usize {
        self.cap = cap.max(1);
        self.trim()
    }

    fn trim(&mut self) -> usize {
        let over = self.items.len().saturating_sub(self.cap);
        self.items.drain(..over);
        over
    }

    /// The oldest event, to try.
    pub fn head(&self) -> Option<Item> {
        self.items.front().cloned()
    }

    /// Event `seq` was delivered: it leaves, if it is still the head (it
    /// may have been dropped meanwhile). True if it left.
    pub fn done(&mut self, seq: u64) -> bool {
        if self.items.front().is_some_and(|i| i.seq == seq) {
            self.items.pop_front();
            true
        } else {
            false
        }
    }

    /// Drops events queued more than [`MAX_AGE`] before `now` (they are
    /// at the front); returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let old = self
            .items
            .iter()
            .take_while(|i| now.saturating_duration_since(i.queued) > MAX_AGE)
            .count();
        self.items.drain(..old);
        old
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }
}

/// The wait before the next try after `failures` failures in a row
/// (at least 1): 0.5 s doubling to 30 s, each drawn between half of it
/// and all of it (`jitter` in 0..1), so receivers that came back are not
/// hit by every sender at once.
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let full = BACKOFF_FIRST
        .saturating_mul(1 << doublings)
        .min(BACKOFF_MAX);
    full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(q: &mut Queue, n: u8, at: Instant) -> usize {
        q.push(EventKind::Reload, Arc::from(vec![n]), Arc::from("id"), at)
    }

    fn bodies(q: &Queue) -> Vec<u8> {
        q.items.iter().map(|i| i.body[0]).collect()
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_keeps_the_order() {
        let now = Instant::now();
        let mut q = Queue::new(3);
        let dropped: usize = (1..=5).map(|n| push(&mut q, n, now)).sum();
        assert_eq!(dropped, 2);
        assert_eq!(bodies(&q), [3, 4, 5]);
        // a smaller bound drops from the front too
        assert_eq!(q.set_cap(1), 2);
        assert_eq!(bodies(&q), [5]);
        assert_eq!(q.set_cap(0), 0, "a bound of at least one");
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn only_the_head_that_was_tried_leaves() {
        let now = Instant::now();
        let mut q = Queue::new(2);
        push(&mut q, 1, now);
        push(&mut q, 2, now);
        let tried = q.head().unwrap();
        assert_eq!(tried.body[0], 1);
        // while it was being tried, a new event pushed it out
        push(&mut q, 3, now);
        assert!(!q.done(tried.seq), "not the head any more");
        assert_eq!(bodies(&q), [2, 3]);
        let next = q.head().unwrap();
        assert!(q.done(next.seq));
        assert!(!q.done(next.seq), "only once");
        assert_eq!(bodies(&q), [3]);
    }

    #[test]
    fn events_older_than_an_hour_are_given_up() {
        let start = Instant::now();
        let mut q = Queue::new(10);
        push(&mut q, 1, start);
        push(&mut q, 2, start + Duration::from_secs(60));
        assert_eq!(q.expire(start + MAX_AGE), 0);
        assert_eq!(q.expire(start + MAX_AGE + Duration::from_secs(1)), 1);
        assert_eq!(bodies(&q), [2]);
        assert_eq!(q.expire(start + MAX_AGE + Duration::from_secs(3600)), 1);
        assert_eq!(q.len(), 0);
        assert!(q.head().is_none());
    }

    #[test]
    fn backoff_doubles_to_thirty_seconds_with_jitter() {
        let ms = |f, j| backoff(f, j).as_millis();
        // (failures, jitter, wait in ms)
        let cases = [
            (1, 1.0, 500),
            (1, 0.0, 250),
            (2, 1.0, 1000),
            (3, 1.0, 2000),
            (6, 1.0, 16_000),
            (7, 1.0, 30_000),
            (7, 0.0, 15_000),
            (1000, 1.0, 30_000),
            (0, 1.0, 500),
            (1, 7.0, 500),
        ];
        for (f, j, want) in cases {
            assert_eq!(ms(f, j), want, "{f} failures, jitter {j}");
        }
        for f in 1..40 {
            assert!(backoff(f, 0.5) <= backoff(f + 1, 0.5), "never shorter");
        }
    }
}
