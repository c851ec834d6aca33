//! The GC part of the report: cycles, pauses, other stops, and how map growth lines up with them.

use serde::Serialize;

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
