//! The report data model. Field names are the JSON contract: extend it, never break it.

use serde::Serialize;

use super::sites::SourceSite;
use crate::{
    aggregate::{Aggregator, Detail, GrowKind, IntervalStats, MapState},
    inspect::MapImpl,
};

/// Facts about the trace itself.
#[derive(Clone, Debug)]
pub struct TraceMeta {
    pub pid: u32,
    pub go_version: String,
    pub map_impl: MapImpl,
    pub duration_ns: u64,
    pub stop: StopReason,
    pub notes: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Ctrl-C or SIGTERM.
    Interrupted,
    Duration,
    TargetExited,
    /// The target executed another program: the image traced is gone.
    TargetExec,
    /// The report's reader closed its end (stdout piped into `head`, say).
    OutputClosed,
    /// Something failed after attaching; the notes say what.
    Error,
}

/// Counters read from the kernel's maps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    /// Events the kernel could not reserve ring-buffer space for.
    pub lost: u64,
    /// Probe hits whose reads of target memory failed.
    pub read_errors: u64,
    pub hits: Vec<ProbeHits>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeHits {
    pub symbol: String,
    /// The eBPF program (one symbol can have several: entry and RET probes).
    pub program: &'static str,
    pub hits: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub pid: u32,
    pub go_version: String,
    pub map_impl: MapImpl,
    pub duration_ns: u64,
    pub stop_reason: StopReason,
    pub maps: MapsSummary,
    pub events: EventCounts,
    pub probes: Vec<ProbeHits>,
    pub gc: super::gc::GcSummary,
    /// Stops of the world that were not GC, by reason.
    pub stw_other: Vec<super::gc::OtherStwRow>,
    pub memory: MemorySummary,
    /// Growth by call site, most bytes first.
    pub sites: Vec<super::sites::SiteRow>,
    /// Mark assists by call site, most time first: which code pays for the GC.
    pub assists: Vec<super::assist::AssistRow>,
    /// Every assist summed, for the LATENCY section; `None` when the assist probes were not
    /// attached.
    #[serde(skip)]
    pub assist_overall: Option<super::assist::AssistOverall>,
    /// What to change, with the evidence and the saving expected.
    pub findings: Vec<super::findings::Finding>,
    /// What share of the trace each probe group saw; counts of a sampled group are estimates.
    pub sampling: super::sampling::SamplingSummary,
    /// What mapleak could not observe in this binary, and why.
    pub notes: Vec<String>,
}

/// The target's memory mappings since the trace began, and its RSS.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MemorySummary {
    /// Bytes mapped read-write.
    pub committed_bytes: u64,
    /// Bytes returned with madvise (DONTNEED + FREE).
    pub released_bytes: u64,
    pub released_dontneed_bytes: u64,
    pub released_free_bytes: u64,
    pub unmapped_bytes: u64,
    /// Mapped PROT_NONE: address space only.
    pub reserved_bytes: u64,
    /// Committed during the trace and neither released nor unmapped since.
    pub held_bytes: u64,
    /// Resident set size (smaps_rollup) at the last sample.
    pub rss_bytes: u64,
    /// Of that, pages given back with MADV_FREE the kernel has not reclaimed yet.
    pub lazy_free_bytes: u64,
    /// The heap the last GC found live (`gcController.heapMarked`), when mapleak could read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heap_live_bytes: Option<u64>,
    pub mmap_calls: u64,
    pub munmap_calls: u64,
    pub madvise_calls: u64,
    /// Resident private anonymous memory (smaps_rollup `Anonymous`): RSS without file-backed
    /// and shared pages. Null when not read.
    pub anonymous_bytes: Option<u64>,
    /// Anonymous memory swapped out (smaps_rollup `Swap`).
    pub swap_bytes: Option<u64>,
    /// The runtime's own accounting at the last reading (`gcController`), null when it could not
    /// be read: heap spans in use, free and not returned, returned to the OS.
    pub heap_in_use_bytes: Option<u64>,
    pub heap_free_bytes: Option<u64>,
    pub heap_released_bytes: Option<u64>,
    /// All the runtime has mapped and not returned: the heap in use and free, stacks, metadata
    /// (`mappedReady`).
    pub runtime_ready_bytes: Option<u64>,
    /// The heap goal now (`heapGoal()`, as `/gc/heap/goal:bytes`), the last cycle's goal, and
    /// the highest goal read during the trace; null when there is none (GOGC=off, no limit).
    pub heap_goal_bytes: Option<u64>,
    pub last_heap_goal_bytes: Option<u64>,
    pub peak_heap_goal_bytes: Option<u64>,
    /// GOGC (-1 = off), and GOMEMLIMIT (null when unset; both null when not read).
    pub gogc: Option<i32>,
    pub gomemlimit_bytes: Option<u64>,
    /// Readings of the runtime's accounting that failed or were refused as impossible.
    pub heap_read_errors: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct MapsSummary {
    pub grow_events: u64,
    pub grow_bytes: u64,
    pub same_size_grows: u64,
    pub maps_seen: u64,
    /// Maps dropped from `top` to bound memory; their growth is still in the totals.
    pub maps_evicted: u64,
    /// Inserts and updates into any map (`--probes assign`; an estimate when sampled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigns: Option<u64>,
    pub top: Vec<MapRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MapRow {
    /// Address of the map header, hex.
    pub map: String,
    /// The map's Go type, from the binary's type descriptors (absent for a type made at run
    /// time, or a binary whose descriptors could not be found).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_name: Option<String>,
    /// Where it grew: the line of the program's own code if its stack has one, else the first
    /// frame outside the runtime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grown_at: Option<SourceSite>,
    #[serde(skip)]
    pub(crate) site: mapleak_common::StackRef,
    #[serde(skip)]
    pub(crate) map_type: u64,
    /// How many maps lived at this address before this one during the trace.
    pub instance: u32,
    pub grow_events: u64,
    /// Entries when the map last grew.
    pub entries: u64,
    /// Slots after the last growth.
    pub capacity: u64,
    /// Bytes allocated by this map's growths.
    pub bytes: u64,
    /// Inserts and updates seen by `--probes assign`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigns: Option<u64>,
    pub key_size: u32,
    pub value_size: u32,
    /// Classic maps: bytes per bucket and B.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b: Option<u8>,
    /// Swiss maps: bytes per group, tables and directory entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tables: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<u64>,
    pub growths: Vec<GrowthRow>,
    /// Classic maps under `--probes evacuate`: each growth's old array, and how long it was
    /// held beside the new one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evacuations: Vec<EvacuationRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EvacuationRow {
    pub grow_ns: u64,
    pub held_ns: u64,
    /// Bytes of the old bucket array, allocated twice over while it was held.
    pub old_bytes: u64,
    pub evacuate_calls: u64,
    pub finished: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct GrowthRow {
    pub ts_ns: u64,
    pub kind: GrowKind,
    pub entries: u64,
    /// Buckets (classic) or groups (Swiss) allocated.
    pub units: u64,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_b: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_b: Option<u8>,
    /// Swiss: capacity of the table that grew or split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_capacity: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EventCounts {
    pub received: u64,
    pub lost: u64,
    pub invalid: u64,
    pub read_errors: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Interval {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub elapsed_ns: u64,
    pub grow_events: u64,
    pub grow_bytes: u64,
    pub maps_grown: u64,
    pub total_grow_events: u64,
    pub total_grow_bytes: u64,
    pub gc_cycles: u64,
    pub gc_pause_ns: u64,
    pub gc_pause_max_ns: u64,
    pub rss_bytes: u64,
    pub held_bytes: u64,
    pub released_bytes: u64,
    /// As in the summary's `memory`, at the interval's end.
    pub anonymous_bytes: Option<u64>,
    pub heap_in_use_bytes: Option<u64>,
    pub heap_free_bytes: Option<u64>,
    pub heap_goal_bytes: Option<u64>,
    pub events: EventCounts,
}

impl Interval {
    pub fn new(
        elapsed_ns: u64,
        stats: &IntervalStats,
        agg: &Aggregator,
        k: &KernelCounters,
    ) -> Self {
        let t = agg.totals();
        let m = MemorySummary::new(agg.memory());
        Self {
            kind: "interval",
            elapsed_ns,
            grow_events: stats.grow_events,
            grow_bytes: stats.grow_bytes,
            maps_grown: stats.maps_grown,
            total_grow_events: t.grow_events,
            total_grow_bytes: t.grow_bytes,
            gc_cycles: stats.gc_cycles,
            gc_pause_ns: stats.gc_pause_ns,
            gc_pause_max_ns: stats.gc_pause_max_ns,
            rss_bytes: m.rss_bytes,
            held_bytes: m.held_bytes,
            released_bytes: m.released_bytes,
            anonymous_bytes: m.anonymous_bytes,
            heap_in_use_bytes: m.heap_in_use_bytes,
            heap_free_bytes: m.heap_free_bytes,
            heap_goal_bytes: m.heap_goal_bytes,
            events: EventCounts::new(agg, k),
        }
    }
}

impl EventCounts {
    fn new(agg: &Aggregator, k: &KernelCounters) -> Self {
        let t = agg.totals();
        Self {
            received: t.received,
            lost: k.lost,
            invalid: t.invalid,
            read_errors: k.read_errors,
        }
    }
}

impl Summary {
    pub fn new(
        meta: &TraceMeta,
        agg: &Aggregator,
        k: &KernelCounters,
        top: usize,
        sampling: super::sampling::SamplingSummary,
    ) -> Self {
        let t = agg.totals();
        Self {
            kind: "summary",
            pid: meta.pid,
            go_version: meta.go_version.clone(),
            map_impl: meta.map_impl,
            duration_ns: meta.duration_ns,
            stop_reason: meta.stop,
            maps: MapsSummary {
                grow_events: t.grow_events,
                grow_bytes: t.grow_bytes,
                same_size_grows: t.same_size_grows,
                maps_seen: t.maps_seen,
                maps_evicted: t.maps_evicted,
                assigns: (t.assigns > 0).then_some(t.assigns),
                top: agg.top_maps(top).into_iter().map(MapRow::from).collect(),
            },
            events: EventCounts::new(agg, k),
            probes: k.hits.clone(),
            gc: super::gc::GcSummary::new(agg.gc()),
            stw_other: super::gc::other_stw(agg.gc()),
            memory: MemorySummary::new(agg.memory()),
            sites: Vec::new(),
            assists: Vec::new(),
            assist_overall: None,
            findings: Vec::new(),
            sampling,
            notes: meta.notes.clone(),
        }
    }

    /// Gives each listed map its type's name and the line it grew at.
    pub fn name_maps(&mut self, res: &super::sites::Resolutions) {
        for row in &mut self.maps.top {
            row.type_name = res.type_name(row.map_type).map(str::to_owned);
            row.grown_at = res.grown_at(&row.site).cloned();
        }
    }
}

impl MemorySummary {
    fn new(m: &crate::aggregate::memory::AddressSpace) -> Self {
        let s = m.stats();
        let heap = m.heap();
        Self {
            committed_bytes: s.committed_bytes,
            released_bytes: s.released_dontneed_bytes + s.released_free_bytes,
            released_dontneed_bytes: s.released_dontneed_bytes,
            released_free_bytes: s.released_free_bytes,
            unmapped_bytes: s.unmapped_bytes,
            reserved_bytes: s.reserved_bytes,
            held_bytes: m.bytes_in(crate::aggregate::memory::State::Committed),
            rss_bytes: m.rss_bytes().unwrap_or(0),
            lazy_free_bytes: m.lazy_free_bytes(),
            heap_live_bytes: m.heap_marked(),
            mmap_calls: s.mmap_calls,
            munmap_calls: s.munmap_calls,
            madvise_calls: s.madvise_calls,
            anonymous_bytes: m.resident().map(|r| r.anonymous),
            swap_bytes: m.resident().map(|r| r.swap),
            heap_in_use_bytes: heap.map(|h| h.heap.heap_in_use),
            heap_free_bytes: heap.map(|h| h.heap.heap_free),
            heap_released_bytes: heap.map(|h| h.heap.heap_released),
            runtime_ready_bytes: heap.map(|h| h.heap.mapped_ready),
            heap_goal_bytes: heap.and_then(crate::aggregate::memory::HeapSample::goal_bytes),
            // Before the first cycle ends there is none; with GOGC=off and no limit it is the
            // "no limit" goal, in the exabytes.
            last_heap_goal_bytes: heap
                .filter(|h| h.goal.is_some())
                .map(|h| h.heap.last_heap_goal)
                .filter(|&g| g > 0),
            peak_heap_goal_bytes: m.peak_goal(),
            gogc: heap.map(|h| h.heap.gc_percent),
            gomemlimit_bytes: heap.and_then(|h| h.heap.limit()),
            heap_read_errors: m.heap_read_errors(),
        }
    }
}

impl From<&MapState> for MapRow {
    fn from(m: &MapState) -> Self {
        let swiss = m.b.is_none();
        Self {
            map: format!("{:#x}", m.id.addr),
            type_name: None,
            grown_at: None,
            site: m.id.site,
            map_type: m.id.map_type,
            instance: m.instance,
            grow_events: m.grow_events,
            entries: m.entries,
            capacity: m.capacity,
            bytes: m.bytes,
            assigns: m.assigns,
            key_size: m.id.key_size,
            value_size: m.id.value_size,
            bucket_size: (!swiss).then_some(m.id.unit_size),
            b: m.b,
            group_size: swiss.then_some(m.id.unit_size),
            tables: swiss.then_some(m.tables),
            directory: swiss.then_some(m.dir_len),
            growths: m.history.iter().map(GrowthRow::from).collect(),
            evacuations: m
                .evacuations
                .iter()
                .map(|e| EvacuationRow {
                    grow_ns: e.grow_ns,
                    held_ns: e.held_ns,
                    old_bytes: e.old_bytes,
                    evacuate_calls: e.calls,
                    finished: e.finished,
                })
                .collect(),
        }
    }
}

impl From<&(u64, crate::aggregate::Growth)> for GrowthRow {
    fn from((ts, g): &(u64, crate::aggregate::Growth)) -> Self {
        let (old_b, new_b, table_capacity) = match g.detail {
            Detail::Classic { old_b, new_b } => (Some(old_b), Some(new_b), None),
            Detail::Swiss { table_capacity, .. } => (None, None, Some(table_capacity)),
        };
        Self {
            ts_ns: *ts,
            kind: g.kind,
            entries: g.entries,
            units: g.units,
            bytes: g.bytes,
            old_b,
            new_b,
            table_capacity,
        }
    }
}

#[cfg(test)]
mod tests;
