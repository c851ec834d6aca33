//! The Go runtime's own heap accounting, read from `runtime.gcController`: what the heap holds
//! in use, free and released, its goal, GOGC and GOMEMLIMIT. Pure: bytes in, a checked reading
//! out, so that a torn or garbage read is refused before anything believes it.

use crate::inspect::offsets::{GcControllerFields, OffsetTable as _};

/// The runtime's page: every heap figure moves by whole pages (`mheap.allocSpan`, `freeSpan`,
/// the scavenger), on every platform.
const PAGE: u64 = 8192;
/// `gcControllerState.memoryLimit` when GOMEMLIMIT is unset.
pub const NO_LIMIT: i64 = i64::MAX;
/// `gcPercentHeapGoal` and `triggered` mean "none" with all bits set.
const NONE: u64 = u64::MAX;

/// One reading of `gcController`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeHeap {
    /// GOGC; -1 is off.
    pub gc_percent: i32,
    /// GOMEMLIMIT; [`NO_LIMIT`] when unset.
    pub memory_limit: i64,
    pub gc_percent_heap_goal: u64,
    pub sweep_dist_min_trigger: u64,
    pub triggered: u64,
    /// The goal of the last finished cycle (gctrace's "MB goal").
    pub last_heap_goal: u64,
    /// The heap the last GC marked live.
    pub heap_marked: u64,
    /// Bytes in in-use spans.
    pub heap_in_use: u64,
    /// Free spans not returned to the OS: resident once touched, which every span that was
    /// in use has been.
    pub heap_free: u64,
    /// Free spans returned to the OS (madvise); resident only if returned with MADV_FREE and the
    /// kernel has not taken them yet.
    pub heap_released: u64,
    pub total_alloc: u64,
    pub total_free: u64,
    /// Everything the runtime has mapped and not released: the heap in use and free, stacks,
    /// and its own metadata.
    pub mapped_ready: u64,
}

/// What sets the heap goal: how far the heap may grow before the next cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalSetBy {
    /// GOGC: the live heap plus GOGC percent of it (and of stacks and globals).
    Gogc,
    /// GOMEMLIMIT, below what GOGC would allow.
    MemoryLimit,
    /// GOMEMLIMIT leaves nothing above the live heap: the goal is the live heap itself.
    LiveHeap,
}

/// Why a reading was not believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Implausible {
    /// The target's memory could not be read there.
    Unread,
    /// The runtime has not initialised its GC yet (a program stopped at its first instruction
    /// by `mapleak run`): every field is still zero.
    NotStarted,
    /// A field the layout does not place, or bytes too short for it.
    Unplaced,
    GcPercent,
    MemoryLimit,
    /// A heap figure that is not a whole number of pages.
    NotPages,
    /// More than the process's address space holds.
    TooBig,
    /// The runtime's own invariants between its counters (see [`RuntimeHeap::check`]).
    Inconsistent,
    /// A counter that only grows went down since the last reading.
    WentBack,
}

/// Where the reading is: the offset of the first byte read and how many, for [`RuntimeHeap::parse`].
pub fn span(fields: &GcControllerFields) -> Option<(u64, usize)> {
    let offsets: Vec<u64> = fields
        .fields()
        .into_iter()
        .map(|(_, o)| o)
        .collect::<Option<_>>()?;
    let start = *offsets.iter().min()?;
    let end = offsets.iter().max()? + 8;
    Some((start, usize::try_from(end - start).ok()?))
}

impl RuntimeHeap {
    /// The fields out of `bytes`, which were read from `gcController + start`.
    pub fn parse(
        bytes: &[u8],
        start: u64,
        fields: &GcControllerFields,
    ) -> Result<Self, Implausible> {
        let at = |off: Option<u64>, len: usize| -> Result<&[u8], Implausible> {
            let from = off
                .and_then(|o| o.checked_sub(start))
                .and_then(|o| usize::try_from(o).ok())
                .ok_or(Implausible::Unplaced)?;
            bytes.get(from..from + len).ok_or(Implausible::Unplaced)
        };
        let u = |off| -> Result<u64, Implausible> {
            Ok(u64::from_le_bytes(at(off, 8)?.try_into().expect("8 bytes")))
        };
        Ok(Self {
            gc_percent: i32::from_le_bytes(at(fields.gc_percent, 4)?.try_into().expect("4 bytes")),
            memory_limit: u(fields.memory_limit)? as i64,
            gc_percent_heap_goal: u(fields.gc_percent_heap_goal)?,
            sweep_dist_min_trigger: u(fields.sweep_dist_min_trigger)?,
            triggered: u(fields.triggered)?,
            last_heap_goal: u(fields.last_heap_goal)?,
            heap_marked: u(fields.heap_marked)?,
            heap_in_use: u(fields.heap_in_use)?,
            heap_free: u(fields.heap_free)?,
            heap_released: u(fields.heap_released)?,
            total_alloc: u(fields.total_alloc)?,
            total_free: u(fields.total_free)?,
            mapped_ready: u(fields.mapped_ready)?,
        })
    }

    /// Whether this reading can be true of a process whose address space is `address_space`
    /// bytes, `last` being the reading believed before it. The runtime updates these counters
    /// one by one without a lock, so a reading taken mid-update can fail the invariants it
    /// keeps between them; it spins until they hold (`memoryLimitHeapGoal`), and so does the
    /// reader, a few times.
    pub fn check(&self, last: Option<&Self>, address_space: u64) -> Result<(), Implausible> {
        // gcinit sets GOMEMLIMIT (math.MaxInt64 when unset) and GOGC (100 by default), and the
        // heap maps its first arena before any of that: zeros are a runtime not started.
        if self.mapped_ready == 0 || (self.memory_limit == 0 && self.gc_percent == 0) {
            return Err(Implausible::NotStarted);
        }
        // setGCPercent stores -1 for any negative value.
        if self.gc_percent < -1 {
            return Err(Implausible::GcPercent);
        }
        if self.memory_limit < 0 {
            return Err(Implausible::MemoryLimit);
        }
        if [self.heap_in_use, self.heap_free, self.heap_released]
            .iter()
            .any(|b| b % PAGE != 0)
        {
            return Err(Implausible::NotPages);
        }
        let mapped = self
            .mapped_ready
            .checked_add(self.heap_released)
            .ok_or(Implausible::TooBig)?;
        let below = |b: u64| b == NONE || b <= address_space;
        if mapped > address_space || !below(self.triggered) {
            return Err(Implausible::TooBig);
        }
        let Some(heap_alloc) = self.total_alloc.checked_sub(self.total_free) else {
            return Err(Implausible::Inconsistent);
        };
        let ready_heap = |other: u64| {
            self.heap_free
                .checked_add(other)
                .is_some_and(|b| b <= self.mapped_ready)
        };
        // The heap's free and in-use spans, and its objects, are all mapped ready; objects
        // marked live sit in in-use spans until a later cycle sweeps them.
        if !ready_heap(heap_alloc)
            || !ready_heap(self.heap_in_use)
            || self.heap_marked > self.mapped_ready
        {
            return Err(Implausible::Inconsistent);
        }
        // commit() stores `^0` exactly when GOGC is off, and otherwise a goal at least the
        // marked heap.
        let off = self.gc_percent < 0;
        if off != (self.gc_percent_heap_goal == NONE)
            || (!off && self.gc_percent_heap_goal < self.heap_marked)
        {
            return Err(Implausible::Inconsistent);
        }
        if last.is_some_and(|l| self.total_alloc < l.total_alloc || self.total_free < l.total_free)
        {
            return Err(Implausible::WentBack);
        }
        Ok(())
    }

    /// `gcControllerState.heapGoal()` as the runtime computes it, for `go_minor`, and which
    /// setting sets it; `None` when the heap has no goal (GOGC off and no GOMEMLIMIT).
    pub fn goal(&self, go_minor: u32) -> Option<(u64, GoalSetBy)> {
        if self.gc_percent < 0 && self.memory_limit == NO_LIMIT {
            return None;
        }
        let goal = self.gc_percent_heap_goal;
        let limited = self.memory_limit_heap_goal(go_minor);
        if limited < goal {
            // The runtime never sets the goal below the live heap: a limit that leaves no room
            // above it makes the GC run back to back.
            let by = if limited <= self.heap_marked {
                GoalSetBy::LiveHeap
            } else {
                GoalSetBy::MemoryLimit
            };
            return Some((limited, by));
        }
        let mut goal = goal.max(self.sweep_dist_min_trigger);
        // The runtime keeps a 64 KiB runway past the point a cycle started.
        const MIN_RUNWAY: u64 = 64 << 10;
        if self.triggered != NONE {
            goal = goal.max(self.triggered.saturating_add(MIN_RUNWAY));
        }
        Some((goal, GoalSetBy::Gogc))
    }

    /// `memoryLimitHeapGoal()`: the limit less what is not heap, less a headroom (a fixed 1 MiB
    /// in go1.19, 3 % and at least 1 MiB from go1.21).
    fn memory_limit_heap_goal(&self, go_minor: u32) -> u64 {
        const MIB: u64 = 1 << 20;
        let limit = self.memory_limit as u64;
        let heap_alloc = self.total_alloc.wrapping_sub(self.total_free);
        let non_heap = self
            .mapped_ready
            .wrapping_sub(self.heap_free)
            .wrapping_sub(heap_alloc);
        let over = self.mapped_ready.saturating_sub(limit);
        if non_heap.wrapping_add(over) >= limit {
            return self.heap_marked;
        }
        let mut goal = limit - (non_heap + over);
        let percent = crate::gofacts::LIMIT_HEADROOM_PERCENT
            .at(go_minor)
            .unwrap_or(0);
        let headroom = (goal / 100 * percent).max(MIB);
        if goal < headroom || goal - headroom < headroom {
            goal = headroom;
        } else {
            goal -= headroom;
        }
        goal.max(self.heap_marked)
    }

    /// GOMEMLIMIT, `None` when unset.
    pub fn limit(&self) -> Option<u64> {
        (self.memory_limit != NO_LIMIT).then_some(self.memory_limit as u64)
    }

    /// The runtime's memory that is neither heap in use nor free heap: stacks, span structures,
    /// GC metadata, profiling buckets.
    pub fn other_runtime(&self) -> u64 {
        self.mapped_ready
            .saturating_sub(self.heap_in_use)
            .saturating_sub(self.heap_free)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::GoVersion;

    const MIB: u64 = 1 << 20;

    /// A process after a GC that freed 256 MiB: 4 MiB goal, GOGC=100, no limit.
    fn after_burst() -> RuntimeHeap {
        RuntimeHeap {
            gc_percent: 100,
            memory_limit: NO_LIMIT,
            gc_percent_heap_goal: 4 * MIB,
            sweep_dist_min_trigger: MIB,
            triggered: NONE,
            last_heap_goal: 512 * MIB,
            heap_marked: 200 << 10,
            heap_in_use: MIB,
            heap_free: 256 * MIB,
            heap_released: 3 * MIB,
            total_alloc: 300 * MIB,
            total_free: 300 * MIB - (300 << 10),
            mapped_ready: 262 * MIB,
        }
    }

    #[test]
    fn parses_what_the_layout_places() {
        let fields = GcControllerFields::table(&GoVersion::parse("go1.21.13").unwrap());
        let (start, len) = span(&fields).unwrap();
        assert_eq!((start, len), (0, 0x140));
        let want = after_burst();
        let mut bytes = vec![0xaa; len];
        let mut put = |off: Option<u64>, v: &[u8]| {
            let off = off.unwrap() as usize;
            bytes[off..off + v.len()].copy_from_slice(v);
        };
        put(fields.gc_percent, &100i32.to_le_bytes());
        put(fields.memory_limit, &NO_LIMIT.to_le_bytes());
        for (off, v) in [
            (fields.gc_percent_heap_goal, want.gc_percent_heap_goal),
            (fields.sweep_dist_min_trigger, want.sweep_dist_min_trigger),
            (fields.triggered, want.triggered),
            (fields.last_heap_goal, want.last_heap_goal),
            (fields.heap_marked, want.heap_marked),
            (fields.heap_in_use, want.heap_in_use),
            (fields.heap_free, want.heap_free),
            (fields.heap_released, want.heap_released),
            (fields.total_alloc, want.total_alloc),
            (fields.total_free, want.total_free),
            (fields.mapped_ready, want.mapped_ready),
        ] {
            put(off, &v.to_le_bytes());
        }
        assert_eq!(RuntimeHeap::parse(&bytes, start, &fields), Ok(want));
        assert_eq!(
            RuntimeHeap::parse(&bytes[..len - 1], start, &fields),
            Err(Implausible::Unplaced)
        );
        let unknown = GcControllerFields {
            heap_free: None,
            ..fields
        };
        assert_eq!(span(&unknown), None);
        assert_eq!(
            RuntimeHeap::parse(&bytes, start, &unknown),
            Err(Implausible::Unplaced)
        );
    }

    #[test]
    fn the_goal_is_the_runtimes() {
        let h = after_burst();
        assert_eq!(h.goal(21), Some((4 * MIB, GoalSetBy::Gogc)));
        // Mid-cycle, the goal stays 64 KiB past where the cycle started.
        let mid = RuntimeHeap {
            triggered: 4 * MIB,
            ..h
        };
        assert_eq!(mid.goal(21), Some((4 * MIB + (64 << 10), GoalSetBy::Gogc)));
        // GOGC off and no limit: no goal; with a limit, the limit's.
        let off = RuntimeHeap {
            gc_percent: -1,
            gc_percent_heap_goal: NONE,
            ..h
        };
        assert_eq!(off.goal(21), None);
        let limited = RuntimeHeap {
            memory_limit: 1 << 30,
            ..off
        };
        // Not heap: 262 MiB ready, less 256 MiB free, less 300 KiB of objects.
        let non_heap = 262 * MIB - 256 * MIB - (300 << 10);
        let g = (1 << 30) - non_heap;
        assert_eq!(
            limited.goal(21),
            Some((g - g / 100 * 3, GoalSetBy::MemoryLimit))
        );
        assert_eq!(limited.goal(19), Some((g - MIB, GoalSetBy::MemoryLimit)));
        // A limit below what is not heap: the goal is the marked heap.
        let tight = RuntimeHeap {
            memory_limit: 4 * MIB as i64,
            ..off
        };
        assert_eq!(tight.goal(21), Some((h.heap_marked, GoalSetBy::LiveHeap)));
        // With GOGC on, the limit sets the goal only when it is the lower.
        let both = RuntimeHeap {
            memory_limit: 1 << 30,
            ..h
        };
        assert_eq!(both.goal(21), Some((4 * MIB, GoalSetBy::Gogc)));
        let below = RuntimeHeap {
            gc_percent_heap_goal: 2 << 30,
            ..both
        };
        assert_eq!(
            below.goal(21),
            Some((g - g / 100 * 3, GoalSetBy::MemoryLimit))
        );
    }

    #[test]
    fn readings_that_cannot_be_true_are_refused() {
        let h = after_burst();
        let space = 1 << 40;
        assert_eq!(h.check(None, space), Ok(()));
        let bad = [
            // Before gcinit: the zeros of a program held at its first instruction.
            (
                RuntimeHeap {
                    gc_percent: 0,
                    memory_limit: 0,
                    gc_percent_heap_goal: 0,
                    sweep_dist_min_trigger: 0,
                    triggered: 0,
                    last_heap_goal: 0,
                    heap_marked: 0,
                    heap_in_use: 0,
                    heap_free: 0,
                    heap_released: 0,
                    total_alloc: 0,
                    total_free: 0,
                    mapped_ready: 0,
                },
                Implausible::NotStarted,
            ),
            (
                RuntimeHeap {
                    gc_percent: -2,
                    ..h
                },
                Implausible::GcPercent,
            ),
            (
                RuntimeHeap {
                    memory_limit: -1,
                    ..h
                },
                Implausible::MemoryLimit,
            ),
            (
                RuntimeHeap {
                    heap_free: h.heap_free + 1,
                    ..h
                },
                Implausible::NotPages,
            ),
            (
                RuntimeHeap {
                    mapped_ready: space,
                    ..h
                },
                Implausible::TooBig,
            ),
            (
                RuntimeHeap {
                    heap_free: 300 * MIB,
                    ..h
                },
                Implausible::Inconsistent,
            ),
            (
                RuntimeHeap {
                    total_free: h.total_alloc + 1,
                    ..h
                },
                Implausible::Inconsistent,
            ),
            (
                RuntimeHeap {
                    gc_percent: -1,
                    ..h
                },
                Implausible::Inconsistent,
            ),
            (
                RuntimeHeap {
                    gc_percent_heap_goal: 100 << 10,
                    ..h
                },
                Implausible::Inconsistent,
            ),
        ];
        for (reading, why) in bad {
            assert_eq!(reading.check(None, space), Err(why), "{reading:?}");
        }
        let earlier = RuntimeHeap {
            total_alloc: h.total_alloc + 1,
            total_free: h.total_free + 1,
            ..h
        };
        assert_eq!(h.check(Some(&earlier), space), Err(Implausible::WentBack));
    }
}
