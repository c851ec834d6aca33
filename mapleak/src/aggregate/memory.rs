//! The target's address space as the runtime manages it: reserved, committed and released ranges,
//! from its mmap, munmap and madvise calls; what is resident, from /proc; and the runtime's own
//! heap accounting, read from its memory at each interval.

use std::collections::{BTreeMap, VecDeque};

use mapleak_common::{MEM_MADVISE, MEM_MMAP, MEM_MUNMAP, MemEvent};

use super::heap::{GoalSetBy, RuntimeHeap};

/// `PROT_NONE`, and the advice values the Go runtime uses to return memory.
const PROT_NONE: u32 = 0;
const MADV_DONTNEED: u32 = 4;
const MADV_FREE: u32 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Mapped PROT_NONE: address space only (Go's arena reservations).
    Reserved,
    /// Mapped read-write: counts toward memory the process holds.
    Committed,
    /// Returned with madvise: the kernel may reclaim it (at once for DONTNEED, lazily for FREE).
    Released,
}

/// Counters and the current map, since the trace began.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes mapped read-write.
    pub committed_bytes: u64,
    /// Bytes mapped PROT_NONE.
    pub reserved_bytes: u64,
    /// Bytes returned with MADV_DONTNEED and with MADV_FREE.
    pub released_dontneed_bytes: u64,
    pub released_free_bytes: u64,
    pub unmapped_bytes: u64,
    pub mmap_calls: u64,
    pub munmap_calls: u64,
    pub madvise_calls: u64,
    pub failed_calls: u64,
}

/// What `/proc/PID/smaps_rollup` says about the whole process, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resident {
    pub rss: u64,
    /// Resident private anonymous pages: the heap, stacks, the runtime's metadata and any C
    /// allocations, as opposed to file-backed and shared pages (a database's mmap, the
    /// executable's text).
    pub anonymous: u64,
    /// Pages given back with MADV_FREE that the kernel has not reclaimed yet: still in `rss`
    /// and `anonymous`.
    pub lazy_free: u64,
    /// Anonymous pages swapped out: held, but not in `rss`.
    pub swap: u64,
}

/// One believed reading of the runtime's accounting, and what was resident then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapSample {
    /// CLOCK_MONOTONIC, as the events' timestamps.
    pub ts_ns: u64,
    pub heap: RuntimeHeap,
    /// `heapGoal()` recomputed, and what set it; `None` when the heap has no goal (GOGC off,
    /// no limit).
    pub goal: Option<(u64, GoalSetBy)>,
    pub resident: Option<Resident>,
}

impl HeapSample {
    pub fn goal_bytes(&self) -> Option<u64> {
        self.goal.map(|(bytes, _)| bytes)
    }
}

/// How many readings of the runtime's accounting found the heap goal set by each setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GoalReadings {
    pub gogc: u64,
    pub memory_limit: u64,
    /// GOMEMLIMIT left nothing above the live heap.
    pub live_heap: u64,
}

impl GoalReadings {
    pub fn total(&self) -> u64 {
        self.gogc + self.by_limit()
    }

    /// Readings whose goal GOMEMLIMIT set, with room above the live heap or without.
    pub fn by_limit(&self) -> u64 {
        self.memory_limit + self.live_heap
    }
}

#[derive(Default)]
pub struct AddressSpace {
    /// start → (end, state); ranges never overlap.
    ranges: BTreeMap<u64, (u64, State)>,
    stats: MemoryStats,
    rss_bytes: Option<u64>,
    lazy_free_bytes: u64,
    resident: Option<Resident>,
    /// `gcController.heapMarked`: the heap the last GC found live.
    heap_marked: Option<u64>,
    /// The latest readings of the runtime's accounting, oldest first.
    heap_samples: VecDeque<HeapSample>,
    /// The highest heap goal read during the trace.
    peak_goal: Option<u64>,
    goal_readings: GoalReadings,
    /// Readings of the runtime's accounting that failed or were not believed.
    heap_read_errors: u64,
    overflowed: bool,
}

/// Readings of the runtime's accounting kept: at the shortest interval (10 ms) the last 40 s,
/// at the default one over an hour.
const MAX_HEAP_SAMPLES: usize = 4096;

/// Ranges followed (about 50 bytes each): Go maps and returns memory in runs of pages, so a real
/// heap needs a few thousand; only a pathological pattern of calls comes near.
const MAX_RANGES: usize = 1 << 18;

impl AddressSpace {
    pub fn on_event(&mut self, e: &MemEvent) {
        if e.ret < 0 {
            self.stats.failed_calls += 1;
            return;
        }
        let Some(end) = e.addr.checked_add(e.len) else {
            self.stats.failed_calls += 1;
            return;
        };
        match e.op {
            MEM_MMAP => {
                self.stats.mmap_calls += 1;
                if e.prot == PROT_NONE {
                    self.stats.reserved_bytes += e.len;
                    self.set(e.addr, end, Some(State::Reserved));
                } else {
                    self.stats.committed_bytes += e.len;
                    self.set(e.addr, end, Some(State::Committed));
                }
            }
            MEM_MUNMAP => {
                self.stats.munmap_calls += 1;
                self.stats.unmapped_bytes += e.len;
                self.set(e.addr, end, None);
            }
            MEM_MADVISE => {
                self.stats.madvise_calls += 1;
                match e.prot {
                    MADV_DONTNEED => self.stats.released_dontneed_bytes += e.len,
                    MADV_FREE => self.stats.released_free_bytes += e.len,
                    // Huge-page hints and the like change nothing we account.
                    _ => return,
                }
                self.set(e.addr, end, Some(State::Released));
            }
            _ => self.stats.failed_calls += 1,
        }
    }

    /// The latest resident set size read from /proc, and how much of it is MADV_FREE'd pages
    /// the kernel has not taken back yet.
    pub fn sample_rss(&mut self, rss: u64, lazy_free: u64) {
        self.rss_bytes = Some(rss);
        self.lazy_free_bytes = lazy_free;
    }

    pub fn rss_bytes(&self) -> Option<u64> {
        self.rss_bytes
    }

    pub fn lazy_free_bytes(&self) -> u64 {
        self.lazy_free_bytes
    }

    /// What smaps_rollup said.
    pub fn sample_resident(&mut self, r: Resident) {
        self.sample_rss(r.rss, r.lazy_free);
        self.resident = Some(r);
    }

    pub fn resident(&self) -> Option<Resident> {
        self.resident
    }

    /// The live heap after the last GC, read from the target's memory.
    pub fn sample_heap_marked(&mut self, bytes: u64) {
        self.heap_marked = Some(bytes);
    }

    /// A believed reading of the runtime's accounting.
    pub fn sample_heap(&mut self, sample: HeapSample) {
        self.heap_marked = Some(sample.heap.heap_marked);
        if let Some((goal, by)) = sample.goal {
            self.peak_goal = self.peak_goal.max(Some(goal));
            let n = match by {
                GoalSetBy::Gogc => &mut self.goal_readings.gogc,
                GoalSetBy::MemoryLimit => &mut self.goal_readings.memory_limit,
                GoalSetBy::LiveHeap => &mut self.goal_readings.live_heap,
            };
            *n += 1;
        }
        if self.heap_samples.len() == MAX_HEAP_SAMPLES {
            self.heap_samples.pop_front();
        }
        self.heap_samples.push_back(sample);
    }

    /// A reading of the runtime's accounting that failed or was not believed.
    pub fn heap_read_failed(&mut self) {
        self.heap_read_errors += 1;
    }

    pub fn heap_read_errors(&self) -> u64 {
        self.heap_read_errors
    }

    /// The readings kept, oldest first.
    pub fn heap_samples(&self) -> &VecDeque<HeapSample> {
        &self.heap_samples
    }

    /// The latest believed reading.
    pub fn heap(&self) -> Option<&HeapSample> {
        self.heap_samples.back()
    }

    /// The highest heap goal read during the trace.
    pub fn peak_goal(&self) -> Option<u64> {
        self.peak_goal
    }

    /// What set the heap goal, over every believed reading of the trace.
    pub fn goal_readings(&self) -> GoalReadings {
        self.goal_readings
    }

    pub fn heap_marked(&self) -> Option<u64> {
        self.heap_marked
    }

    pub fn stats(&self) -> &MemoryStats {
        &self.stats
    }

    /// Bytes of tracked ranges now in `state`.
    pub fn bytes_in(&self, state: State) -> u64 {
        self.ranges
            .iter()
            .filter(|(_, (_, s))| *s == state)
            .map(|(start, (end, _))| end - start)
            .sum()
    }

    /// Whether the map of ranges stopped following the calls (see [`MAX_RANGES`]).
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Sets `[start, end)` to `state` (`None`: unmapped), splitting the ranges it overlaps.
    fn set(&mut self, start: u64, end: u64, state: Option<State>) {
        if start >= end {
            return;
        }
        if self.ranges.len() >= MAX_RANGES {
            // The byte counters go on; only the map of who holds what stops.
            self.overflowed = true;
            return;
        }
        // A range that begins before `start` and reaches into it keeps its head.
        if let Some((&s, &(e, st))) = self.ranges.range(..start).next_back()
            && e > start
        {
            self.ranges.insert(s, (start, st));
            self.ranges.insert(start, (e, st));
        }
        let inside: Vec<u64> = self.ranges.range(start..end).map(|(s, _)| *s).collect();
        for s in inside {
            let (e, st) = self.ranges.remove(&s).expect("key just listed");
            if e > end {
                // Its tail reaches past `end`: keep the tail.
                self.ranges.insert(end, (e, st));
            }
        }
        if let Some(state) = state {
            self.ranges.insert(start, (end, state));
            self.coalesce(start);
        }
    }

    /// Joins the range at `start` with neighbours in the same state that touch it.
    fn coalesce(&mut self, start: u64) {
        let Some(&(mut end, state)) = self.ranges.get(&start) else {
            return;
        };
        let mut start = start;
        if let Some((&s, &(e, st))) = self.ranges.range(..start).next_back()
            && e == start
            && st == state
        {
            self.ranges.remove(&start);
            start = s;
        }
        if let Some(&(e, st)) = self.ranges.get(&end)
            && st == state
        {
            self.ranges.remove(&end);
            end = e;
        }
        self.ranges.insert(start, (end, state));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(op: u8, addr: u64, len: u64, prot: u32) -> MemEvent {
        MemEvent {
            op,
            addr,
            len,
            prot,
            ..Default::default()
        }
    }

    #[test]
    fn reserve_commit_release_unmap() {
        let mut a = AddressSpace::default();
        a.on_event(&call(MEM_MMAP, 0x1000_0000, 0x400_0000, PROT_NONE));
        a.on_event(&call(MEM_MMAP, 0x1000_0000, 0x10_0000, 3));
        assert_eq!(a.bytes_in(State::Reserved), 0x3f0_0000);
        assert_eq!(a.bytes_in(State::Committed), 0x10_0000);
        // Release the middle of the committed range: it splits in three.
        a.on_event(&call(MEM_MADVISE, 0x1004_0000, 0x2_0000, MADV_DONTNEED));
        assert_eq!(a.bytes_in(State::Committed), 0xe_0000);
        assert_eq!(a.bytes_in(State::Released), 0x2_0000);
        a.on_event(&call(MEM_MADVISE, 0x1008_0000, 0x1_0000, MADV_FREE));
        a.on_event(&call(MEM_MADVISE, 0x1008_0000, 0x1_0000, 14)); // MADV_HUGEPAGE
        assert_eq!(a.bytes_in(State::Released), 0x3_0000);
        // Unmap across the boundary of committed and reserved.
        a.on_event(&call(MEM_MUNMAP, 0x100f_0000, 0x2_0000, 0));
        assert_eq!(a.bytes_in(State::Committed), 0xc_0000);
        assert_eq!(a.bytes_in(State::Reserved), 0x3f0_0000 - 0x1_0000);
        let s = a.stats();
        assert_eq!(
            (
                s.released_dontneed_bytes,
                s.released_free_bytes,
                s.unmapped_bytes
            ),
            (0x2_0000, 0x1_0000, 0x2_0000)
        );
        assert_eq!((s.mmap_calls, s.madvise_calls, s.munmap_calls), (2, 3, 1));
    }

    #[test]
    fn failed_and_overflowing_calls_change_nothing() {
        let mut a = AddressSpace::default();
        let mut failed = call(MEM_MMAP, 0, 4096, 3);
        failed.ret = -12;
        a.on_event(&failed);
        a.on_event(&call(MEM_MUNMAP, u64::MAX, 2, 0));
        assert_eq!(a.stats().failed_calls, 2);
        assert_eq!(a.bytes_in(State::Committed), 0);
    }

    #[test]
    fn releasing_memory_mapped_before_the_trace_is_still_counted() {
        let mut a = AddressSpace::default();
        a.on_event(&call(MEM_MADVISE, 0xc000_0000, 0x8000, MADV_DONTNEED));
        assert_eq!(a.bytes_in(State::Released), 0x8000);
        assert_eq!(a.stats().released_dontneed_bytes, 0x8000);
    }
}
