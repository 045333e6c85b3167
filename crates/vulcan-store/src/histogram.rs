//! Log-scale duration buckets: percentiles within 5% in constant space.

/// Each bucket's upper bound is 5% above the previous one's.
const GROWTH: f64 = 1.05;

/// Percentiles from bucket counts, as stored in the `duration_buckets` table.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DurationHistogram {
    /// (bucket, count), any order.
    buckets: Vec<(i64, u64)>,
}

impl DurationHistogram {
    /// The bucket a duration falls in.
    pub fn bucket_of(duration_ms: u64) -> i64 {
        ((duration_ms as f64 + 1.0).ln() / GROWTH.ln()).ceil() as i64
    }

    /// The largest duration a bucket can hold.
    pub fn upper_bound(bucket: i64) -> f64 {
        (GROWTH.powi(bucket as i32) - 1.0).max(0.0)
    }

    pub fn add(&mut self, bucket: i64, count: u64) {
        self.buckets.push((bucket, count));
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|(_, n)| n).sum()
    }

    /// The `q`-quantile (0 < q ≤ 1) as the upper bound of the bucket holding it, or 0 when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let mut sorted = self.buckets.clone();
        sorted.sort_unstable();
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (bucket, n) in sorted {
            seen += n;
            if seen >= rank {
                return (Self::upper_bound(bucket) * 100.0).round() / 100.0;
            }
        }
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_is_never_above_its_buckets_bound_nor_5_percent_below_it() {
        for ms in [0u64, 1, 2, 3, 10, 99, 100, 1_000, 12_345, 3_600_000] {
            let bound = DurationHistogram::upper_bound(DurationHistogram::bucket_of(ms));
            assert!(bound + 1e-9 >= ms as f64, "{ms} above {bound}");
            assert!(
                (bound + 1.0) <= (ms as f64 + 1.0) * GROWTH + 1e-9,
                "{ms} far below {bound}"
            );
        }
    }

    #[test]
    fn quantiles_come_from_the_right_bucket() {
        let mut h = DurationHistogram::default();
        for ms in 1..=100u64 {
            h.add(DurationHistogram::bucket_of(ms), 1);
        }
        let p50 = h.quantile(0.5);
        let p95 = h.quantile(0.95);
        assert!((50.0..=53.6).contains(&p50), "p50 {p50}");
        assert!((95.0..=100.8).contains(&p95), "p95 {p95}");
        assert_eq!(DurationHistogram::default().quantile(0.5), 0.0);
    }
}
