//! The overhead governor: keeps what the probes cost the target under a budget by attaching an
//! expensive probe group only for part of each interval. Pure policy; the session applies it.

use std::collections::BTreeMap;

use super::calibrate::HitCost;
use crate::catalogue::ProbeGroup;

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
    /// The target's CPU time while the group was attached (0: not known).
    pub cpu_attached_ns: u64,
    /// Heap bytes the target allocated in the interval, and while the group was attached.
    pub alloc: Option<(u64, u64)>,
}

/// What the probes really cost, measured rather than modelled: the target's allocation rate
/// while a group is attached against while it is not. A probed program does the same work more
/// slowly, so the rate it loses is the share of its time the probes take — hits, traps, cache
/// and scheduling effects together, which the calibrated cost of one hit does not all see.
#[derive(Clone, Copy, Debug, Default)]
struct Measured {
    attached_ns: f64,
    detached_ns: f64,
    alloc_attached: f64,
    alloc_detached: f64,
    /// The modelled probe time (hits × calibrated cost) while attached.
    model_ns: f64,
}

/// Attached and detached time the measurement needs before it is believed.
const MEASURED_MIN_NS: f64 = 200_000_000.0;
/// How far the measurement may raise the model; it never lowers it.
const MAX_CORRECTION: f64 = 4.0;

impl Measured {
    fn add(&mut self, used: IntervalUse, wall_ns: u64, model_ns: f64) {
        let Some((total, attached)) = used.alloc else {
            return;
        };
        self.attached_ns += used.attached_ns as f64;
        self.detached_ns += wall_ns.saturating_sub(used.attached_ns) as f64;
        self.alloc_attached += attached as f64;
        self.alloc_detached += total.saturating_sub(attached) as f64;
        self.model_ns += model_ns;
    }

    /// By how much the modelled cost falls short of the measured one (1 when it does not, or
    /// when too little has been seen to tell).
    fn correction(&self) -> f64 {
        if self.attached_ns < MEASURED_MIN_NS
            || self.detached_ns < MEASURED_MIN_NS
            || self.alloc_detached <= 0.0
            || self.model_ns <= 0.0
        {
            return 1.0;
        }
        let attached_rate = self.alloc_attached / self.attached_ns;
        let detached_rate = self.alloc_detached / self.detached_ns;
        let lost = (1.0 - attached_rate / detached_rate).max(0.0);
        let modelled = self.model_ns / self.attached_ns;
        (lost / modelled).clamp(1.0, MAX_CORRECTION)
    }
}

pub struct Governor {
    /// Allowed probe cost as a share of the target's CPU time (0.01 = 1 %).
    budget: f64,
    /// Cost of one hit.
    cost: HitCost,
    fractions: BTreeMap<ProbeGroup, f64>,
    /// Shares fixed from outside (tests): these groups are switched on this schedule whatever
    /// they cost, and take no part in sharing the budget.
    forced: BTreeMap<ProbeGroup, f64>,
    /// What the probes have cost the target since attaching, and what the budget allowed of
    /// the target's own CPU time meanwhile: the difference, when positive, is paid back.
    spent_ns: f64,
    allowed_ns: f64,
    /// Each group's projected cost when it was last seen attached.
    last_seen: BTreeMap<ProbeGroup, f64>,
    measured: BTreeMap<ProbeGroup, Measured>,
}

impl Governor {
    pub fn new(budget: f64, cost: HitCost) -> Self {
        Self {
            budget,
            cost,
            fractions: BTreeMap::new(),
            forced: BTreeMap::new(),
            spent_ns: 0.0,
            allowed_ns: 0.0,
            last_seen: BTreeMap::new(),
            measured: BTreeMap::new(),
        }
    }

    /// Fixes `group`'s attached share, whatever it costs.
    pub fn force(mut self, group: ProbeGroup, share: f64) -> Self {
        self.forced.insert(group, share.clamp(MIN_FRACTION, 1.0));
        self
    }

    pub fn cost(&self) -> HitCost {
        self.cost
    }

    pub fn fraction(&self, group: ProbeGroup) -> f64 {
        self.fractions.get(&group).copied().unwrap_or(1.0)
    }

    /// The projected cost of the group if always attached, as a share of the target's own CPU
    /// time: the probe time its hits take per second attached, over the CPU the target uses per
    /// second when not probed (measured while the group was detached, else its CPU rate while
    /// attached: a busy target uses the same CPU either way, the probes only take part of it).
    /// Attached a share `s` of the time, the group costs about `s` × this.
    pub fn projected_overhead(&self, used: IntervalUse, cpu_ns: u64, wall_ns: u64) -> f64 {
        self.projected_with(used, cpu_ns, wall_ns, 1.0)
    }

    /// [`Governor::projected_overhead`] with the hits' modelled cost scaled by `correction`.
    fn projected_with(&self, used: IntervalUse, cpu_ns: u64, wall_ns: u64, correction: f64) -> f64 {
        if used.attached_ns == 0 || wall_ns == 0 {
            return 0.0;
        }
        let probe_rate = self.cost.of(used.hits) * correction / used.attached_ns as f64;
        let detached_ns = wall_ns.saturating_sub(used.attached_ns);
        let cpu_rate = if used.cpu_attached_ns > 0 && detached_ns >= used.attached_ns / 4 {
            cpu_ns.saturating_sub(used.cpu_attached_ns) as f64 / detached_ns as f64
        } else if used.cpu_attached_ns > 0 {
            used.cpu_attached_ns as f64 / used.attached_ns as f64
        } else {
            (cpu_ns as f64 - self.cost.of(used.hits)) / wall_ns as f64
        };
        probe_rate / cpu_rate.max(MIN_CPU_SHARE)
    }

    /// What is left of the budget for the next stretch of `next_own_ns` of the target's own CPU
    /// time, once what was overspent so far is paid back.
    fn budget_left(&self, next_own_ns: f64) -> f64 {
        let debt = (self.spent_ns - self.allowed_ns).max(0.0);
        if next_own_ns <= 0.0 {
            return if debt > 0.0 { 0.0 } else { self.budget };
        }
        (self.budget - debt / next_own_ns).max(0.0)
    }

    /// Sets every group's attached fraction for the next interval (`next_wall_ns` long) from the
    /// stretch that ended (`wall_ns`, in which the target used `cpu_ns` of CPU).
    ///
    /// The budget holds over the whole trace, not interval by interval: what the probes cost
    /// beyond it (in the first, fully attached stretch, or when a group turned busy) is taken
    /// out of the next intervals' budget. The groups share what is left: the cheapest are
    /// served first, in full when they fit their even share, and what they leave goes to the
    /// busier ones (water-filling), so that a quiet GC group does not strand half the budget.
    pub fn update_all(
        &mut self,
        used: &[(ProbeGroup, IntervalUse)],
        cpu_ns: u64,
        wall_ns: u64,
        next_wall_ns: u64,
    ) -> BTreeMap<ProbeGroup, f64> {
        for &(g, u) in used {
            let model = self.cost.of(u.hits);
            self.measured.entry(g).or_default().add(u, wall_ns, model);
        }
        let correction =
            |m: &BTreeMap<ProbeGroup, Measured>, g| m.get(&g).map_or(1.0, Measured::correction);
        let spent: f64 = used
            .iter()
            .map(|&(g, u)| self.cost.of(u.hits) * correction(&self.measured, g))
            .sum();
        let own = (cpu_ns as f64 - spent).max(0.0);
        self.spent_ns += spent;
        self.allowed_ns += self.budget * own;
        let next_own = if wall_ns == 0 {
            0.0
        } else {
            own / wall_ns as f64 * next_wall_ns as f64
        };
        let mut out = BTreeMap::new();
        // (group, projected cost, whether it was seen attached since the last judgement)
        let mut by_cost: Vec<(ProbeGroup, f64, bool)> = Vec::new();
        for &(g, u) in used {
            if let Some(&share) = self.forced.get(&g) {
                out.insert(g, share);
                continue;
            }
            if u.attached_ns > 0 {
                let overhead =
                    self.projected_with(u, cpu_ns, wall_ns, correction(&self.measured, g));
                log::debug!(
                    "governor: {g:?} correction {:.2}",
                    correction(&self.measured, g)
                );
                self.last_seen.insert(g, overhead);
                by_cost.push((g, overhead, true));
            } else {
                // Detached throughout: nothing new is known of it, and its share must not
                // grow on that account; what it cost when last seen is what it would cost.
                by_cost.push((g, self.last_seen.get(&g).copied().unwrap_or(0.0), false));
            }
        }
        by_cost.sort_by(|a, b| a.1.total_cmp(&b.1));
        // What was overspent is paid back by the busy groups that caused it: the ones that do
        // not fit their even share of the budget. A quiet group (the GC probes, a few hits a
        // cycle) keeps what it needs, or it would go blind to pay for another's flood.
        let mut left = self.budget;
        let debt = self.budget - self.budget_left(next_own);
        let mut debt_paid = false;
        for (i, &(group, overhead, seen)) in by_cost.iter().enumerate() {
            let mut share = left / (by_cost.len() - i) as f64;
            if overhead > share && !debt_paid {
                debt_paid = true;
                left = (left - debt).max(0.0);
                share = left / (by_cost.len() - i) as f64;
            }
            let allowed = if overhead <= share {
                left -= overhead;
                1.0
            } else {
                left -= share;
                if overhead > 0.0 {
                    (share / overhead).clamp(MIN_FRACTION, 1.0)
                } else {
                    MIN_FRACTION
                }
            };
            // Cut at once, recover by doubling: a quiet interval seen through a narrow window
            // may just have missed the busy part. Unseen, never grow.
            let growth = if seen { 2.0 } else { 1.0 };
            let fraction = allowed.min(growth * self.fraction(group));
            log::debug!("governor: {group:?} projected {overhead:.4} -> share {fraction:.4}");
            self.fractions.insert(group, fraction);
            out.insert(group, fraction);
        }
        out
    }

    /// [`Governor::update_all`] for a single group, the next interval as long as the last.
    #[cfg(test)]
    pub fn update(
        &mut self,
        group: ProbeGroup,
        used: IntervalUse,
        cpu_ns: u64,
        wall_ns: u64,
    ) -> f64 {
        self.update_all(&[(group, used)], cpu_ns, wall_ns, wall_ns)[&group]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    #[test]
    fn the_measured_loss_raises_the_model_never_lowers_it() {
        let model = 0.2 * 400.0 * MS as f64;
        let seen = |alloc_attached: u64| {
            let mut m = Measured::default();
            // 400 ms attached and 600 ms detached over a second; 600 MB allocated detached (1 MB
            // a millisecond).
            m.add(
                IntervalUse {
                    hits: 0,
                    attached_ns: 400 * MS,
                    cpu_attached_ns: 400 * MS,
                    alloc: Some((600_000_000 + alloc_attached, alloc_attached)),
                },
                SECOND,
                model,
            );
            m.correction()
        };
        // Attached, it allocated at half the rate: it lost half its time, the model said 20 %.
        assert!((seen(200_000_000) - 2.5).abs() < 1e-9);
        // Lost less than modelled: the model stands.
        assert_eq!(seen(380_000_000), 1.0);
        // An absurd loss is capped.
        assert_eq!(seen(0), MAX_CORRECTION);
        // Too little seen attached: no correction yet.
        let mut m = Measured::default();
        m.add(
            IntervalUse {
                hits: 0,
                attached_ns: 100 * MS,
                cpu_attached_ns: 100 * MS,
                alloc: Some((1_000, 0)),
            },
            SECOND,
            model,
        );
        assert_eq!(m.correction(), 1.0);
    }

    #[test]
    fn a_quiet_group_stays_attached() {
        let mut g = Governor::new(0.01, HitCost::new(12_000.0));
        // 10 hits a second on a target using a full CPU: 120 µs/s = 0.012 %.
        let used = IntervalUse {
            hits: 10,
            attached_ns: SECOND,
            cpu_attached_ns: SECOND,
            alloc: None,
        };
        assert_eq!(g.update(ProbeGroup::Growth, used, SECOND, SECOND), 1.0);
    }

    #[test]
    fn the_projection_weighs_the_hits_against_the_targets_cpu_rate() {
        let g = Governor::new(0.01, HitCost::new(12_000.0));
        // 10 000 hits × 12 µs = 0.12 s of probe in 0.5 s attached, and 0.25 s of CPU in the
        // 0.5 s detached: 0.24 s of probe per second attached against half a CPU.
        let used = IntervalUse {
            hits: 10_000,
            attached_ns: SECOND / 2,
            cpu_attached_ns: SECOND / 2,
            alloc: None,
        };
        let overhead = g.projected_overhead(used, 3 * SECOND / 4, SECOND);
        assert!((overhead - 0.24 / 0.5).abs() < 1e-9, "{overhead}");
        // Attached throughout: its CPU rate while attached stands in.
        let whole = IntervalUse {
            attached_ns: SECOND,
            cpu_attached_ns: SECOND / 2,
            ..used
        };
        let overhead = g.projected_overhead(whole, SECOND / 2, SECOND);
        assert!((overhead - 0.12 / 0.5).abs() < 1e-9, "{overhead}");
        // No CPU reading while attached: the interval's, less the probes'.
        let unmeasured = IntervalUse {
            cpu_attached_ns: 0,
            ..used
        };
        let overhead = g.projected_overhead(unmeasured, SECOND, SECOND);
        assert!((overhead - 0.24 / 0.88).abs() < 1e-9, "{overhead}");
    }

    #[test]
    fn within_budget_a_busy_group_gets_the_share_that_costs_the_budget() {
        let mut g = Governor::new(0.01, HitCost::new(12_000.0));
        // A stretch within the budget leaves no debt. 0.1 s attached, 75 hits = 0.9 ms of probe,
        // on a target using a whole CPU: 0.9 % of it if attached throughout.
        let used = IntervalUse {
            hits: 75,
            attached_ns: 100 * MS,
            cpu_attached_ns: 100 * MS,
            alloc: None,
        };
        let overhead = g.projected_overhead(used, SECOND, SECOND);
        assert!((overhead - 0.009).abs() < 1e-12, "{overhead}");
        let f = g.update(ProbeGroup::Growth, used, SECOND, SECOND);
        assert_eq!(f, 1.0);
        let busy = IntervalUse {
            hits: 7_500,
            attached_ns: 100 * MS,
            cpu_attached_ns: 100 * MS,
            alloc: None,
        };
        let overhead = g.projected_overhead(busy, SECOND, SECOND);
        let mut fresh = Governor::new(0.01, HitCost::new(12_000.0));
        // 90 ms of probe in 1 s of CPU: 9 % spent against 1 % allowed — a debt to pay back.
        let f = fresh.update(ProbeGroup::Growth, busy, SECOND, SECOND);
        assert_eq!(f, MIN_FRACTION);
        // A governor with no debt (an endless budget) gives it everything; with a budget of
        // 2 × the projection it gives half.
        let mut rich = Governor::new(2.0 * overhead, HitCost::new(12_000.0));
        rich.allowed_ns = 1e12;
        let f = rich.update(ProbeGroup::Growth, busy, SECOND, SECOND);
        assert_eq!(f, 1.0);
        let mut half = Governor::new(overhead / 2.0, HitCost::new(12_000.0));
        half.allowed_ns = 1e12;
        let f = half.update(ProbeGroup::Growth, busy, SECOND, SECOND);
        assert!((f - 0.5).abs() < 1e-9, "{f}");
    }

    /// A target that uses one CPU, each of whose seconds of own work, when probed, costs
    /// `weight` seconds of probe: what `share` of an interval attached does to it.
    fn probed_second(share: f64, weight: f64, hit_ns: f64) -> (IntervalUse, u64, f64, f64) {
        let attached = share * SECOND as f64;
        let own_attached = attached / (1.0 + weight);
        let probe = attached - own_attached;
        let own = own_attached + (SECOND as f64 - attached);
        let used = IntervalUse {
            hits: (probe / hit_ns).round() as u64,
            attached_ns: attached as u64,
            cpu_attached_ns: attached as u64,
            alloc: None,
        };
        (used, SECOND, probe, own)
    }

    #[test]
    fn the_budget_holds_over_the_whole_trace_first_stretch_included() {
        for (budget, weight) in [(0.01, 0.9), (0.001, 0.9), (0.1, 0.9), (0.01, 5.0)] {
            let hit_ns = 1_500.0;
            let mut g = Governor::new(budget, HitCost::new(hit_ns));
            // The first judgement comes after a fully attached 20 ms.
            let (mut used, _, mut spent, mut own) = probed_second(1.0, weight, hit_ns);
            used.hits /= 50;
            used.attached_ns /= 50;
            used.cpu_attached_ns /= 50;
            spent /= 50.0;
            own /= 50.0;
            let mut share = g.update_all(&[(ProbeGroup::Growth, used)], 20 * MS, 20 * MS, SECOND)
                [&ProbeGroup::Growth];
            for _ in 0..60 {
                let (used, cpu, probe, own_work) = probed_second(share, weight, hit_ns);
                spent += probe;
                own += own_work;
                share = g.update(ProbeGroup::Growth, used, cpu, SECOND);
            }
            let cost = spent / own;
            // Never above the budget, and not far below it: the budget is spent, not
            // squandered. Except under the floor share, which costs what it costs and cannot
            // pay back the first stretch.
            let floor = MIN_FRACTION * weight / (1.0 + weight);
            let ceiling = if budget > floor * 1.01 {
                budget
            } else {
                floor + 0.02 * SECOND as f64 * weight / (1.0 + weight) / own
            };
            assert!(cost <= ceiling * 1.02, "{budget} {weight}: cost {cost}");
            assert!(cost >= ceiling * 0.5, "{budget} {weight}: cost {cost}");
        }
    }

    #[test]
    fn a_smaller_budget_never_costs_more() {
        let hit_ns = 1_500.0;
        let cost = |budget: f64| {
            let mut g = Governor::new(budget, HitCost::new(hit_ns));
            let (mut spent, mut own, mut share) = (0.0, 0.0, 1.0);
            for _ in 0..20 {
                let (used, cpu, probe, own_work) = probed_second(share, 0.9, hit_ns);
                spent += probe;
                own += own_work;
                share = g.update(ProbeGroup::Growth, used, cpu, SECOND);
            }
            spent / own
        };
        let costs: Vec<f64> = [0.001, 0.01, 0.1].into_iter().map(cost).collect();
        assert!(costs.windows(2).all(|w| w[0] <= w[1]), "{costs:?}");
    }

    #[test]
    fn the_fraction_recovers_by_doubling_when_the_rate_falls() {
        let mut g = Governor::new(0.01, HitCost::new(12_000.0));
        g.fractions.insert(ProbeGroup::Growth, MIN_FRACTION);
        let calm = IntervalUse {
            hits: 1,
            attached_ns: SECOND / 200,
            cpu_attached_ns: SECOND / 200,
            alloc: None,
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
    fn a_debt_is_paid_by_the_busy_group_not_the_quiet_one() {
        let mut g = Governor::new(0.01, HitCost::new(1_500.0));
        // Growth flooded the first stretch; GC hit a few times (0.2 % of the CPU).
        let growth = IntervalUse {
            hits: 20_000,
            attached_ns: 100 * MS,
            cpu_attached_ns: 100 * MS,
            alloc: None,
        };
        let gc = IntervalUse {
            hits: 120,
            attached_ns: 100 * MS,
            cpu_attached_ns: 100 * MS,
            alloc: None,
        };
        let got = g.update_all(
            &[(ProbeGroup::Growth, growth), (ProbeGroup::Gc, gc)],
            100 * MS,
            100 * MS,
            100 * MS,
        );
        assert_eq!(got[&ProbeGroup::Growth], MIN_FRACTION);
        assert_eq!(got[&ProbeGroup::Gc], 1.0);
    }

    #[test]
    fn a_group_not_seen_attached_keeps_its_share() {
        let mut g = Governor::new(0.01, HitCost::new(1_500.0));
        g.allowed_ns = 1e12;
        let busy = IntervalUse {
            hits: 10_000,
            attached_ns: 100 * MS,
            cpu_attached_ns: 100 * MS,
            alloc: None,
        };
        let first = g.update(ProbeGroup::Growth, busy, SECOND, SECOND);
        assert!(first < 0.1, "{first}");
        // Slices in its gap: no new data, no growth of the share.
        for _ in 0..5 {
            let unseen = IntervalUse::default();
            assert_eq!(g.update(ProbeGroup::Growth, unseen, SECOND, SECOND), first);
        }
    }

    #[test]
    fn a_quiet_group_leaves_its_unused_budget_to_a_busy_one() {
        let mut g = Governor::new(0.01, HitCost::new(10_000.0));
        // No debt: the budget is shared, not paid back.
        g.allowed_ns = 1e12;
        // GC: 10 hits/s = 0.01 % of a CPU. Growth: 10 000 hits/s = 10 %.
        let gc = IntervalUse {
            hits: 10,
            attached_ns: SECOND,
            cpu_attached_ns: 2 * SECOND,
            alloc: None,
        };
        let growth = IntervalUse {
            hits: 10_000,
            attached_ns: SECOND,
            cpu_attached_ns: 2 * SECOND,
            alloc: None,
        };
        let got = g.update_all(
            &[(ProbeGroup::Growth, growth), (ProbeGroup::Gc, gc)],
            2 * SECOND,
            SECOND,
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
            cpu_attached_ns: 0,
            alloc: None,
        };
        let overhead = g.projected_overhead(used, 0, SECOND);
        assert!((overhead - 60_000.0 / (0.01 * SECOND as f64)).abs() < 1e-9);
    }

    #[test]
    fn forced_groups_keep_their_share_whatever_they_cost() {
        let mut g = Governor::new(0.01, HitCost::new(12_000.0)).force(ProbeGroup::Gc, 0.3);
        let flood = IntervalUse {
            hits: 50_000,
            attached_ns: SECOND,
            cpu_attached_ns: SECOND,
            alloc: None,
        };
        let got = g.update_all(
            &[(ProbeGroup::Gc, flood), (ProbeGroup::Growth, flood)],
            SECOND,
            SECOND,
            SECOND,
        );
        assert_eq!(got[&ProbeGroup::Gc], 0.3);
        assert_eq!(got[&ProbeGroup::Growth], MIN_FRACTION);
    }
}
