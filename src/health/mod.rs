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

/// Consecutive probes in one state that make a target steady: after
/// coming back it must stay up this many probes, or once down fail this
/// many in a row, before a return is confirmed at the rapid pace again
/// (the hold-down of a flapping target).
pub const STEADY_PROBES: u32 = 8;

/// Up/down state with hysteresis (pure logic), and the pace of the next
/// probe.
///
/// Going down takes `fall` consecutive failures and coming back `rise`
/// consecutive passes, always real probes. What changes is only how soon
/// the next probe comes ([`Tracker::next_delay`]):
///
/// - after the first failure of an up target, a quarter interval (rapid
///   recheck), so a dead site is confirmed sooner;
/// - after each pass of a down target, a quarter interval until `rise`
///   passes (rapid rise), so a site that is back is confirmed sooner. A
///   failure during the confirmation resets the count as always, and the
///   rest of that down period goes at the normal interval: an endpoint
///   that flaps gets no faster return than before.
/// - hold-down: a target that goes down again fewer than
///   [`STEADY_PROBES`] probes after coming back confirms its next rise at
///   the normal interval too. The rapid pace is earned back by being
///   steady: [`STEADY_PROBES`] consecutive failures while down (or that
///   many probes up before going down). So between two rapid returns an
///   endpoint has been steadily up or steadily down for at least
///   [`STEADY_PROBES`] probes: it cannot oscillate at the rapid pace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    /// Decided state.
    pub up: bool,
    passes: u32,
    fails: u32,
    rise: u32,
    fall: u32,
    /// While down: a rise may be confirmed at the rapid pace.
    rapid_rise: bool,
    /// While up: probes since it came up (saturating at [`STEADY_PROBES`]).
    up_probes: u32,
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
            rapid_rise: true,
            up_probes: STEADY_PROBES,
        }
    }

    /// Records a probe result; true when the decided state changed.
    pub fn observe(&mut self, ok: bool) -> bool {
        if self.up {
            self.up_probes = self.up_probes.saturating_add(1).min(STEADY_PROBES);
        }
        if ok {
            self.fails = 0;
            self.passes = self.passes.saturating_add(1);
            if !self.up && self.passes >= self.rise {
                self.up = true;
                self.up_probes = 0;
                return true;
            }
        } else {
            if !self.up && self.passes > 0 {
                // a rise that was being confirmed failed
                self.rapid_rise = false;
            }
            self.passes = 0;
            self.fails = self.fails.saturating_add(1);
            if self.up && self.fails >= self.fall {
                self.up = false;
                self.rapid_rise = self.up_probes >= STEADY_PROBES;
                return true;
            }
            if !self.up && self.fails >= STEADY_PROBES {
                self.rapid_rise = true;
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
    /// interval after the first failure of an up target (rapid recheck)
    /// and after each pass of a down target that may still rise rapidly
    /// (rapid rise); otherwise the interval. The thresholds stay: only
    /// the pace at which real probes confirm a change is faster.
    pub fn next_delay(&self, interval: Duration) -> Duration {
        let rapid = if self.up {
            self.fails == 1
        } else {
            self.passes > 0 && self.rapid_rise
        };
        if rapid { interval / 4 } else { interval }
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
    fn rapid_rise_confirms_with_real_passes() {
        let iv = Duration::from_secs(4);
        let quarter = Duration::from_secs(1);
        let mut t = Tracker::new(false, 3, 2);
        assert_eq!(t.next_delay(iv), iv, "down and failing: the interval");
        assert!(!t.observe(true));
        assert_eq!(t.next_delay(iv), quarter);
        assert!(!t.observe(true));
        assert!(!t.up, "two passes of three");
        assert_eq!(t.next_delay(iv), quarter);
        assert!(t.observe(true));
        assert!(t.up);
        assert_eq!(t.next_delay(iv), iv, "up and passing: the interval");
    }

    #[test]
    fn failed_confirmation_ends_the_rapid_pace() {
        let iv = Duration::from_secs(4);
        let mut t = Tracker::new(false, 2, 2);
        t.observe(true);
        assert_eq!(t.next_delay(iv), iv / 4);
        t.observe(false);
        assert_eq!(t.next_delay(iv), iv);
        t.observe(true);
        assert_eq!(
            t.next_delay(iv),
            iv,
            "this down period goes at the interval"
        );
        assert!(t.observe(true));
        // steady down again earns it back
        let mut t = Tracker::new(false, 2, 2);
        t.observe(true);
        t.observe(false);
        for _ in 2..STEADY_PROBES {
            t.observe(false);
            t.observe(true);
            assert_eq!(t.next_delay(iv), iv, "still flapping");
            t.observe(false);
        }
        for _ in 0..STEADY_PROBES {
            t.observe(false);
        }
        t.observe(true);
        assert_eq!(t.next_delay(iv), iv / 4, "steadily down: rapid again");
    }

    /// One probe of a simulated run.
    #[derive(Debug)]
    struct Step {
        ok: bool,
        up: bool,
        changed: bool,
        /// The delay before this probe was a quarter interval.
        after_rapid: bool,
    }

    /// Feeds `results` to `t`, one probe after another.
    fn run(t: &mut Tracker, results: impl IntoIterator<Item = bool>) -> Vec<Step> {
        let iv = Duration::from_secs(4);
        let mut after_rapid = false;
        results
            .into_iter()
            .map(|ok| {
                let changed = t.observe(ok);
                let step = Step {
                    ok,
                    up: t.up,
                    changed,
                    after_rapid,
                };
                after_rapid = t.next_delay(iv) < iv;
                step
            })
            .collect()
    }

    /// Indices of the probes that brought the target back after a rapid
    /// confirmation.
    fn rapid_returns(steps: &[Step]) -> Vec<usize> {
        let rising = |s: &Step| s.changed && s.up && s.after_rapid;
        (0..steps.len()).filter(|&i| rising(&steps[i])).collect()
    }

    #[test]
    fn flapping_does_not_come_back_rapidly() {
        // pass, fail, pass, fail...: never two passes in a row, never up
        let mut t = Tracker::new(false, 2, 2);
        let steps = run(&mut t, (0..200).map(|i| i % 2 == 0));
        assert!(steps.iter().all(|s| !s.up));
        // pass, pass, fail, fail...: the first return is rapid, then it
        // flapped (up for 3 probes) and every later return goes at the
        // interval
        let mut t = Tracker::new(false, 2, 2);
        let steps = run(&mut t, (0..200).map(|i| i % 4 < 2));
        assert_eq!(rapid_returns(&steps), vec![1]);
        assert_eq!(steps.iter().filter(|s| s.changed && s.up).count(), 50);
    }

    #[test]
    fn rapid_returns_are_bounded_and_thresholds_hold() {
        let mut rng = Rng::new(20);
        for case in 0..400 {
            let (rise, fall) = (1 + case % 4, 1 + (case / 4) % 4);
            // flap chance from rare to every probe
            let flip = 1 + rng.below(60);
            let mut ok = rng.below(2) == 0;
            let results: Vec<bool> = (0..300)
                .map(|_| {
                    if rng.below(100) < flip {
                        ok = !ok;
                    }
                    ok
                })
                .collect();
            let start = results[0];
            let mut t = Tracker::new(start, rise as u32, fall as u32);
            let steps = run(&mut t, results[1..].iter().copied());
            for (i, s) in steps.iter().enumerate().filter(|(_, s)| s.changed) {
                let need = if s.up { rise } else { fall } as usize;
                assert!(i + 1 >= need, "case {case}: probe {i} decided too early");
                assert!(
                    steps[i + 1 - need..=i].iter().all(|p| p.ok == s.up),
                    "case {case}: probe {i} changed without {need} real results"
                );
            }
            for w in rapid_returns(&steps).windows(2) {
                assert!(
                    w[1] - w[0] > STEADY_PROBES as usize,
                    "case {case}: rapid returns at probes {} and {}",
                    w[0],
                    w[1]
                );
            }
        }
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
