//! Medians, ranges and pair-by-pair ratios (bench-method: "quote medians and
//! the min-max range, and the ratio xbridge / kernel pair by pair").

use serde::{Deserialize, Serialize};

/// A median with the range it came from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// The median of `values` (mean of the middle two for an even count);
/// `None` when empty or when a value is not a number.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let middle = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    })
}

/// Median, min and max of `values`.
pub fn spread(values: &[f64]) -> Option<Spread> {
    let median = median(values)?;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some(Spread { median, min, max })
}

/// Ratios `a[i] / b[i]` of measurements taken in pairs; pairs with a zero or
/// missing denominator are left out.
pub fn pair_ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter(|(_, b)| **b > 0.0 && b.is_finite())
        .map(|(a, b)| a / b)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn spread_has_the_range() {
        let s = spread(&[5.0, 1.0, 9.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (5.0, 1.0, 9.0));
    }

    #[test]
    fn ratios_are_taken_pair_by_pair() {
        // Pair-by-pair, not ratio of medians: the second pair ran on a
        // slower moment for both, its ratio is still 2.
        assert_eq!(
            pair_ratios(&[4.0, 2.0, 6.0], &[2.0, 1.0, 0.0]),
            vec![2.0, 2.0]
        );
        let s = spread(&pair_ratios(&[3.0, 4.0, 10.0], &[1.0, 2.0, 4.0])).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 2.0, 3.0));
    }
}
