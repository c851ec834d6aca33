//! Findings: what the trace says a user should change, each with its call site, the numbers
//! behind it and the expected saving. Pure rules over the aggregate; thresholds keep a finding
//! for what is worth a code change, because a false positive costs a user's trust.

mod assist;
mod churn;
mod gc;
mod memory;
mod pressure;
mod retained;
mod rules;
mod sizing;

use crate::report::assist::AssistTimes;
use serde::Serialize;

pub use memory::UnreleasedMemory;
pub use rules::{Found, Inputs, findings};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    UnsizedMap,
    MapChurn,
    RetainedCapacity,
    GrowthInGc,
    SameSizeGrowth,
    UnreleasedMemory,
    GcPressure,
    GcAssist,
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// 1 for the finding that saves the most, and so on.
    pub rank: u32,
    pub kind: FindingKind,
    /// The line of the program's own code to change; empty (line 0) for process-wide findings.
    pub function: String,
    pub file: String,
    pub line: u32,
    /// The code the map grew in below that line (the standard library or another module),
    /// innermost first; empty when the map grew in the program's own code.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub via: Vec<String>,
    /// The numbers from the trace the finding rests on.
    pub evidence: Evidence,
    /// What the change saves: bytes of allocation over the trace, or of memory held.
    pub saving: Saving,
    /// What to change, with the saving expected.
    pub suggestion: String,
    /// Some of the evidence comes from a probe that was attached only part of the time.
    pub estimated: bool,
    /// Findings of the same kind at the same line, through other code (another map the line
    /// makes in a library, another caller): folded into this one, their savings included.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<Folded>,
    /// What the allocation saved would save the GC (`unsized_map`, `map_churn`), when the
    /// cycles' cost was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc: Option<crate::report::gccost::GcSaving>,
}

/// A finding folded into another at the same line.
#[derive(Clone, Debug, Serialize)]
pub struct Folded {
    /// Where its maps grew (`function file:line`).
    pub at: String,
    pub saving_bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Saving {
    /// 0 for a finding about time (`of: latency`).
    pub bytes: u64,
    pub of: SavingOf,
    /// `of: latency`: the wall time goroutines waited, over the trace, that the change would
    /// cut.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ns: Option<u64>,
    /// `bytes` as a share of all the process allocated during the trace (`of: allocation`) or
    /// of its resident memory (`of: memory`), when that is known; `ns` as a share of the
    /// trace's duration (`of: latency`; above 1 when several goroutines wait at once).
    pub share: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SavingOf {
    Allocation,
    Memory,
    /// Time goroutines waited (mark assists), not bytes.
    Latency,
}

#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Evidence {
    UnsizedMap(UnsizedMap),
    MapChurn(MapChurn),
    RetainedCapacity(RetainedCapacity),
    GrowthInGc(GrowthInGc),
    SameSizeGrowth(SameSizeGrowth),
    UnreleasedMemory(UnreleasedMemory),
    GcAssist(GcAssist),
    GcPressure(GcPressure),
}

#[derive(Clone, Debug, Serialize)]
pub struct GcPressure {
    /// Map growth's bytes and share of all the process allocated during the trace.
    pub map_bytes: u64,
    pub allocated_bytes: u64,
    pub map_alloc_share: f64,
    /// The cycles read, the allocation per cycle (its runway), and the cycles map growth
    /// accounts for, over the trace and per minute.
    pub gc_cycles: u64,
    pub runway_bytes: u64,
    pub map_gc_cycles: f64,
    pub map_gc_cycles_per_min: f64,
    /// The GC's CPU (idle marking excluded), its share of the CPU the process could use, and
    /// the part of it map growth accounts for.
    pub gc_cpu_ns: u64,
    pub gc_cpu_fraction: f64,
    pub map_gc_cpu_ns: u64,
    /// The findings that would cut it, most saving first, and what they save together.
    pub fixes: Vec<GcFix>,
    pub fixes_gc_cycles_per_min: f64,
    pub fixes_gc_cpu_ns: u64,
}

/// A finding that would cut the GC's work, as `gc_pressure` names it.
#[derive(Clone, Debug, Serialize)]
pub struct GcFix {
    pub kind: FindingKind,
    /// `function file:line`.
    pub at: String,
    pub saving_bytes: u64,
    pub gc_cycles_per_min: f64,
    pub gc_cpu_ns: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct UnsizedMap {
    pub maps: u64,
    pub grow_events: u64,
    pub bytes: u64,
    /// Entries the maps reached: their live size when read, else one more than at their last
    /// growth (a lower bound).
    pub entries_p50: u64,
    pub entries_p90: u64,
    pub entries_max: u64,
    /// The hint suggested, and which percentile of the sizes it is.
    pub hint: u64,
    pub hint_percentile: u32,
    /// Maps the hint covers (would never grow) and what they would have saved.
    pub maps_covered: u64,
    pub grow_events_saved: u64,
    pub bytes_saved: u64,
    /// Where the maps were made, when the creation probe saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// When the sizes split in two groups (the largest tenth over 8 times the median): what
    /// the hint would cost the smaller maps, made that large for nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub small_maps_extra_bytes: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MapChurn {
    /// Maps seen from this site, and the rate (scaled by the attached share when sampled).
    pub maps: u64,
    pub maps_per_sec: f64,
    /// Counted by the creation probe (else: maps seen growing).
    pub from_creation_probe: bool,
    /// Maps seen freed during the trace (their address then held a new map).
    pub maps_freed: u64,
    pub entries_p50: u64,
    /// Growth of these maps per second: what reusing one map would remove.
    pub grow_events_per_sec: f64,
    pub bytes_per_sec: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RetainedCapacity {
    pub maps: u64,
    /// The map holding the most reclaimable bytes (hex address), as read from the target.
    pub map: String,
    pub entries: u64,
    /// Entries when it last grew: its size before the deletes, at least.
    pub peak_entries: u64,
    pub capacity: u64,
    pub bytes: u64,
    /// Over all maps of the finding: bytes held, and what rebuilt maps would need less.
    pub total_bytes: u64,
    pub bytes_reclaimable: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct GrowthInGc {
    pub grow_events: u64,
    pub bytes: u64,
    /// Of those, while a GC cycle was marking.
    pub mark_grow_events: u64,
    pub mark_bytes: u64,
    pub mark_share: f64,
    /// The share of the trace the GC spent marking: a site growing evenly would grow this share
    /// during mark.
    pub mark_time_share: f64,
    /// GC cycles whose top growers include this site's maps, and their mean pause vs the others'.
    pub cycles_with_growth: u64,
    pub mean_pause_ns_with_growth: u64,
    pub mean_pause_ns_without: u64,
    pub pause_p99_ns: u64,
    pub pause_max_ns: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SameSizeGrowth {
    /// Classic same-size growths at the site (rehashes in place after deletes and inserts), the
    /// bytes they allocated, and the maps that did it.
    pub grow_events: u64,
    pub bytes: u64,
    pub maps: u64,
    /// Of the site's growth.
    pub share_of_site_bytes: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct GcAssist {
    /// Assists the line's goroutines made, the wall time they waited in them and per call; of
    /// it, marking (the runtime's assist time), running mark termination, and parked waiting
    /// for credit; and the calls the GC CPU limiter cut short (not in the times).
    #[serde(flatten)]
    pub times: AssistTimes,
    /// `total_ns` over the trace's duration.
    pub share_of_trace: f64,
    /// The share of the line's allocation during mark that was map growth, from the assists'
    /// stacks (see the `assists` list); null when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_growth_share: Option<f64>,
}

#[cfg(test)]
mod tests;
