//! When UDP GSO (Linux 4.18+: several equal-sized datagrams to one peer
//! handed to the kernel in one send) is used, and when it is given up for
//! a while.

use std::time::{Duration, Instant};

/// When UDP GSO is tried. A refusal can come from one destination (its
/// route's device cannot segment) or from the whole host (no kernel
/// support): the refused message is sent unsegmented either way, and only
/// a kernel without support, or refusals coming thick and fast, turn GSO
/// off, for a while that doubles at each relapse (1 s to 5 min); it is then
/// tried again.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
#[derive(Debug)]
pub(super) struct GsoPolicy {
    off_until: Option<Instant>,
    /// When GSO was last turned back on.
    back_on: Option<Instant>,
    backoff: Duration,
    window_start: Instant,
    recent: u32,
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
impl GsoPolicy {
    const FIRST_BACKOFF: Duration = Duration::from_secs(1);
    const MAX_BACKOFF: Duration = Duration::from_secs(300);
    /// Refusals within a second that turn GSO off.
    const BURST: u32 = 8;

    pub(super) fn new(now: Instant) -> GsoPolicy {
        GsoPolicy {
            off_until: None,
            back_on: None,
            backoff: Self::FIRST_BACKOFF,
            window_start: now,
            recent: 0,
        }
    }

    /// Whether to segment this batch (reads the clock only while off).
    pub(super) fn enabled(&mut self) -> bool {
        self.enabled_at(Instant::now)
    }

    fn enabled_at(&mut self, now: impl FnOnce() -> Instant) -> bool {
        match self.off_until {
            None => true,
            Some(t) if now() >= t => {
                self.off_until = None;
                self.back_on = Some(t);
                self.recent = 0;
                true
            }
            Some(_) => false,
        }
    }

    /// A GSO send was refused with `errno`: returns how long GSO is now
    /// off, or None if it stays on (the refusal looks like one client's).
    pub(super) fn refused(&mut self, errno: i32, now: Instant) -> Option<Duration> {
        if self.off_until.is_some() {
            return None;
        }
        if now.duration_since(self.window_start) > Duration::from_secs(1) {
            self.window_start = now;
            self.recent = 0;
        }
        self.recent += 1;
        let unsupported = matches!(errno, libc::ENOPROTOOPT | libc::EOPNOTSUPP);
        if !unsupported && self.recent < Self::BURST {
            return None;
        }
        if self
            .back_on
            .is_some_and(|t| now.duration_since(t) > 2 * Self::MAX_BACKOFF)
        {
            // the last relapse was long ago: start small again
            self.backoff = Self::FIRST_BACKOFF;
        }
        let off = self.backoff;
        self.off_until = Some(now + off);
        self.backoff = (off * 2).min(Self::MAX_BACKOFF);
        Some(off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_clients_refusals_keep_gso_on() {
        let t0 = Instant::now();
        let mut p = GsoPolicy::new(t0);
        for i in 0..GsoPolicy::BURST - 1 {
            assert_eq!(
                p.refused(libc::EIO, t0 + Duration::from_millis(i.into())),
                None
            );
            assert!(p.enabled_at(|| t0));
        }
        // a second later the count starts again
        let t1 = t0 + Duration::from_millis(1500);
        for _ in 0..GsoPolicy::BURST - 1 {
            assert_eq!(p.refused(libc::EINVAL, t1), None);
        }
        assert!(p.enabled_at(|| t1));
    }

    #[test]
    fn a_burst_or_no_kernel_support_turns_it_off_for_a_growing_while() {
        let t0 = Instant::now();
        let mut p = GsoPolicy::new(t0);
        let mut off = None;
        for _ in 0..GsoPolicy::BURST {
            off = p.refused(libc::EIO, t0);
        }
        assert_eq!(off, Some(Duration::from_secs(1)));
        assert!(!p.enabled_at(|| t0 + Duration::from_millis(999)));
        // tried again after the backoff; no support: off for twice as long
        let t1 = t0 + Duration::from_secs(1);
        assert!(p.enabled_at(|| t1));
        assert_eq!(
            p.refused(libc::EOPNOTSUPP, t1),
            Some(Duration::from_secs(2))
        );
        assert!(!p.enabled_at(|| t1 + Duration::from_millis(1999)));
        let mut t = t1 + Duration::from_secs(2);
        let mut last = Duration::ZERO;
        for _ in 0..20 {
            assert!(p.enabled_at(|| t));
            last = p.refused(libc::ENOPROTOOPT, t).unwrap();
            t += last;
        }
        assert_eq!(last, GsoPolicy::MAX_BACKOFF, "the backoff is capped");
        // after a long good spell a relapse starts small again
        assert!(p.enabled_at(|| t));
        let later = t + Duration::from_secs(3600);
        assert_eq!(
            p.refused(libc::EOPNOTSUPP, later),
            Some(Duration::from_secs(1))
        );
    }
}
