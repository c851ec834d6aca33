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

#[derive(Default)]
pub struct Sampler {
    groups: BTreeMap<ProbeGroup, Totals>,
}

impl Sampler {
    /// Records one interval of `group`: `events`/`bytes` were observed while attached for
    /// `attached_ns` of `wall_ns`.
    pub fn record(
        &mut self,
        group: ProbeGroup,
        (wall_ns, attached_ns): (u64, u64),
        hits: u64,
        (events, bytes): (u64, u64),
    ) {
        let t = self.groups.entry(group).or_default();
        t.wall_ns += wall_ns;
        t.attached_ns += attached_ns.min(wall_ns);
        t.hits += hits;
        t.observed_events += events;
        t.observed_bytes += bytes;
        let share = if wall_ns == 0 {
            1.0
        } else {
            (attached_ns.min(wall_ns) as f64 / wall_ns as f64).max(f64::EPSILON)
        };
        if share < 1.0 {
            t.sampled = true;
        }
        t.estimated_events += events as f64 / share;
        t.estimated_bytes += bytes as f64 / share;
    }

    pub fn summary(&self) -> Vec<GroupSampling> {
        self.groups
            .iter()
            .map(|(group, t)| GroupSampling {
                group: match group {
                    ProbeGroup::Growth => "growth",
                    ProbeGroup::Gc => "gc",
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

    #[test]
    fn estimates_scale_each_interval_by_its_own_share() {
        let mut s = Sampler::default();
        s.record(ProbeGroup::Growth, (1000, 1000), 5, (10, 100));
        s.record(ProbeGroup::Growth, (1000, 250), 5, (3, 30));
        let g = &s.summary()[0];
        assert_eq!((g.observed_events, g.estimated_events), (13, 10 + 12));
        assert_eq!((g.observed_bytes, g.estimated_bytes), (130, 100 + 120));
        assert!(g.sampled);
        assert!((g.attached_fraction - 0.625).abs() < 1e-12);
    }

    #[test]
    fn always_attached_is_exact() {
        let mut s = Sampler::default();
        s.record(ProbeGroup::Gc, (1000, 1000), 6, (2, 0));
        let g = &s.summary()[0];
        assert!(!g.sampled);
        assert_eq!((g.observed_events, g.estimated_events), (2, 2));
    }
}
