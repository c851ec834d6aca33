//! What the GC cost over the trace, from the runtime's own accounting of each cycle, and how
//! much of it the maps' growth accounts for.
//!
//! A cycle starts once the heap has grown from what the last cycle left live towards the next
//! goal, so each cycle lets about a runway of allocation through: `goal − live`, less the
//! margin the pacer keeps by triggering before the goal. `B` bytes of allocation therefore
//! account for about `B / runway` cycles. mapleak takes the runway as the median of what the
//! process allocated from one cycle's end to the next (`totalAlloc`, read with each cycle),
//! which includes the pacer's margin and shrugs off the odd forced cycle; without two
//! consecutive cycles read, as the median of each cycle's goal less the previous cycle's marked
//! heap. A change that allocates `B` bytes less would run that many fewer cycles, each costing
//! the mean GC CPU per cycle (the mark work of a cycle scales with the live heap, not with what
//! was allocated between cycles).

use serde::Serialize;

use crate::aggregate::{GcTracker, gc::cost::CycleCost};

/// What the GC costs beyond the trace's own allocation: the inputs the tracker has not seen.
#[derive(Clone, Copy, Debug)]
pub struct CostInputs {
    pub duration_ns: u64,
    /// Heap bytes the process allocated during the trace (`totalAlloc`), when read.
    pub allocated_bytes: Option<u64>,
    /// Bytes the maps' growth allocated over the trace: what the probes saw, or the sampled
    /// estimate of it.
    pub map_bytes: u64,
    pub map_estimated: bool,
    /// Whether the binary lets each cycle's cost be read at all.
    pub readable: bool,
}

/// The GC's cost over the trace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GcCost {
    /// Cycles whose cost was read.
    pub cycles: u64,
    pub assist_ns: u64,
    pub background_ns: u64,
    pub idle_ns: u64,
    pub pause_ns: u64,
    /// GOMAXPROCS at the last cycle read.
    pub maxprocs: u32,
    /// The GC's share of the CPU the process could use (`GOMAXPROCS` × the trace's wall time),
    /// idle marking excluded, as the runtime's `GCCPUFraction` counts it; cycles that ended
    /// between those read but were not read themselves count at the mean of those read. `None`
    /// when no cycle's cost could be read (0 when the binary allows it and no cycle ended).
    pub cpu_fraction: Option<f64>,
    pub map_bytes: u64,
    pub allocated_bytes: Option<u64>,
    /// `map_bytes` over what the process allocated (capped at 1: the runtime counts small
    /// allocations when a span leaves its cache, so its counter lags by a few spans).
    pub map_alloc_share: Option<f64>,
    pub map_estimated: bool,
    /// Allocation per cycle, the runway (see the module's documentation).
    pub runway_bytes: Option<u64>,
    /// Cycles the maps' growth accounts for.
    pub map_gc_cycles: Option<f64>,
    duration_ns: u64,
}

/// What saving some allocation saves the GC, over the trace.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct GcSaving {
    /// GC cycles fewer, over the trace and per minute.
    pub cycles: f64,
    pub cycles_per_min: f64,
    /// GC CPU fewer (idle marking excluded), and that as a share of the CPU the process could
    /// use.
    pub cpu_ns: u64,
    pub cpu_share: f64,
}

impl GcCost {
    pub fn new(gc: &GcTracker, i: CostInputs) -> Self {
        let costs: Vec<&CycleCost> = gc.cycles().iter().filter_map(|c| c.cost.as_ref()).collect();
        let sum = |f: fn(&CycleCost) -> u64| costs.iter().map(|c| f(c)).sum::<u64>();
        let maxprocs = gc.last_cost().map_or(0, |c| c.maxprocs);
        let busy = sum(CycleCost::busy_ns);
        let available = i.duration_ns as f64 * f64::from(maxprocs);
        // A cycle whose end was not read (the GC probes detached by the governor, a refused
        // reading) still cost the process: the cycle numbers say how many ended between the
        // first and the last read, each counted at the mean of those read.
        let ended = match (costs.first(), costs.last()) {
            (Some(first), Some(last)) => u64::from(last.cycle.saturating_sub(first.cycle)) + 1,
            _ => 0,
        };
        let missed = ended.saturating_sub(costs.len() as u64);
        let busy_all = busy as f64 * (1.0 + missed as f64 / costs.len().max(1) as f64);
        let cpu_fraction = if costs.is_empty() {
            i.readable.then_some(0.0)
        } else {
            (available > 0.0).then(|| busy_all / available)
        };
        let median = |mut v: Vec<u64>| {
            v.sort_unstable();
            v.get(v.len() / 2).copied().filter(|&r| r > 0)
        };
        let allocated: Vec<u64> = gc.cycles().iter().filter_map(|c| c.alloc_bytes).collect();
        let runways: Vec<u64> = gc.cycles().iter().filter_map(|c| c.runway_bytes).collect();
        let runway_bytes = median(allocated).or_else(|| median(runways));
        Self {
            cycles: costs.len() as u64,
            assist_ns: sum(|c| c.assist_ns),
            background_ns: sum(|c| c.background_ns),
            idle_ns: sum(|c| c.idle_ns),
            pause_ns: sum(|c| c.pause_ns),
            maxprocs,
            cpu_fraction,
            map_bytes: i.map_bytes,
            allocated_bytes: i.allocated_bytes,
            map_alloc_share: i
                .allocated_bytes
                .filter(|&a| a > 0)
                .map(|a| (i.map_bytes as f64 / a as f64).min(1.0)),
            map_estimated: i.map_estimated,
            runway_bytes,
            map_gc_cycles: runway_bytes.map(|r| i.map_bytes as f64 / r as f64),
            duration_ns: i.duration_ns,
        }
    }

    /// GC CPU over the cycles read, idle marking excluded.
    pub fn busy_ns(&self) -> u64 {
        self.assist_ns + self.background_ns + self.pause_ns
    }

    /// `n` over the trace, per minute.
    pub fn per_min(&self, n: f64) -> f64 {
        n * 60e9 / (self.duration_ns as f64).max(1.0)
    }

    /// What `bytes` fewer allocated over the trace would save the GC: `None` without a runway
    /// or a cycle's cost to go by.
    pub fn saving(&self, bytes: u64) -> Option<GcSaving> {
        let runway = self.runway_bytes?;
        if self.cycles == 0 {
            return None;
        }
        let cycles = bytes as f64 / runway as f64;
        let cpu_ns = (cycles * self.busy_ns() as f64 / self.cycles as f64).round() as u64;
        let available = self.duration_ns as f64 * f64::from(self.maxprocs);
        Some(GcSaving {
            cycles,
            cycles_per_min: self.per_min(cycles),
            cpu_ns,
            cpu_share: if available > 0.0 {
                cpu_ns as f64 / available
            } else {
                0.0
            },
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::aggregate::{StwRules, gc::cost::CycleCost};

    /// Ten cycles' costs as the model sees them, each with a 6 MiB runway and 2 ms of GC CPU,
    /// over 10 s of two Ps.
    pub(crate) fn model(map_bytes: u64, allocated: Option<u64>) -> GcCost {
        let costs: Vec<CycleCost> = (0..10)
            .map(|n| CycleCost {
                cycle: n + 1,
                assist_ns: 500_000,
                background_ns: 1_000_000,
                idle_ns: 300_000,
                pause_ns: 500_000,
                maxprocs: 2,
                ..Default::default()
            })
            .collect();
        let mut m = GcCost {
            cycles: costs.len() as u64,
            assist_ns: costs.iter().map(|c| c.assist_ns).sum(),
            background_ns: costs.iter().map(|c| c.background_ns).sum(),
            idle_ns: costs.iter().map(|c| c.idle_ns).sum(),
            pause_ns: costs.iter().map(|c| c.pause_ns).sum(),
            maxprocs: 2,
            map_bytes,
            allocated_bytes: allocated,
            runway_bytes: Some(6 << 20),
            duration_ns: 10_000_000_000,
            ..Default::default()
        };
        m.map_gc_cycles = Some(map_bytes as f64 / (6 << 20) as f64);
        m
    }

    #[test]
    fn a_saving_is_its_share_of_the_cycles_at_their_mean_cost() {
        let m = model(30 << 20, Some(60 << 20));
        assert_eq!(m.busy_ns(), 20_000_000);
        // 12 MiB over 6 MiB cycles: two cycles fewer, 12 a minute over a 10 s trace, each of
        // 2 ms of GC CPU; 4 ms of the 20 s two Ps could run.
        let s = m.saving(12 << 20).unwrap();
        assert_eq!(s.cycles, 2.0);
        assert_eq!(s.cycles_per_min, 12.0);
        assert_eq!(s.cpu_ns, 4_000_000);
        assert_eq!(s.cpu_share, 4e-3 / 20.0);
        assert_eq!(m.map_gc_cycles, Some(5.0));
        let no_runway = GcCost {
            runway_bytes: None,
            ..m
        };
        assert_eq!(no_runway.saving(12 << 20), None);
    }

    #[test]
    fn without_cycles_the_fraction_is_zero_only_where_costs_can_be_read() {
        let gc = GcTracker::new(StwRules {
            reason_in_stop: true,
            worldstop_in_start: true,
        });
        let inputs = CostInputs {
            duration_ns: 1_000_000_000,
            allocated_bytes: Some(100),
            map_bytes: 150,
            map_estimated: false,
            readable: true,
        };
        let m = GcCost::new(&gc, inputs);
        assert_eq!(m.cpu_fraction, Some(0.0));
        // The runtime's counter lags: the share never passes 1.
        assert_eq!(m.map_alloc_share, Some(1.0));
        assert_eq!(m.map_gc_cycles, None);
        let unreadable = GcCost::new(
            &gc,
            CostInputs {
                readable: false,
                allocated_bytes: None,
                ..inputs
            },
        );
        assert_eq!(unreadable.cpu_fraction, None);
        assert_eq!(unreadable.map_alloc_share, None);
    }

    #[test]
    fn cycles_that_ended_unread_count_at_the_mean_of_those_read() {
        use crate::aggregate::gc::tests::{GO127, cost_read, costed_cycle};
        const MIB: u64 = 1 << 20;
        let inputs = CostInputs {
            duration_ns: 1_000_000_000,
            allocated_bytes: None,
            map_bytes: 0,
            map_estimated: false,
            readable: true,
        };
        let mut all = GcTracker::new(GO127);
        let mut gapped = GcTracker::new(GO127);
        for (k, numgc) in (4..8).enumerate() {
            let at = 10_000_000 * (k as u64 + 1);
            let cost = cost_read(numgc + 1, at as i64, 100 * MIB, 8 * MIB, 4 * MIB);
            costed_cycle(&mut all, at, numgc, cost);
            // The GC probes were detached over the two middle cycles.
            if k == 0 || k == 3 {
                costed_cycle(&mut gapped, at, numgc, cost);
            }
        }
        let all = GcCost::new(&all, inputs);
        let gapped = GcCost::new(&gapped, inputs);
        assert_eq!((all.cycles, gapped.cycles), (4, 2));
        assert_eq!(gapped.busy_ns() * 2, all.busy_ns());
        assert!(all.cpu_fraction.unwrap() > 0.0);
        assert_eq!(gapped.cpu_fraction, all.cpu_fraction);
    }
}
