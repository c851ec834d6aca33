//! Mark assists by the stack that allocated: how many, how long each made its goroutine wait,
//! and how much of that was mark termination or parking. Bounded: a few counters and a sparse
//! histogram per distinct stack (the stack table itself is bounded).

use std::collections::BTreeMap;

use mapleak_common::{AssistEvent, StackRef};
use rustc_hash::FxHashMap as HashMap;

/// Buckets per doubling of the duration: a bucket spans 2^(1/16) ≈ 4.4 %, so a percentile read
/// from its middle is within about 2.2 % of the true value.
const BUCKETS_PER_OCTAVE: f64 = 16.0;

/// A histogram of durations on a log scale, keeping only the buckets that were hit: an assist
/// site sees from one to millions of calls, and most see few.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogHistogram {
    buckets: BTreeMap<u16, u64>,
    count: u64,
    max: u64,
}

impl LogHistogram {
    fn bucket(ns: u64) -> u16 {
        if ns <= 1 {
            return 0;
        }
        ((ns as f64).log2() * BUCKETS_PER_OCTAVE).floor() as u16
    }

    pub fn record(&mut self, ns: u64) {
        *self.buckets.entry(Self::bucket(ns)).or_default() += 1;
        self.count += 1;
        self.max = self.max.max(ns);
    }

    pub fn add(&mut self, other: &LogHistogram) {
        for (b, n) in &other.buckets {
            *self.buckets.entry(*b).or_default() += n;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (nearest rank): the middle of its bucket, never above the
    /// largest value seen; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (&b, &n) in &self.buckets {
            seen += n;
            if seen >= rank {
                let mid = ((f64::from(b) + 0.5) / BUCKETS_PER_OCTAVE).exp2();
                return (mid.round() as u64).min(self.max);
            }
        }
        self.max
    }
}

/// The assists one stack (or one call site, summed) made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssistStats {
    /// Assists that ran: stole credit, marked, or were parked.
    pub calls: u64,
    /// Calls that returned at once because the GC CPU limiter was on: no wait, no work, and the
    /// debt stays, so the next allocation calls again. Not in the times below.
    pub limiter_calls: u64,
    /// Wall time from entry to return, summed, and its distribution.
    pub total_ns: u64,
    pub durations: LogHistogram,
    /// Of `total_ns`: marking in `gcAssistAlloc1` (the runtime's own assist time), running
    /// `gcMarkDone` (mark termination, when this assist finished the mark) and parked waiting
    /// for credit. The rest is stealing credit and waiting to run again after yielding.
    pub work_ns: u64,
    pub mark_done_ns: u64,
    pub parked_ns: u64,
}

impl AssistStats {
    pub fn add(&mut self, other: &AssistStats) {
        self.calls += other.calls;
        self.limiter_calls += other.limiter_calls;
        self.total_ns += other.total_ns;
        self.work_ns += other.work_ns;
        self.durations.add(&other.durations);
        self.mark_done_ns += other.mark_done_ns;
        self.parked_ns += other.parked_ns;
    }

    fn record(&mut self, e: &AssistEvent) {
        if e.limiter != 0 {
            self.limiter_calls += 1;
            return;
        }
        self.calls += 1;
        self.total_ns += e.duration_ns;
        self.durations.record(e.duration_ns);
        // Nested in the assist, so never more than it: a clamp against a torn pairing.
        self.work_ns += e.work_ns.min(e.duration_ns);
        self.mark_done_ns += e.mark_done_ns.min(e.duration_ns);
        self.parked_ns += e.parked_ns.min(e.duration_ns);
    }
}

/// Totals over every stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AssistTotals {
    pub calls: u64,
    pub limiter_calls: u64,
    pub total_ns: u64,
    pub work_ns: u64,
    pub mark_done_ns: u64,
    pub parked_ns: u64,
}

#[derive(Default)]
pub struct Assists {
    by_stack: HashMap<StackRef, AssistStats>,
    totals: AssistTotals,
}

impl Assists {
    pub fn on_event(&mut self, e: &AssistEvent) {
        let mut one = AssistStats::default();
        one.record(e);
        let t = &mut self.totals;
        t.calls += one.calls;
        t.limiter_calls += one.limiter_calls;
        t.total_ns += one.total_ns;
        t.work_ns += one.work_ns;
        t.mark_done_ns += one.mark_done_ns;
        t.parked_ns += one.parked_ns;
        self.by_stack.entry(e.site).or_default().add(&one);
    }

    pub fn totals(&self) -> AssistTotals {
        self.totals
    }

    pub fn stacks(&self) -> impl Iterator<Item = (&StackRef, &AssistStats)> {
        self.by_stack.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assist(stack: i64, ns: u64, mark_done: u64, parked: u64, limiter: bool) -> AssistEvent {
        AssistEvent {
            duration_ns: ns,
            work_ns: ns / 2,
            mark_done_ns: mark_done,
            parked_ns: parked,
            limiter: limiter.into(),
            site: StackRef { stack_id: stack },
            ..Default::default()
        }
    }

    #[test]
    fn sums_by_stack_and_keeps_limiter_calls_out_of_the_times() {
        let mut a = Assists::default();
        a.on_event(&assist(1, 100_000, 0, 0, false));
        a.on_event(&assist(1, 30_000_000, 20_000_000, 0, false));
        a.on_event(&assist(2, 250_000, 0, 200_000, false));
        a.on_event(&assist(1, 5_000, 0, 0, true));
        let t = a.totals();
        assert_eq!(
            t,
            AssistTotals {
                calls: 3,
                limiter_calls: 1,
                total_ns: 30_350_000,
                work_ns: 15_175_000,
                mark_done_ns: 20_000_000,
                parked_ns: 200_000,
            }
        );
        let one = a.stacks().find(|(s, _)| s.stack_id == 1).unwrap().1;
        assert_eq!((one.calls, one.limiter_calls), (2, 1));
        assert_eq!(one.total_ns, 30_100_000);
        assert_eq!(one.durations.max(), 30_000_000);
    }

    #[test]
    fn nested_times_never_exceed_the_assist() {
        let mut a = Assists::default();
        a.on_event(&assist(1, 1_000, 5_000, 7_000, false));
        assert_eq!(
            (a.totals().mark_done_ns, a.totals().parked_ns),
            (1_000, 1_000)
        );
    }

    #[test]
    fn quantiles_are_within_the_bucket_width() {
        let mut h = LogHistogram::default();
        // 1..=1000 µs: P50 is 500 µs, P99 990 µs.
        for us in 1..=1000u64 {
            h.record(us * 1000);
        }
        let near = |got: u64, want: f64| (got as f64 / want - 1.0).abs() < 0.03;
        assert!(near(h.quantile(0.5), 500_000.0), "{}", h.quantile(0.5));
        assert!(near(h.quantile(0.99), 990_000.0), "{}", h.quantile(0.99));
        assert_eq!(h.quantile(1.0), 1_000_000.min(h.quantile(1.0)));
        assert_eq!(h.max(), 1_000_000);
        assert_eq!(LogHistogram::default().quantile(0.5), 0);
        // One value: every quantile is it, within the bucket, never above it.
        let mut one = LogHistogram::default();
        one.record(41_000_000);
        assert!(near(one.quantile(0.5), 41e6) && one.quantile(0.99) <= 41_000_000);
    }

    #[test]
    fn merged_histograms_count_both() {
        let (mut a, mut b) = (LogHistogram::default(), LogHistogram::default());
        a.record(10);
        b.record(1_000_000);
        b.record(2_000_000);
        a.add(&b);
        assert_eq!((a.count(), a.max()), (3, 2_000_000));
        assert!(a.quantile(0.34) >= 900_000);
    }
}
