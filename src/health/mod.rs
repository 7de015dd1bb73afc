//! Health: probes report raw pass/fail ([`probe`]); the [`Tracker`] turns
//! them into up/down with `rise`/`fall` hysteresis; each target runs as one
//! task that probes on its own schedule and reports to the control loop.

pub mod probe;

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use probe::{ProbeResult, Prober};

use crate::state::Target;
use crate::steer::Rng;

/// Up/down state with hysteresis (pure logic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    /// Decided state.
    pub up: bool,
    passes: u32,
    fails: u32,
    rise: u32,
    fall: u32,
}

impl Tracker {
    /// A tracker starting in the state of its first probe, with the
    /// counters full so one contrary result does not flip it.
    pub fn new(up: bool, rise: u32, fall: u32) -> Tracker {
        Tracker {
            up,
            passes: if up { rise } else { 0 },
            fails: if up { 0 } else { fall },
            rise: rise.max(1),
            fall: fall.max(1),
        }
    }

    /// Records a probe result; true when the decided state changed.
    pub fn observe(&mut self, ok: bool) -> bool {
        if ok {
            self.fails = 0;
            self.passes = self.passes.saturating_add(1);
            if !self.up && self.passes >= self.rise {
                self.up = true;
                return true;
            }
        } else {
            self.passes = 0;
            self.fails = self.fails.saturating_add(1);
            if self.up && self.fails >= self.fall {
                self.up = false;
                return true;
            }
        }
        false
    }

    /// New thresholds (a reload changed them); the decided state and the
    /// counts so far stay.
    pub fn set_thresholds(&mut self, rise: u32, fall: u32) {
        self.rise = rise.max(1);
        self.fall = fall.max(1);
    }

    /// Delay from the start of the last probe to the next: a quarter
    /// interval after the first failure of an up target (rapid recheck:
    /// `fall` failures confirm a dead site sooner, the threshold stays).
    pub fn next_delay(&self, interval: Duration) -> Duration {
        if self.up && self.fails == 1 {
            interval / 4
        } else {
            interval
        }
    }
}

/// A probe outcome sent to the control loop.
#[derive(Debug, Clone)]
pub struct Report {
    /// Target id (unique for the process lifetime).
    pub id: u64,
    /// The probe.
    pub result: ProbeResult,
    /// Decided state after it.
    pub up: bool,
    /// True if this probe changed the state.
    pub changed: bool,
}

/// `d` scaled by a random factor in [0.9, 1.1].
pub fn jitter(d: Duration, rng: &mut Rng) -> Duration {
    let f = 0.9 + (rng.below(20_001) as f64) / 100_000.0;
    d.mul_f64(f)
}

/// Starts the probe loop of one target: first probe after `first_delay`,
/// then every interval (with jitter), reporting each result. A new
/// profile for the same target (a reload that changed only its timing)
/// arrives on `updates` and applies from the next probe, keeping the
/// decided state.
///
/// A prober that could not be built (`Err`) is built again before every
/// probe; until it is, each probe is a failure (the target stays down:
/// fail closed).
pub fn spawn_target(
    id: u64,
    prober: Result<Prober, probe::ProberError>,
    mut tracker: Tracker,
    first_delay: Duration,
    tx: mpsc::UnboundedSender<Report>,
    mut updates: watch::Receiver<Target>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut target = updates.borrow().clone();
        let mut prober = prober;
        let mut interval = target.check.interval;
        let mut rng =
            Rng::new(id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ Rng::from_entropy().next_u64());
        let mut last = Instant::now();
        let mut next = last + first_delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                changed = updates.changed() => {
                    if changed.is_err() {
                        return; // the target was removed
                    }
                    target = updates.borrow_and_update().clone();
                    tracker.set_thresholds(target.check.rise, target.check.fall);
                    interval = target.check.interval;
                    prober = Prober::new(target.clone());
                    if let Err(e) = &prober {
                        tracing::error!("{e}; retrying before every probe");
                    }
                    next = next.min(last + jitter(interval, &mut rng)).max(Instant::now());
                    continue;
                }
            }
            last = Instant::now();
            if prober.is_err() {
                prober = Prober::new(target.clone());
            }
            let result = match &prober {
                Ok(p) => p.probe().await,
                Err(e) => ProbeResult::not_probed(e.to_string()),
            };
            // a probe this host could not make says nothing of the endpoint
            let changed = !result.local && tracker.observe(result.ok);
            let delay = if result.local {
                interval / 4
            } else {
                tracker.next_delay(interval)
            };
            if tx
                .send(Report {
                    id,
                    result,
                    up: tracker.up,
                    changed,
                })
                .is_err()
            {
                return; // control loop gone: shutting down
            }
            next = (last + jitter(delay, &mut rng)).max(Instant::now());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis() {
        // (start up?, rise, fall, results, expected states after each)
        type Case = (bool, u32, u32, &'static [bool], &'static [bool]);
        let cases: &[Case] = &[
            (
                true,
                2,
                2,
                &[false, true, false, false],
                &[true, true, true, false],
            ),
            (
                true,
                2,
                3,
                &[false, false, false, true],
                &[true, true, false, false],
            ),
            (
                false,
                2,
                2,
                &[true, false, true, true],
                &[false, false, false, true],
            ),
            (false, 1, 1, &[true, false], &[true, false]),
            (true, 1, 1, &[true, false, true], &[true, false, true]),
        ];
        for (i, (start, rise, fall, results, want)) in cases.iter().enumerate() {
            let mut t = Tracker::new(*start, *rise, *fall);
            let got: Vec<bool> = results
                .iter()
                .map(|&ok| {
                    t.observe(ok);
                    t.up
                })
                .collect();
            assert_eq!(&got, want, "case {i}");
        }
    }

    #[test]
    fn transitions_are_reported_once() {
        let mut t = Tracker::new(true, 2, 2);
        assert!(!t.observe(false));
        assert!(t.observe(false));
        assert!(!t.observe(false));
        assert!(!t.observe(true));
        assert!(t.observe(true));
        assert!(!t.observe(true));
    }

    #[test]
    fn rapid_recheck_after_first_failure_only() {
        let iv = Duration::from_secs(4);
        let mut t = Tracker::new(true, 2, 3);
        assert_eq!(t.next_delay(iv), iv);
        t.observe(false);
        assert_eq!(t.next_delay(iv), Duration::from_secs(1));
        t.observe(false);
        assert_eq!(t.next_delay(iv), iv);
        t.observe(false);
        assert!(!t.up);
        assert_eq!(t.next_delay(iv), iv);
    }

    #[test]
    fn jitter_bounds() {
        let mut rng = Rng::new(7);
        for _ in 0..1000 {
            let d = jitter(Duration::from_secs(10), &mut rng);
            assert!(
                d >= Duration::from_secs(9) && d <= Duration::from_secs(11),
                "{d:?}"
            );
        }
    }
}
