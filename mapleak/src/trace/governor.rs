//! The overhead governor: keeps what the probes cost the target under a budget by attaching an
//! expensive probe group only for part of each interval. Pure policy; the session applies it.

use std::collections::BTreeMap;

use super::{calibrate::HitCost, loader::ProbeGroup};

/// Never blind: even the busiest group stays attached this share of the time.
pub const MIN_FRACTION: f64 = 0.005;
/// CPU share assumed for a target that used almost none, so that an idle target cannot make a
/// handful of hits look ruinous.
const MIN_CPU_SHARE: f64 = 0.01;

/// What one group did during the interval that just ended.
#[derive(Clone, Copy, Debug, Default)]
pub struct IntervalUse {
    pub hits: u64,
    /// How long the group was attached.
    pub attached_ns: u64,
}

pub struct Governor {
    /// Allowed probe cost as a share of the target's CPU time (0.01 = 1 %).
    budget: f64,
    /// Cost of one hit.
    cost: HitCost,
    fractions: BTreeMap<ProbeGroup, f64>,
}

impl Governor {
    pub fn new(budget: f64, cost: HitCost) -> Self {
        Self {
            budget,
            cost,
            fractions: BTreeMap::new(),
        }
    }

    pub fn cost(&self) -> HitCost {
        self.cost
    }

    pub fn fraction(&self, group: ProbeGroup) -> f64 {
        self.fractions.get(&group).copied().unwrap_or(1.0)
    }

    /// The projected share of the target's CPU the group would cost if always attached.
    pub fn projected_overhead(&self, used: IntervalUse, cpu_ns: u64, wall_ns: u64) -> f64 {
        if used.attached_ns == 0 || wall_ns == 0 {
            return 0.0;
        }
        let probe_cost = self.cost.of(used.hits);
        let probe_ns_per_wall_ns = probe_cost / used.attached_ns as f64;
        // The target's own CPU share, without what the probes themselves added to it.
        let cpu_share = ((cpu_ns as f64 - probe_cost) / wall_ns as f64).max(MIN_CPU_SHARE);
        probe_ns_per_wall_ns / cpu_share
    }

    /// Sets every group's attached fraction for the next interval from the one that ended.
    ///
    /// The groups share one budget: the cheapest are served first, in full when they fit their
    /// even share, and what they leave goes to the busier ones (water-filling), so that a quiet
    /// GC group does not strand half the budget.
    pub fn update_all(
        &mut self,
        used: &[(ProbeGroup, IntervalUse)],
        cpu_ns: u64,
        wall_ns: u64,
    ) -> BTreeMap<ProbeGroup, f64> {
        let mut by_cost: Vec<(ProbeGroup, f64)> = used
            .iter()
            .map(|&(g, u)| (g, self.projected_overhead(u, cpu_ns, wall_ns)))
            .collect();
        by_cost.sort_by(|a, b| a.1.total_cmp(&b.1));
        let mut left = self.budget;
        let mut out = BTreeMap::new();
        for (i, &(group, overhead)) in by_cost.iter().enumerate() {
            let share = left / (by_cost.len() - i) as f64;
            let allowed = if overhead <= share {
                left -= overhead;
                1.0
            } else {
                left -= share;
                (share / overhead).clamp(MIN_FRACTION, 1.0)
            };
            // Cut at once, recover by doubling: a quiet interval seen through a narrow window
            // may just have missed the busy part.
            let fraction = allowed.min(2.0 * self.fraction(group));
            self.fractions.insert(group, fraction);
            out.insert(group, fraction);
        }
        out
    }

    /// [`Governor::update_all`] for a single group.
    #[cfg(test)]
    pub fn update(
        &mut self,
        group: ProbeGroup,
        used: IntervalUse,
        cpu_ns: u64,
        wall_ns: u64,
    ) -> f64 {
        self.update_all(&[(group, used)], cpu_ns, wall_ns)[&group]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_quiet_group_stays_attached() {
        let mut g = Governor::new(0.01, HitCost::new(12_000.0));
        // 10 hits a second on a target using a full CPU: 120 µs/s = 0.012 %.
        let used = IntervalUse {
            hits: 10,
            attached_ns: SECOND,
        };
        assert_eq!(g.update(ProbeGroup::Growth, used, SECOND, SECOND), 1.0);
    }

    #[test]
    fn a_busy_group_is_cut_to_the_budget() {
        let mut g = Governor::new(0.01, HitCost::new(12_000.0));
        // 40 000 hits while attached half a second, target using one CPU (probes included):
        // 80 000 hits/s × 12 µs = 0.96 s of probe per second of target CPU (0.52 s) …
        let used = IntervalUse {
            hits: 40_000,
            attached_ns: SECOND / 2,
        };
        let cpu = SECOND; // includes the 0.48 s the probes cost
        let overhead = g.projected_overhead(used, cpu, SECOND);
        assert!((overhead - 0.96 / 0.52).abs() < 1e-9, "{overhead}");
        let f = g.update(ProbeGroup::Growth, used, cpu, SECOND);
        assert!((f - 0.01 / overhead).abs() < 1e-12);
        // … so with that share attached the projected cost is the budget.
        assert!((f * overhead - 0.01).abs() < 1e-12);
        assert_eq!(g.fraction(ProbeGroup::Gc), 1.0);
    }

    #[test]
    fn the_fraction_is_floored_and_recovers_when_the_rate_falls() {
        let mut g = Governor::new(0.01, HitCost::new(12_000.0));
        let flood = IntervalUse {
            hits: 1_000_000,
            attached_ns: SECOND,
        };
        assert_eq!(
            g.update(ProbeGroup::Growth, flood, SECOND, SECOND),
            MIN_FRACTION
        );
        let calm = IntervalUse {
            hits: 1,
            attached_ns: SECOND / 200,
        };
        let mut f = MIN_FRACTION;
        for _ in 0..8 {
            let next = g.update(ProbeGroup::Growth, calm, SECOND, SECOND);
            assert_eq!(next, (2.0 * f).min(1.0));
            f = next;
        }
        assert_eq!(f, 1.0);
    }

    #[test]
    fn a_quiet_group_leaves_its_unused_budget_to_a_busy_one() {
        let mut g = Governor::new(0.01, HitCost::new(10_000.0));
        // GC: 10 hits/s = 0.01 % of a CPU. Growth: 10 000 hits/s = 10 %.
        let gc = IntervalUse {
            hits: 10,
            attached_ns: SECOND,
        };
        let growth = IntervalUse {
            hits: 10_000,
            attached_ns: SECOND,
        };
        let got = g.update_all(
            &[(ProbeGroup::Growth, growth), (ProbeGroup::Gc, gc)],
            2 * SECOND,
            SECOND,
        );
        assert_eq!(got[&ProbeGroup::Gc], 1.0);
        let gc_cost = g.projected_overhead(gc, 2 * SECOND, SECOND);
        let growth_cost = g.projected_overhead(growth, 2 * SECOND, SECOND);
        let f = got[&ProbeGroup::Growth];
        // Together exactly the budget: not half of it.
        assert!((gc_cost + f * growth_cost - 0.01).abs() < 1e-12, "{f}");
    }

    #[test]
    fn an_idle_target_is_not_over_charged() {
        let g = Governor::new(0.01, HitCost::new(12_000.0));
        // 5 hits on a target that used no CPU at all: judged against a 1 % CPU share.
        let used = IntervalUse {
            hits: 5,
            attached_ns: SECOND,
        };
        let overhead = g.projected_overhead(used, 0, SECOND);
        assert!((overhead - 60_000.0 / (0.01 * SECOND as f64)).abs() < 1e-9);
    }
}
