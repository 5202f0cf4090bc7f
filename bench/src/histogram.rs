//! The sink's latency histogram: the bucket layout of `latency_bucket()` in
//! `ebpf/c/xbridge_bench.bpf.c`, and percentiles from bucket counts.
//!
//! Layout: values below 32 ns have a bucket each; above, every power of two
//! [2^m, 2^(m+1)) is split into 16 equal sub-buckets.

/// Buckets in the histogram (`HIST_BUCKETS` in C).
pub const BUCKETS: usize = 512;

/// The bucket a latency of `ns` falls in (the C function, for tests and
/// tools).
pub fn bucket_of(ns: u64) -> usize {
    if ns < 32 {
        return ns as usize;
    }
    let msb = 63 - ns.leading_zeros() as u64;
    let bucket = 32 + (msb - 5) * 16 + ((ns >> (msb - 4)) & 15);
    (bucket as usize).min(BUCKETS - 1)
}

/// The values `[low, high)` bucket `index` holds.
pub fn bucket_bounds(index: usize) -> (u64, u64) {
    if index < 32 {
        return (index as u64, index as u64 + 1);
    }
    let step = (index - 32) as u64;
    let msb = step / 16 + 5;
    let sub = step % 16;
    let width = 1u64 << (msb - 4);
    let low = (1u64 << msb) + sub * width;
    (low, low + width)
}

/// The `quantile` (0..=1) of the recorded values, as the upper bound of the
/// bucket that holds it (a conservative latency figure). `None` if empty.
pub fn percentile(counts: &[u64], quantile: f64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    // The rank of the value wanted, 1-based: ceil(q * total), at least 1.
    let rank = ((quantile.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (index, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(bucket_bounds(index).1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_the_line_without_gaps() {
        let mut expected_low = 0;
        for index in 0..BUCKETS - 1 {
            let (low, high) = bucket_bounds(index);
            assert_eq!(low, expected_low, "bucket {index}");
            assert!(high > low);
            expected_low = high;
        }
    }

    #[test]
    fn values_land_in_the_bucket_that_bounds_them() {
        for ns in [
            0u64,
            1,
            31,
            32,
            33,
            47,
            48,
            63,
            64,
            100,
            1000,
            12_345,
            999_999,
            5_000_000_000,
        ] {
            let (low, high) = bucket_bounds(bucket_of(ns));
            assert!(low <= ns && ns < high, "{ns} in [{low}, {high})");
        }
        // sub-buckets are at most 1/16 of the value wide
        let (low, high) = bucket_bounds(bucket_of(10_000));
        assert!((high - low) as f64 / low as f64 <= 1.0 / 16.0);
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut counts = vec![0u64; BUCKETS];
        // 990 values at 10 ns, 9 at 1000 ns, 1 at 100 us
        counts[bucket_of(10)] += 990;
        counts[bucket_of(1000)] += 9;
        counts[bucket_of(100_000)] += 1;
        assert_eq!(percentile(&counts, 0.5), Some(11));
        assert_eq!(percentile(&counts, 0.99), Some(11));
        let p999 = percentile(&counts, 0.999).unwrap();
        assert!((1000..=1064).contains(&p999), "{p999}");
        let max = percentile(&counts, 1.0).unwrap();
        assert!((100_000..=106_496).contains(&max), "{max}");
        assert_eq!(percentile(&vec![0; BUCKETS], 0.5), None);
    }
}
