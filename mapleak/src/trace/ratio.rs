//! A ratio estimator with its error: the events seen per unit of work inside the windows, each
//! window one draw, scaled to all the work done. Its interval says how far the windows' rates
//! scatter, which a point estimate hides.

/// Sums over the draws `(y, w)`: what a window saw, and the work done in it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ratio {
    n: u64,
    y: f64,
    w: f64,
    yy: f64,
    ww: f64,
    yw: f64,
}

/// Two-sided 95 % quantiles of Student's t for 1 … 30 degrees of freedom (draws − 1): a few
/// windows say little about their own scatter. Beyond 30, the normal 1.96.
const T95: [f64; 30] = [
    12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23, 2.20, 2.18, 2.16, 2.14, 2.13,
    2.12, 2.11, 2.10, 2.09, 2.09, 2.08, 2.07, 2.07, 2.06, 2.06, 2.06, 2.05, 2.05, 2.05, 2.04,
];
const Z95: f64 = 1.96;

/// Fewer windows than this give no interval: their scatter is no measure of the phases a
/// program goes through between them (the Go compiler, traced for half a second at the
/// default budget, had three windows and an interval a quarter of the truth).
const MIN_DRAWS: u64 = 5;

/// The least half-width, as a share of the estimate: the windows' scatter leaves out what the
/// scaling itself gets wrong — events per byte allocated are not quite the same in and out of
/// the windows, and the allocation counter is read a little before the probes go on or off,
/// which matters more the busier the machine: up to 4.4 % of the truth on the churn fixture at
/// a 5 % share, with the machine's two cores building at the same time.
const SYSTEMATIC: f64 = 0.05;

impl Ratio {
    pub fn add(&mut self, y: f64, w: f64) {
        if w <= 0.0 {
            return;
        }
        self.n += 1;
        self.y += y;
        self.w += w;
        self.yy += y * y;
        self.ww += w * w;
        self.yw += y * w;
    }

    /// The 95 % interval of `y` over `total_work`, from the scatter of the draws' ratios
    /// (the usual linearised variance of a ratio estimator, with Student's t), never narrower
    /// than ±5 % of the estimate ([`SYSTEMATIC`]); `None` below [`MIN_DRAWS`] draws.
    pub fn interval(&self, total_work: f64) -> Option<(f64, f64)> {
        if self.n < MIN_DRAWS || self.w <= 0.0 {
            return None;
        }
        let n = self.n as f64;
        let r = self.y / self.w;
        // Σ (y_i − r w_i)², expanded over the sums kept.
        let residual = (self.yy - 2.0 * r * self.yw + r * r * self.ww).max(0.0);
        let mean_w = self.w / n;
        let var_r = residual / (n * (n - 1.0) * mean_w * mean_w);
        let point = r * total_work;
        let quantile = T95.get(self.n as usize - 2).copied().unwrap_or(Z95);
        let half = (quantile * var_r.sqrt() * total_work).max(SYSTEMATIC * point);
        Some(((point - half).max(0.0), point + half))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_at_one_rate_give_a_point() {
        let mut r = Ratio::default();
        for w in [10.0, 20.0, 30.0, 40.0, 50.0] {
            r.add(2.0 * w, w);
        }
        // No scatter: only the systematic margin, ±5 %.
        assert_eq!(r.interval(100.0), Some((190.0, 210.0)));
    }

    #[test]
    fn scattered_draws_give_an_interval_around_the_ratio() {
        let mut r = Ratio::default();
        // Rates 1 and 3 per unit of work, equal work: ratio 2, residuals ±10.
        for _ in 0..3 {
            r.add(10.0, 10.0);
            r.add(30.0, 10.0);
        }
        let (lo, hi) = r.interval(100.0).unwrap();
        // var_r = 6 · 100 / (6 · 5 · 10²) = 0.2; half = t(5) 2.57 · √0.2 · 100.
        let half = 2.57 * 0.2f64.sqrt() * 100.0;
        assert!(
            (lo - (200.0 - half)).abs() < 1e-9 && (hi - (200.0 + half)).abs() < 1e-9,
            "{lo} {hi}"
        );
        // Four draws say too little of the scatter; a window without work is no draw.
        let mut few = Ratio::default();
        for _ in 0..4 {
            few.add(5.0, 1.0);
        }
        few.add(5.0, 0.0);
        assert_eq!(few.interval(10.0), None);
    }
}
