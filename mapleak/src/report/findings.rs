//! Findings: what the trace says a user should change, each with its call site, the numbers
//! behind it and the expected saving. Pure rules over the aggregate; thresholds keep a finding
//! for what is worth a code change, because a false positive costs a user's trust.

mod memory;
mod rules;

use serde::Serialize;

pub use memory::UnreleasedMemory;
pub use rules::{Inputs, findings};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    UnsizedMap,
    MapChurn,
    RetainedCapacity,
    GrowthInGc,
    UnreleasedMemory,
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The call site to change; empty (line 0) for process-wide findings.
    pub function: String,
    pub file: String,
    pub line: u32,
    /// The numbers from the trace the finding rests on.
    pub evidence: Evidence,
    /// What to change, with the saving expected.
    pub suggestion: String,
    /// Some of the evidence comes from a probe that was attached only part of the time.
    pub estimated: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Evidence {
    UnsizedMap(UnsizedMap),
    MapChurn(MapChurn),
    RetainedCapacity(RetainedCapacity),
    GrowthInGc(GrowthInGc),
    UnreleasedMemory(UnreleasedMemory),
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
    /// GC cycles whose top growers include this site's maps, and their mean pause vs the others'.
    pub cycles_with_growth: u64,
    pub mean_pause_ns_with_growth: u64,
    pub mean_pause_ns_without: u64,
    pub pause_p99_ns: u64,
    pub pause_max_ns: u64,
}

#[cfg(test)]
mod tests;
