//! RFC 2544 throughput: the highest offered rate at which a trial loses
//! nothing, found by binary search between 0 and the line rate.

use serde::{Deserialize, Serialize};

/// One trial of the search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Offered rate the trial achieved, frames per second (a generator may
    /// fall short of the rate asked for; this is what counts).
    pub rate: f64,
    /// Frames sent and received in the trial.
    pub sent: u64,
    pub received: u64,
}

impl Trial {
    pub fn lossless(&self) -> bool {
        self.sent > 0 && self.received >= self.sent
    }
}

/// The search's answer and the trials that led to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Highest achieved rate of a lossless trial (0 if every trial lost).
    pub rate: f64,
    pub trials: Vec<Trial>,
}

/// Searches `[0, max_rate]`: a trial at `max_rate` first, then halving the
/// interval until it is narrower than `resolution * max_rate` or `max_trials`
/// ran. `run(rate)` performs one trial asking for `rate` and reports the
/// rate it achieved.
pub fn search(
    max_rate: f64,
    resolution: f64,
    max_trials: usize,
    mut run: impl FnMut(f64) -> Trial,
) -> Throughput {
    let mut trials = Vec::new();
    let first = run(max_rate);
    trials.push(first);
    if first.lossless() {
        return Throughput {
            rate: first.rate,
            trials,
        };
    }
    let (mut low, mut high) = (0.0, max_rate);
    while trials.len() < max_trials && high - low > resolution * max_rate {
        let middle = (low + high) / 2.0;
        let trial = run(middle);
        trials.push(trial);
        if trial.lossless() {
            low = middle;
        } else {
            high = middle;
        }
    }
    let rate = trials
        .iter()
        .filter(|t| t.lossless())
        .map(|t| t.rate)
        .fold(0.0, f64::max);
    Throughput { rate, trials }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that forwards everything up to `capacity` frames/s and
    /// drops the excess.
    fn device(capacity: f64) -> impl FnMut(f64) -> Trial {
        move |rate| {
            let sent = rate as u64;
            let received = sent.min(capacity as u64);
            Trial {
                rate,
                sent,
                received,
            }
        }
    }

    #[test]
    fn finds_the_capacity_within_the_resolution() {
        let result = search(10_000_000.0, 0.01, 20, device(3_300_000.0));
        assert!(result.rate <= 3_300_000.0, "{}", result.rate);
        assert!(result.rate >= 3_300_000.0 - 100_000.0, "{}", result.rate);
        assert!(result.trials.iter().all(|t| t.rate <= 10_000_000.0));
    }

    #[test]
    fn the_answer_is_the_rate_achieved_not_the_rate_asked() {
        // A generator that reaches only 60 % of what it is asked for.
        let result = search(1_000_000.0, 0.01, 20, |asked| {
            let rate = asked * 0.6;
            let sent = rate as u64;
            Trial {
                rate,
                sent,
                received: sent.min(300_000),
            }
        });
        assert!(
            result.rate <= 300_000.0 && result.rate > 290_000.0,
            "{}",
            result.rate
        );
    }

    #[test]
    fn a_device_faster_than_the_line_needs_one_trial() {
        let result = search(1_000_000.0, 0.01, 20, device(5_000_000.0));
        assert_eq!(result.rate, 1_000_000.0);
        assert_eq!(result.trials.len(), 1);
    }

    #[test]
    fn the_trial_budget_is_respected_and_losing_everywhere_gives_zero() {
        let result = search(1_000_000.0, 0.0001, 5, |rate| Trial {
            rate,
            sent: 10,
            received: 9,
        });
        assert_eq!(result.trials.len(), 5);
        assert_eq!(result.rate, 0.0);
    }
}
