//! Per-group bookkeeping of attached time, and estimates scaled interval by interval.

use std::collections::BTreeMap;

use super::loader::ProbeGroup;
use crate::report::sampling::GroupSampling;

#[derive(Default)]
struct Totals {
    wall_ns: u64,
    attached_ns: u64,
    sampled: bool,
    hits: u64,
    observed_events: u64,
    observed_bytes: u64,
    estimated_events: f64,
    estimated_bytes: f64,
}

pub struct Sampler {
    groups: BTreeMap<ProbeGroup, Totals>,
    /// Cost of one hit, to take the probes' own share out of the target's CPU time.
    cost_ns: f64,
}

/// One interval of one group.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    pub wall_ns: u64,
    pub attached_ns: u64,
    /// Target CPU time in the interval, and in the part of it the group was attached.
    pub cpu_ns: u64,
    pub cpu_attached_ns: u64,
    pub hits: u64,
}

impl Sampler {
    pub fn new(cost_ns: f64) -> Self {
        Self {
            groups: BTreeMap::new(),
            cost_ns,
        }
    }

    /// Records one interval of `group` in which `events`/`bytes` were observed.
    ///
    /// Events scale with the target's own work, not with wall time: while attached, the probes
    /// slow it down. So the estimate is the events per CPU-ns of the target's own work inside
    /// the windows (their CPU time less the probes' cost) times that work over the interval.
    /// Without usable CPU figures it falls back to the attached share of wall time.
    pub fn record(&mut self, group: ProbeGroup, w: Window, (events, bytes): (u64, u64)) {
        let t = self.groups.entry(group).or_default();
        let attached_ns = w.attached_ns.min(w.wall_ns);
        t.wall_ns += w.wall_ns;
        t.attached_ns += attached_ns;
        t.hits += w.hits;
        t.observed_events += events;
        t.observed_bytes += bytes;
        if attached_ns >= w.wall_ns {
            t.estimated_events += events as f64;
            t.estimated_bytes += bytes as f64;
            return;
        }
        t.sampled = true;
        let probes = w.hits as f64 * self.cost_ns;
        let own_inside = w.cpu_attached_ns as f64 - probes;
        let own_total = w.cpu_ns as f64 - probes;
        let scale = if own_inside > 0.0 && own_total >= own_inside {
            own_total / own_inside
        } else {
            w.wall_ns as f64 / (attached_ns as f64).max(1.0)
        };
        t.estimated_events += events as f64 * scale;
        t.estimated_bytes += bytes as f64 * scale;
    }

    pub fn summary(&self) -> Vec<GroupSampling> {
        self.groups
            .iter()
            .map(|(group, t)| GroupSampling {
                group: match group {
                    ProbeGroup::Growth => "growth",
                    ProbeGroup::Gc => "gc",
                    ProbeGroup::Create => "create",
                    ProbeGroup::Assign => "assign",
                    ProbeGroup::Evacuate => "evacuate",
                },
                attached_fraction: if t.wall_ns == 0 {
                    1.0
                } else {
                    t.attached_ns as f64 / t.wall_ns as f64
                },
                sampled: t.sampled,
                hits: t.hits,
                observed_events: t.observed_events,
                estimated_events: t.estimated_events.round() as u64,
                observed_bytes: t.observed_bytes,
                estimated_bytes: t.estimated_bytes.round() as u64,
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
            hits,
        }
    }

    #[test]
    fn estimates_scale_by_the_targets_own_work() {
        let mut s = Sampler::new(10.0);
        // Fully attached: exact.
        s.record(
            ProbeGroup::Growth,
            window(1000, 1000, 900, 900, 5),
            (10, 100),
        );
        // Attached a quarter of the time; inside it the target did 100 ns of its own work plus
        // 20 hits × 10 ns of probes, out of 1 000 ns of own work in the interval (+ probes).
        s.record(
            ProbeGroup::Growth,
            window(1000, 250, 1200, 300, 20),
            (20, 200),
        );
        let g = &s.summary()[0];
        assert_eq!((g.observed_events, g.estimated_events), (30, 10 + 200));
        assert_eq!((g.observed_bytes, g.estimated_bytes), (300, 100 + 2000));
        assert!(g.sampled);
        assert!((g.attached_fraction - 0.625).abs() < 1e-12);
    }

    #[test]
    fn without_cpu_figures_the_attached_share_scales() {
        let mut s = Sampler::new(10.0);
        s.record(ProbeGroup::Growth, window(1000, 250, 0, 0, 0), (3, 30));
        assert_eq!(s.summary()[0].estimated_events, 12);
    }

    #[test]
    fn always_attached_is_exact() {
        let mut s = Sampler::new(10.0);
        s.record(ProbeGroup::Gc, window(1000, 1000, 500, 500, 6), (2, 0));
        let g = &s.summary()[0];
        assert!(!g.sampled);
        assert_eq!((g.observed_events, g.estimated_events), (2, 2));
    }
}
