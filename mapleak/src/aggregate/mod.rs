//! The aggregator: events in, state out. No I/O, no clock, no aya — unit-tested and benchmarked
//! without root.

pub mod assist;
pub mod births;
pub mod bound;
pub mod classic;
pub mod gc;
pub mod growth;
pub mod heap;
pub mod malloc;
pub mod maps;
pub mod memory;
pub mod sizing;
pub mod stacks;
pub mod swiss;
pub mod types;

use rustc_hash::FxHashMap as HashMap;

pub use births::{Birth, CreateStats};
pub use classic::GoRules;
pub use gc::{GcTracker, StwKind, StwRules};
pub use growth::{Detail, GrowKind, Growth};
pub use maps::{Evacuation, LiveMap, MapIdentity, MapState};

use mapleak_common::{ClassicGrowEvent, SwissGrowEvent};

use crate::decode::{self, Event};

/// Maps tracked individually; beyond this, the least recently grown are folded into the totals.
pub const DEFAULT_MAX_TRACKED_MAPS: usize = 100_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub grow_events: u64,
    pub same_size_grows: u64,
    pub grow_bytes: u64,
    /// What the allocator handed out for those growths (see `Growth::heap_bytes`).
    pub grow_heap_bytes: u64,
    /// Distinct map instances that grew.
    pub maps_seen: u64,
    /// Instances dropped from per-map detail to bound the tracer's memory.
    pub maps_evicted: u64,
    /// Records received from the kernel.
    pub received: u64,
    /// Records that failed to decode or carried impossible values.
    pub invalid: u64,
    /// Maps made, seen by the opt-in creation probe.
    pub maps_created: u64,
    /// Inserts and updates counted by the opt-in assign probes (every map, grown or not).
    pub assigns: u64,
    /// Records that followed the target's exec in the ring: the new program's, not counted.
    pub after_exec: u64,
}

/// Maps kept in detail per site once their address is reused; the counts go on beyond.
const MAX_FINISHED_PER_SITE: usize = 4096;
/// ... and over all sites (32 bytes each): a program with many sites must not multiply it.
const MAX_FINISHED: usize = 1 << 20;
/// Growth and evacuation records (64 bytes each) kept over all tracked maps; once they are
/// spent, a map keeps only its latest [`HISTORY_WHEN_SHORT`].
const HISTORY_BUDGET: usize = 1 << 18;
const HISTORY_WHEN_SHORT: usize = 4;

/// A map that is gone: what it reached and what its growth cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapRecord {
    /// Entries at its last growth, and the size it reached (see [`MapState::reached`]).
    pub entries: u64,
    pub reached: u64,
    /// `reached` is only a lower bound: the map was not read live (it had gone, or its last
    /// read came before its last growth), so its size is the one it had when it last grew.
    pub lower_bound: bool,
    pub grow_events: u64,
    pub bytes: u64,
    /// Of those, classic same-size growths (a rehash in place, which no size hint prevents).
    pub same_size_grows: u64,
    pub same_size_bytes: u64,
}

impl MapRecord {
    pub fn of(m: &MapState) -> Self {
        Self {
            entries: m.entries,
            reached: m.reached(),
            lower_bound: m.live.is_none_or(|l| l.entries <= m.entries),
            grow_events: m.grow_events,
            bytes: m.bytes,
            same_size_grows: m.same_size_grows,
            same_size_bytes: m.same_size_bytes,
        }
    }

    /// Growths a size hint would have prevented, and their bytes.
    pub fn sizing_growth(&self) -> (u64, u64) {
        (
            self.grow_events - self.same_size_grows,
            self.bytes - self.same_size_bytes,
        )
    }
}

/// Growth from one stack.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StackStats {
    pub grow_events: u64,
    pub bytes: u64,
    /// The sum of each growth's bytes squared: how unevenly the bytes fall on the growths (a
    /// few large arrays weigh like a few growths, whatever their number).
    pub bytes_squared: f64,
    /// Growth while a GC cycle was marking.
    pub mark_grow_events: u64,
    pub mark_bytes: u64,
    /// Classic same-size growths (rehashes in place after delete/insert churn).
    pub same_size_grows: u64,
    pub same_size_bytes: u64,
    /// Map instances whose first growth seen came from here.
    pub new_maps: u64,
    /// Maps last grown here whose address later held a new map: freed during the trace.
    pub recycled: u64,
    /// The first [`MAX_FINISHED_PER_SITE`] of those.
    pub finished: Vec<MapRecord>,
}

impl StackStats {
    /// Adds another stack's figures (several stacks can end at one source line).
    pub fn add(&mut self, other: &StackStats) {
        self.grow_events += other.grow_events;
        self.bytes += other.bytes;
        self.bytes_squared += other.bytes_squared;
        self.mark_grow_events += other.mark_grow_events;
        self.mark_bytes += other.mark_bytes;
        self.same_size_grows += other.same_size_grows;
        self.same_size_bytes += other.same_size_bytes;
        self.new_maps += other.new_maps;
        self.recycled += other.recycled;
        self.finished.extend_from_slice(&other.finished);
    }
}

/// Growth since the previous interval.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntervalStats {
    pub grow_events: u64,
    pub grow_bytes: u64,
    pub maps_grown: u64,
    pub maps_created: u64,
    pub received: u64,
    pub gc_cycles: u64,
    pub gc_pause_ns: u64,
    pub gc_pause_max_ns: u64,
}

pub struct Aggregator {
    rules: GoRules,
    maps: HashMap<u64, MapState>,
    totals: Totals,
    interval: IntervalStats,
    /// The current report interval, counting from 1 (see [`MapState::grown_in_interval`]).
    interval_no: u64,
    max_tracked: usize,
    /// Records kept in every tracked map's history and evacuations, and in sites' finished maps.
    history_records: usize,
    finished_records: usize,
    gc: GcTracker,
    /// Growth by the stack it came from (resolved to source lines by the report).
    sites: HashMap<mapleak_common::StackRef, StackStats>,
    /// GC cycles and pause total at the previous interval.
    gc_at_interval: (u64, u64),
    memory: memory::AddressSpace,
    births: births::Births,
    assists: assist::Assists,
    types: types::TypeTable,
    stacks: stacks::StackTable,
    /// When the target executed a new program (kernel clock), once it has.
    exec_ns: Option<u64>,
    /// The target's address space: no growth can allocate more.
    address_space: bound::AddressBound,
}

impl Aggregator {
    pub fn new(rules: GoRules) -> Self {
        Self::with_capacity_limit(rules, DEFAULT_MAX_TRACKED_MAPS)
    }

    pub fn with_capacity_limit(rules: GoRules, max_tracked: usize) -> Self {
        Self {
            rules,
            maps: HashMap::default(),
            totals: Totals::default(),
            interval: IntervalStats::default(),
            interval_no: 1,
            history_records: 0,
            finished_records: 0,
            max_tracked: max_tracked.max(1),
            memory: memory::AddressSpace::default(),
            gc_at_interval: (0, 0),
            sites: HashMap::default(),
            births: births::Births::new(max_tracked.max(1)),
            assists: assist::Assists::default(),
            types: types::TypeTable::default(),
            stacks: stacks::StackTable::default(),
            exec_ns: None,
            address_space: bound::AddressBound::default(),
            gc: GcTracker::new(StwRules {
                reason_in_stop: true,
                worldstop_in_start: true,
            }),
        }
    }

    /// Replaces the GC tracker (its rules depend on the Go release).
    pub fn with_gc(mut self, gc: GcTracker) -> Self {
        self.gc = gc;
        self
    }

    pub fn gc(&self) -> &GcTracker {
        &self.gc
    }

    /// The stacks the probes walked, by [`mapleak_common::StackRef::stack_id`].
    pub fn stacks(&self) -> &stacks::StackTable {
        &self.stacks
    }

    pub fn memory(&self) -> &memory::AddressSpace {
        &self.memory
    }

    /// The GC probes were switched off or on: drop half-seen pauses.
    pub fn gc_gap(&mut self) {
        self.gc.gap();
    }

    pub fn memory_mut(&mut self) -> &mut memory::AddressSpace {
        &mut self.memory
    }

    /// The target's mapped address space, read from the OS at `read_ns` (kernel monotonic
    /// clock): a growth claiming more bytes read garbage (a freed map, say) and is counted
    /// invalid.
    pub fn set_address_space(&mut self, bytes: u64, read_ns: u64) {
        self.address_space.set(bytes, read_ns);
    }

    /// Where a fresh reading of the address space comes from, for a growth newer and larger
    /// than the last one.
    pub fn set_address_space_source(&mut self, source: bound::SpaceSource) {
        self.address_space.set_source(source);
    }

    /// When the target executed a new program, if it has: the trace of its image ends there.
    pub fn exec_ns(&self) -> Option<u64> {
        self.exec_ns
    }

    /// Decodes and records one ring-buffer record.
    pub fn record_bytes(&mut self, record: &[u8]) {
        if self.exec_ns.is_some() {
            self.totals.after_exec += 1;
            return;
        }
        match decode::decode(record) {
            Ok(mut event) => {
                if let Some(frames) = decode::frames(record, &event)
                    && let Some(site) = event.site_mut()
                {
                    site.stack_id = self.stacks.intern(frames);
                }
                self.record(&event)
            }
            Err(_) => {
                self.totals.received += 1;
                self.interval.received += 1;
                self.totals.invalid += 1;
            }
        }
    }

    pub fn record(&mut self, event: &Event) {
        if self.exec_ns.is_some() {
            self.totals.after_exec += 1;
            return;
        }
        self.totals.received += 1;
        self.interval.received += 1;
        let (id, growth) = match event {
            Event::Exec(e) => {
                self.exec_ns = Some(e.header.ts_ns);
                return;
            }
            Event::Stw(e) => {
                self.gc.on_stw(e);
                return;
            }
            Event::Mem(e) => {
                self.memory.on_event(e);
                return;
            }
            Event::Evacuated(e) => {
                // Sent when the next growth replaced the old array: this one is done.
                self.on_evacuated(e, true);
                return;
            }
            Event::Assist(e) => {
                self.assists.on_event(e);
                return;
            }
            Event::Create(e) => {
                self.totals.maps_created += 1;
                self.interval.maps_created += 1;
                self.births.on_create(e);
                return;
            }
            Event::ClassicGrow(e) => {
                let mut e = *e;
                if !self.types.classic(&mut e) {
                    self.totals.invalid += 1;
                    return;
                }
                Self::classic_identity(&self.rules, &e)
            }
            Event::SwissGrow(e) => {
                let mut e = *e;
                if !self.types.swiss(&mut e) {
                    self.totals.invalid += 1;
                    return;
                }
                Self::swiss_identity(&e)
            }
        };
        match growth {
            Some(growth) if self.address_space.holds(growth.bytes, event.header().ts_ns) => {
                self.grow(id, &growth, event.header().ts_ns)
            }
            _ => self.totals.invalid += 1,
        }
    }

    fn classic_identity(rules: &GoRules, e: &ClassicGrowEvent) -> (MapIdentity, Option<Growth>) {
        (
            MapIdentity {
                addr: e.map,
                map_type: e.map_type,
                key_size: e.key_size.into(),
                value_size: e.value_size.into(),
                unit_size: e.bucket_size,
                noscan: e.bucket_ptr_bytes == 0,
                site: e.site,
                seed: e.seed,
            },
            classic::classic_growth(rules, e),
        )
    }

    fn swiss_identity(e: &SwissGrowEvent) -> (MapIdentity, Option<Growth>) {
        (
            MapIdentity {
                addr: e.map,
                map_type: e.map_type,
                key_size: e.key_size,
                value_size: e.elem_size,
                unit_size: e.group_size,
                noscan: false,
                site: e.site,
                seed: e.seed,
            },
            swiss::swiss_growth(e),
        )
    }

    fn grow(&mut self, id: MapIdentity, growth: &Growth, ts: u64) {
        self.totals.grow_events += 1;
        self.totals.grow_bytes += growth.bytes;
        self.totals.grow_heap_bytes += growth.heap_bytes;
        if growth.kind.is_same_size() {
            self.totals.same_size_grows += 1;
        }
        self.interval.grow_events += 1;
        self.interval.grow_bytes += growth.bytes;
        let marking = self.gc.marking();
        self.gc.on_growth(id.addr, growth.bytes, growth.heap_bytes);
        let birth = self.births.get(id.addr);
        let mut new_map = false;
        let state = self.maps.entry(id.addr).or_insert_with(|| {
            new_map = true;
            MapState::new(id, ts, 0, birth)
        });
        // Made again since it last grew (creation probe), or a growth of another map.
        let reborn = birth.is_some_and(|b| b.ts > state.last_ns && state.grow_events > 0);
        if reborn || state.is_reused_by(&id, growth) {
            new_map = true;
            let old = self.sites.entry(state.site).or_default();
            old.recycled += 1;
            if old.finished.len() < MAX_FINISHED_PER_SITE && self.finished_records < MAX_FINISHED {
                old.finished.push(MapRecord::of(state));
                self.finished_records += 1;
            }
            self.births.on_freed(state);
            self.history_records -= state.records();
            *state = MapState::new(id, ts, state.instance + 1, birth);
        }
        if state.grown_in_interval != self.interval_no {
            state.grown_in_interval = self.interval_no;
            self.interval.maps_grown += 1;
        }
        let room = if self.history_records < HISTORY_BUDGET {
            maps::MAX_HISTORY
        } else {
            HISTORY_WHEN_SHORT
        };
        let added = state.apply(&id, growth, ts, room);
        self.history_records = self.history_records.saturating_add_signed(added);
        self.births.on_growth(state, growth.bytes);
        let site = self.sites.entry(id.site).or_default();
        site.grow_events += 1;
        site.bytes += growth.bytes;
        site.bytes_squared += (growth.bytes as f64).powi(2);
        if growth.kind.is_same_size() {
            site.same_size_grows += 1;
            site.same_size_bytes += growth.bytes;
        }
        if marking {
            site.mark_grow_events += 1;
            site.mark_bytes += growth.bytes;
        }
        if new_map {
            self.totals.maps_seen += 1;
            site.new_maps += 1;
        }
        if self.maps.len() > self.max_tracked {
            let before = self.maps.len();
            births::evict_older_half(&mut self.maps, |m| m.last_ns);
            self.totals.maps_evicted += (before - self.maps.len()) as u64;
            self.history_records = self.maps.values().map(MapState::records).sum();
        }
    }

    /// Mark assists by the stack that allocated.
    pub fn assists(&self) -> &assist::Assists {
        &self.assists
    }

    /// Maps made per creation stack (empty unless the creation probe was on).
    pub fn creations(&self) -> impl Iterator<Item = (&mapleak_common::StackRef, &CreateStats)> {
        self.births.sites()
    }

    /// What was read from the target's memory about the map at `addr` (see `trace::live`).
    pub fn set_live(&mut self, addr: u64, live: Option<LiveMap>) {
        if let Some(m) = self.maps.get_mut(&addr) {
            m.live = live;
        }
    }

    /// One growth's evacuation, matched to the growth that began it.
    pub fn on_evacuated(&mut self, e: &mapleak_common::EvacuatedEvent, finished: bool) {
        let rules = self.rules;
        let Some(m) = self.maps.get_mut(&e.map) else {
            return;
        };
        let Some((grow_ns, old_b)) = m.history.iter().rev().find_map(|(ts, g)| match g.detail {
            Detail::Classic { old_b, .. } if *ts <= e.first_ns => Some((*ts, old_b)),
            _ => None,
        }) else {
            return;
        };
        let Some(old_bytes) = sizing::classic_array_bytes(&rules, &m.id, old_b) else {
            return;
        };
        if m.evacuations.len() >= m.history.len().max(1) {
            // One per growth kept: an evacuation whose growth left the history has no match.
            return;
        }
        self.history_records += 1;
        m.evacuations.push(Evacuation {
            grow_ns,
            held_ns: e.last_ns.saturating_sub(grow_ns),
            old_bytes,
            calls: e.calls,
            finished,
        });
    }

    /// Assignment counts per map address, from the kernel (cumulative).
    pub fn set_assigns(&mut self, counts: &[(u64, u64)]) {
        for &(addr, n) in counts {
            if let Some(m) = self.maps.get_mut(&addr) {
                m.assigns = Some(n);
            }
        }
        self.totals.assigns = self.totals.assigns.max(counts.iter().map(|(_, n)| n).sum());
    }

    /// The GoRules this trace decodes with (Go version dependent).
    pub fn rules(&self) -> &GoRules {
        &self.rules
    }

    /// Growth and GC since the last call.
    pub fn take_interval(&mut self) -> IntervalStats {
        self.interval_no += 1;
        let (cycles, pause) = (self.gc.cycles_seen(), self.gc.pause_total_ns());
        let mut stats = std::mem::take(&mut self.interval);
        stats.gc_cycles = cycles - self.gc_at_interval.0;
        stats.gc_pause_ns = pause - self.gc_at_interval.1;
        stats.gc_pause_max_ns = self.gc.take_interval_max();
        self.gc_at_interval = (cycles, pause);
        stats
    }

    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// Tracked maps, most bytes first (ties: most grows, then address for a stable order).
    pub fn top_maps(&self, n: usize) -> Vec<&MapState> {
        let mut all: Vec<&MapState> = self.maps.values().collect();
        all.sort_unstable_by(|a, b| {
            b.bytes
                .cmp(&a.bytes)
                .then(b.grow_events.cmp(&a.grow_events))
                .then(a.id.addr.cmp(&b.id.addr))
        });
        all.truncate(n);
        all
    }

    pub fn sites(&self) -> impl Iterator<Item = (&mapleak_common::StackRef, &StackStats)> {
        self.sites.iter()
    }

    pub fn map(&self, addr: u64) -> Option<&MapState> {
        self.maps.get(&addr)
    }
}

#[cfg(test)]
pub(crate) mod tests;
