//! The GC part of the report: cycles, pauses, other stops, and how map growth lines up with them.

use serde::Serialize;

use super::{gccost::GcCost, room::Room};
use crate::aggregate::{
    GcTracker,
    gc::{Cycle, reason_name},
};

#[derive(Clone, Debug, Default, Serialize)]
pub struct GcSummary {
    /// GC cycles whose sweep termination was seen.
    pub cycles: u64,
    pub pause_count: u64,
    pub pause_total_ns: u64,
    pub pause_p50_ns: u64,
    pub pause_p99_ns: u64,
    pub pause_max_ns: u64,
    /// Stops or starts that could not be paired (a probe attached mid-pause).
    pub unpaired: u64,
    pub per_cycle: Vec<CycleRow>,
    /// Cycles whose window had more map growth than the median window, against the rest.
    pub growth_bursts: BurstComparison,
    /// GOGC (-1: off) and GOMEMLIMIT (null: unset) in effect at the end of the trace: the
    /// newest of the last cycle's reading and the last reading of the runtime's accounting.
    pub gogc: Option<i32>,
    pub gomemlimit_bytes: Option<u64>,
    /// The GC's share of the CPU the process could use over the trace (see [`GcCost`]).
    pub cpu_fraction: Option<f64>,
    /// Map growth's share of all heap allocation over the trace; `map_alloc_estimated` when
    /// the growth probes were sampled.
    pub map_alloc_share: Option<f64>,
    pub map_alloc_estimated: bool,
    /// The two sides of that share: what the allocator handed out for map growth (whole
    /// size-class slots, a Swiss growth's tables and directory), and all the process allocated
    /// (`totalAlloc`), over the trace.
    pub map_alloc_bytes: u64,
    pub allocated_bytes: Option<u64>,
    /// Cycles whose cost was read, their CPU by kind, the allocation per cycle (its runway)
    /// and the cycles map growth accounts for.
    pub cost_cycles: u64,
    pub assist_cpu_ns: u64,
    pub background_cpu_ns: u64,
    pub idle_cpu_ns: u64,
    pub pause_cpu_ns: u64,
    pub runway_bytes: Option<u64>,
    pub map_gc_cycles: Option<f64>,
    /// Cycle costs read but not believed.
    pub cost_refused: u64,
    #[serde(flatten)]
    pub room: Room,
}

#[derive(Clone, Debug, Serialize)]
pub struct CycleRow {
    pub cycle: u32,
    pub start_ns: u64,
    pub sweep_term_pause_ns: u64,
    pub mark_term_pause_ns: u64,
    pub mark_ns: u64,
    pub map_grow_events: u64,
    pub map_grow_bytes: u64,
    pub mark_grow_events: u64,
    pub mark_grow_bytes: u64,
    pub top_maps: Vec<MapBytes>,
    /// The runtime's accounting of the cycle (null when it could not be read): mark assist,
    /// background (dedicated + fractional) and idle mark CPU, pause CPU as gctrace computes it,
    /// the cycle's heap goal, and whether the GC CPU limiter was on.
    pub assist_cpu_ns: Option<u64>,
    pub background_cpu_ns: Option<u64>,
    pub idle_cpu_ns: Option<u64>,
    pub pause_cpu_ns: Option<u64>,
    pub heap_goal_bytes: Option<u64>,
    pub limiter: Option<bool>,
    /// Heap allocated since the previous cycle ended, and map growth's share of it (null when
    /// the previous cycle was not read, or the growth probes were sampled).
    pub alloc_bytes: Option<u64>,
    pub map_alloc_share: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MapBytes {
    pub map: String,
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct BurstComparison {
    /// Growth bytes in a cycle's window above which it counts as a burst (the median).
    pub threshold_bytes: u64,
    pub after_burst: PauseGroup,
    pub others: PauseGroup,
}

/// Total pause per cycle (sweep + mark termination) for a group of cycles.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PauseGroup {
    pub cycles: u64,
    pub pause_p50_ns: u64,
    pub pause_p99_ns: u64,
    pub pause_max_ns: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct OtherStwRow {
    pub reason: &'static str,
    pub count: u64,
    pub total_ns: u64,
    pub max_ns: u64,
}

impl GcSummary {
    pub fn new(gc: &GcTracker) -> Self {
        let h = gc.pauses();
        let complete: Vec<&Cycle> = gc
            .cycles()
            .iter()
            .filter(|c| c.sweep_term_pause_ns > 0 && c.mark_term_pause_ns > 0)
            .collect();
        Self {
            cycles: gc.cycles_seen(),
            pause_count: h.len(),
            pause_total_ns: gc.pause_total_ns(),
            pause_p50_ns: quantile(h, 0.5),
            pause_p99_ns: quantile(h, 0.99),
            pause_max_ns: if h.is_empty() { 0 } else { h.max() },
            unpaired: gc.unpaired(),
            per_cycle: gc.cycles().iter().map(CycleRow::from).collect(),
            growth_bursts: BurstComparison::new(&complete),
            cost_refused: gc.cost_reads().1,
            ..Self::default()
        }
    }

    /// The GC's cost over the trace, the settings in effect at its end, and what set the heap
    /// goal.
    pub fn set_cost(&mut self, cost: &GcCost, room: Room) {
        self.gogc = room.settings.map(|s| s.gogc);
        self.gomemlimit_bytes = room.settings.and_then(|s| s.limit);
        self.room = room;
        self.cpu_fraction = cost.cpu_fraction;
        self.map_alloc_share = cost.map_alloc_share;
        self.map_alloc_estimated = cost.map_estimated;
        self.map_alloc_bytes = cost.map_bytes;
        self.allocated_bytes = cost.allocated_bytes;
        self.cost_cycles = cost.cycles;
        self.assist_cpu_ns = cost.assist_ns;
        self.background_cpu_ns = cost.background_ns;
        self.idle_cpu_ns = cost.idle_ns;
        self.pause_cpu_ns = cost.pause_ns;
        self.runway_bytes = cost.runway_bytes;
        self.map_gc_cycles = cost.map_gc_cycles;
        if cost.map_estimated {
            // What the probes saw of a cycle is a sample, not its growth.
            for row in &mut self.per_cycle {
                row.map_alloc_share = None;
            }
        }
    }
}

pub fn other_stw(gc: &GcTracker) -> Vec<OtherStwRow> {
    gc.other()
        .iter()
        .map(|(reason, o)| OtherStwRow {
            reason: reason_name(*reason),
            count: o.count,
            total_ns: o.total_ns,
            max_ns: o.max_ns,
        })
        .collect()
}

fn quantile(h: &hdrhistogram::Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(q)
    }
}

impl From<&Cycle> for CycleRow {
    fn from(c: &Cycle) -> Self {
        Self {
            cycle: c.cycle,
            start_ns: c.start_ns,
            sweep_term_pause_ns: c.sweep_term_pause_ns,
            mark_term_pause_ns: c.mark_term_pause_ns,
            mark_ns: c.mark_ns,
            map_grow_events: c.map_grow_events,
            map_grow_bytes: c.map_grow_bytes,
            mark_grow_events: c.mark_grow_events,
            mark_grow_bytes: c.mark_grow_bytes,
            top_maps: c
                .top_maps
                .iter()
                .map(|(addr, bytes)| MapBytes {
                    map: format!("{addr:#x}"),
                    bytes: *bytes,
                })
                .collect(),
            assist_cpu_ns: c.cost.map(|k| k.assist_ns),
            background_cpu_ns: c.cost.map(|k| k.background_ns),
            idle_cpu_ns: c.cost.map(|k| k.idle_ns),
            pause_cpu_ns: c.cost.map(|k| k.pause_ns),
            heap_goal_bytes: c.cost.map(|k| k.heap_goal),
            limiter: c.cost.and_then(|k| k.limiter),
            alloc_bytes: c.alloc_bytes,
            map_alloc_share: c
                .alloc_bytes
                .zip(c.map_alloc_bytes)
                .filter(|&(a, _)| a > 0)
                .map(|(a, m)| (m as f64 / a as f64).min(1.0)),
        }
    }
}

impl BurstComparison {
    fn new(cycles: &[&Cycle]) -> Self {
        let mut growth: Vec<u64> = cycles.iter().map(|c| c.map_grow_bytes).collect();
        growth.sort_unstable();
        let threshold = growth.get(growth.len() / 2).copied().unwrap_or(0);
        let (burst, calm): (Vec<&&Cycle>, Vec<&&Cycle>) =
            cycles.iter().partition(|c| c.map_grow_bytes > threshold);
        Self {
            threshold_bytes: threshold,
            after_burst: PauseGroup::new(&burst),
            others: PauseGroup::new(&calm),
        }
    }
}

impl PauseGroup {
    fn new(cycles: &[&&Cycle]) -> Self {
        let mut pauses: Vec<u64> = cycles
            .iter()
            .map(|c| c.sweep_term_pause_ns + c.mark_term_pause_ns)
            .collect();
        pauses.sort_unstable();
        // Nearest-rank percentiles: exact on small groups, where a histogram would round.
        let rank = |q: f64| -> u64 {
            if pauses.is_empty() {
                return 0;
            }
            let i = ((q * pauses.len() as f64).ceil() as usize).clamp(1, pauses.len());
            pauses[i - 1]
        };
        Self {
            cycles: pauses.len() as u64,
            pause_p50_ns: rank(0.5),
            pause_p99_ns: rank(0.99),
            pause_max_ns: pauses.last().copied().unwrap_or(0),
        }
    }
}
