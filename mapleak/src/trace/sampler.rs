//! Per-group bookkeeping of attached time, and estimates scaled interval by interval.

use std::collections::BTreeMap;

use super::{calibrate::HitCost, ratio::Ratio};
use crate::{
    catalogue::ProbeGroup,
    report::sampling::{GroupSampling, ScaledBy},
};

#[derive(Default)]
struct Totals {
    wall_ns: u64,
    attached_ns: u64,
    sampled: bool,
    hits: u64,
    observed_events: u64,
    observed_bytes: u64,
    /// Seen over every period with CPU figures, and over those periods: the target's own CPU
    /// time (less the probes') inside the windows and in all, wall time, and attached time.
    /// Summed over the trace, because at small shares a window can be further apart than a
    /// period: a period without one still had work in it, and a period attached throughout (the
    /// first stretch, say) is a window as good as any.
    sampled_events: u64,
    sampled_bytes: u64,
    own_inside_ns: f64,
    own_total_ns: f64,
    sampled_wall_ns: u64,
    sampled_attached_ns: u64,
    /// Bytes the target allocated over the sampled intervals and inside their windows; of no use
    /// once a sampled interval went without them.
    alloc_total: u64,
    alloc_inside: u64,
    alloc_missing: bool,
    /// Intervals without CPU figures (the target exited in them), scaled by wall time alone.
    wall_scaled_events: f64,
    wall_scaled_bytes: f64,
    /// Each attached stretch as one draw of events (and bytes) per unit of work, by allocation
    /// and by CPU time: the scatter behind the estimate's interval.
    events_by_alloc: Ratio,
    bytes_by_alloc: Ratio,
    events_by_cpu: Ratio,
    bytes_by_cpu: Ratio,
}

impl Totals {
    fn by_allocation(&self) -> bool {
        !self.alloc_missing && self.alloc_inside > 0
    }

    fn by_cpu(&self) -> bool {
        self.own_inside_ns > 0.0 && self.own_total_ns >= self.own_inside_ns
    }

    fn basis(&self) -> ScaledBy {
        if !self.sampled {
            ScaledBy::None
        } else if self.by_allocation() {
            ScaledBy::Allocation
        } else if self.by_cpu() {
            ScaledBy::Cpu
        } else {
            ScaledBy::Wall
        }
    }

    /// How many times the sampled intervals' events their whole span held.
    fn scale(&self) -> f64 {
        if self.by_allocation() {
            self.alloc_total as f64 / self.alloc_inside as f64
        } else if self.by_cpu() {
            self.own_total_ns / self.own_inside_ns
        } else {
            self.sampled_wall_ns as f64 / (self.sampled_attached_ns as f64).max(1.0)
        }
    }

    /// The 95 % interval of an estimate, from the draws of its basis (events or bytes); the
    /// observed count when nothing was sampled, `None` when the draws cannot tell.
    fn interval(
        &self,
        observed: u64,
        by_alloc: &Ratio,
        by_cpu: &Ratio,
        wall_scaled: f64,
    ) -> Option<(u64, u64)> {
        if !self.sampled {
            return Some((observed, observed));
        }
        let (lo, hi) = if self.by_allocation() {
            by_alloc.interval(self.alloc_total as f64)?
        } else if self.by_cpu() {
            by_cpu.interval(self.own_total_ns)?
        } else {
            return None;
        };
        // Never below what was seen: the interval is of what the windows imply.
        let lo = (lo + wall_scaled).round() as u64;
        Some((lo.max(observed), (hi + wall_scaled).round() as u64))
    }

    /// What the group would have seen attached throughout: exactly what it saw, when it was.
    fn estimate(&self, observed: u64, sampled: u64, wall_scaled: f64) -> u64 {
        if !self.sampled {
            return observed;
        }
        (sampled as f64 * self.scale() + wall_scaled).round() as u64
    }
}

pub struct Sampler {
    groups: BTreeMap<ProbeGroup, Totals>,
    /// Cost of one hit, to take the probes' own share out of the target's CPU time.
    cost: HitCost,
}

/// One interval of one group.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    pub wall_ns: u64,
    pub attached_ns: u64,
    /// Target CPU time in the interval, and in the part of it the group was attached.
    pub cpu_ns: u64,
    pub cpu_attached_ns: u64,
    /// Heap bytes the target allocated in the interval and while the group was attached, when
    /// the runtime's counter could be read at every switch.
    pub alloc: Option<(u64, u64)>,
    pub hits: u64,
}

impl Sampler {
    pub fn new(cost: HitCost) -> Self {
        Self {
            groups: BTreeMap::new(),
            cost,
        }
    }

    /// Records one interval of `group` in which `events`/`bytes` were observed.
    ///
    /// Events scale with the target's own work, not with wall time: while attached, the probes
    /// slow it down. So the estimate is the events per unit of work inside the windows times
    /// the work over every sampled interval. Work is the heap the target allocated where its
    /// runtime's counter is readable (the probes do not change it), else its CPU time less the
    /// probes' calibrated cost; without CPU figures, the attached share of wall time.
    pub fn record(&mut self, group: ProbeGroup, w: Window, (events, bytes): (u64, u64)) {
        let t = self.groups.entry(group).or_default();
        let attached_ns = w.attached_ns.min(w.wall_ns);
        t.wall_ns += w.wall_ns;
        t.attached_ns += attached_ns;
        t.hits += w.hits;
        t.observed_events += events;
        t.observed_bytes += bytes;
        if attached_ns < w.wall_ns {
            t.sampled = true;
        }
        if w.cpu_ns == 0 {
            let scale = w.wall_ns as f64 / (attached_ns as f64).max(1.0);
            t.wall_scaled_events += events as f64 * scale;
            t.wall_scaled_bytes += bytes as f64 * scale;
            return;
        }
        let probes = self.cost.of(w.hits);
        t.sampled_events += events;
        t.sampled_bytes += bytes;
        t.own_inside_ns += w.cpu_attached_ns as f64 - probes;
        t.own_total_ns += w.cpu_ns as f64 - probes;
        t.sampled_wall_ns += w.wall_ns;
        t.sampled_attached_ns += attached_ns;
        let own_inside = w.cpu_attached_ns as f64 - probes;
        t.events_by_cpu.add(events as f64, own_inside);
        t.bytes_by_cpu.add(bytes as f64, own_inside);
        match w.alloc {
            Some((total, inside)) => {
                t.events_by_alloc.add(events as f64, inside as f64);
                t.bytes_by_alloc.add(bytes as f64, inside as f64);
                t.alloc_total += total;
                t.alloc_inside += inside;
            }
            None => t.alloc_missing = true,
        }
        log::debug!("{group:?} sampled {w:?}: {events} events, probes {probes:.0} ns");
    }

    pub fn summary(&self) -> Vec<GroupSampling> {
        self.groups
            .iter()
            .map(|(group, t)| GroupSampling {
                group: *group,
                attached_fraction: if t.wall_ns == 0 {
                    1.0
                } else {
                    t.attached_ns as f64 / t.wall_ns as f64
                },
                sampled: t.sampled,
                hits: t.hits,
                observed_events: t.observed_events,
                estimated_events: t.estimate(
                    t.observed_events,
                    t.sampled_events,
                    t.wall_scaled_events,
                ),
                observed_bytes: t.observed_bytes,
                estimated_bytes: t.estimate(t.observed_bytes, t.sampled_bytes, t.wall_scaled_bytes),
                estimated_events_interval: t.interval(
                    t.observed_events,
                    &t.events_by_alloc,
                    &t.events_by_cpu,
                    t.wall_scaled_events,
                ),
                estimated_bytes_interval: t.interval(
                    t.observed_bytes,
                    &t.bytes_by_alloc,
                    &t.bytes_by_cpu,
                    t.wall_scaled_bytes,
                ),
                scaled_by: t.basis(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(
        wall_ns: u64,
        attached_ns: u64,
        cpu_ns: u64,
        cpu_attached_ns: u64,
        hits: u64,
    ) -> Window {
        Window {
            wall_ns,
            attached_ns,
            cpu_ns,
            cpu_attached_ns,
            alloc: None,
            hits,
        }
    }

    #[test]
    fn allocation_scales_without_the_probes_cost() {
        // A hit cost that is badly off changes nothing when allocation is known.
        let mut s = Sampler::new(HitCost::new(1e9));
        // Attached a tenth of the interval, in which the target allocated 1 MB of its 8 MB …
        s.record(
            ProbeGroup::Growth,
            Window {
                alloc: Some((8 << 20, 1 << 20)),
                ..window(1000, 100, 1000, 400, 50)
            },
            (50, 500),
        );
        // … and an interval between windows: 4 MB more, nothing seen.
        s.record(
            ProbeGroup::Growth,
            Window {
                alloc: Some((4 << 20, 0)),
                ..window(1000, 0, 1000, 0, 0)
            },
            (0, 0),
        );
        let g = &s.summary()[0];
        assert_eq!((g.estimated_events, g.estimated_bytes), (600, 6000));
        assert_eq!(g.scaled_by, ScaledBy::Allocation);
    }

    #[test]
    fn one_interval_without_allocation_figures_falls_back_to_cpu() {
        let mut s = Sampler::new(HitCost::new(10.0));
        s.record(
            ProbeGroup::Growth,
            Window {
                alloc: Some((8 << 20, 1 << 20)),
                ..window(1000, 100, 1100, 200, 10)
            },
            (10, 0),
        );
        s.record(ProbeGroup::Growth, window(1000, 0, 1000, 0, 0), (0, 0));
        let g = &s.summary()[0];
        assert_eq!((g.estimated_events, g.scaled_by), (200, ScaledBy::Cpu));
    }

    #[test]
    fn estimates_scale_by_the_targets_own_work() {
        let mut s = Sampler::new(HitCost::new(10.0));
        // Fully attached: 850 ns of the target's own work (900 less 5 hits × 10 ns), 17 events.
        s.record(
            ProbeGroup::Growth,
            window(1000, 1000, 900, 900, 5),
            (17, 170),
        );
        // Attached a quarter of the time; inside it the target did 100 ns of its own work plus
        // 20 hits × 10 ns of probes, out of 1 000 ns of own work in the interval (+ probes), and
        // saw 2 events: the same rate as before, 1 per 50 ns of work.
        s.record(
            ProbeGroup::Growth,
            window(1000, 250, 1200, 300, 20),
            (2, 20),
        );
        let g = &s.summary()[0];
        // 19 events in 950 ns of work seen; 1 850 ns of work done.
        assert_eq!((g.observed_events, g.estimated_events), (19, 37));
        assert_eq!((g.observed_bytes, g.estimated_bytes), (190, 370));
        assert!(g.sampled);
        assert!((g.attached_fraction - 0.625).abs() < 1e-12);
    }

    #[test]
    fn periods_without_a_window_are_scaled_by_what_the_attached_ones_saw() {
        let mut s = Sampler::new(HitCost::new(0.0));
        // The first stretch, attached throughout, then nine periods in a long gap.
        s.record(
            ProbeGroup::Growth,
            Window {
                alloc: Some((1_000, 1_000)),
                ..window(20, 20, 20, 20, 40)
            },
            (40, 400),
        );
        for _ in 0..9 {
            s.record(
                ProbeGroup::Growth,
                Window {
                    alloc: Some((5_000, 0)),
                    ..window(100, 0, 100, 0, 0)
                },
                (0, 0),
            );
        }
        let g = &s.summary()[0];
        // 40 events per 1 000 bytes allocated, over 46 000 bytes.
        assert_eq!(
            (g.estimated_events, g.scaled_by),
            (1840, ScaledBy::Allocation)
        );
    }

    #[test]
    fn an_interval_without_a_window_still_counts_its_work() {
        let mut s = Sampler::new(HitCost::new(10.0));
        // One window: 10 events in 100 ns of own work (plus 10 hits × 10 ns) …
        s.record(
            ProbeGroup::Growth,
            window(1000, 100, 1100, 200, 10),
            (10, 0),
        );
        // … then an interval between windows: 1 000 ns of work, nothing seen.
        s.record(ProbeGroup::Growth, window(1000, 0, 1000, 0, 0), (0, 0));
        // 10 events per 100 ns over 1 000 + 1 000 ns of own work.
        assert_eq!(s.summary()[0].estimated_events, 200);
    }

    #[test]
    fn without_cpu_figures_the_attached_share_scales() {
        let mut s = Sampler::new(HitCost::new(10.0));
        s.record(ProbeGroup::Growth, window(1000, 250, 0, 0, 0), (3, 30));
        assert_eq!(s.summary()[0].estimated_events, 12);
    }

    #[test]
    fn always_attached_is_exact() {
        let mut s = Sampler::new(HitCost::new(10.0));
        s.record(ProbeGroup::Gc, window(1000, 1000, 500, 500, 6), (2, 0));
        let g = &s.summary()[0];
        assert!(!g.sampled);
        assert_eq!((g.observed_events, g.estimated_events), (2, 2));
    }
}
