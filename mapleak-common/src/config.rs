//! Per-target configuration written into the eBPF object's globals before load.
//!
//! Offsets differ between Go versions, so the kernel programs take them from here instead of
//! hard-coding them; user space fills them from the binary's inspection plan.

/// Offsets (in bytes) the kernel programs use to read the target's memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Run-time address of `runtime.memstats.numgc` (0: unknown), load bias applied.
    pub numgc_addr: u64,
    /// Run-time addresses of `runtime.work.pauseStart` (with `work.pauseNS` just before it) and
    /// `runtime.gcphase` (0: unknown).
    pub pause_start_addr: u64,
    pub gcphase_addr: u64,
    /// The traced process (its tgid): system-call tracepoints fire for every process.
    pub target_tgid: u32,
    /// `runtime.hmap.count`, `.flags`, `.B`, `.noverflow`, `.oldbuckets` (and `.hash0` below).
    pub hmap_count: u16,
    pub hmap_flags: u16,
    pub hmap_b: u16,
    pub hmap_noverflow: u16,
    /// Classic map type: `.Bucket`, `.KeySize`, `.ValueSize`.
    pub maptype_bucket: u16,
    pub maptype_key_size: u16,
    pub maptype_value_size: u16,
    /// `abi.Type.Size_` and `.PtrBytes`.
    pub type_size: u16,
    pub type_ptr_bytes: u16,
    /// Map type (both implementations): `.Key`, `.Elem`; Swiss: `.GroupSize`.
    pub maptype_key: u16,
    pub maptype_elem: u16,
    pub maptype_group_size: u16,
    /// `internal/runtime/maps.Map`: `.used`, `.dirLen`, `.globalDepth`.
    pub swiss_map_used: u16,
    pub swiss_map_dir_len: u16,
    pub swiss_map_global_depth: u16,
    /// `internal/runtime/maps.table`: `.capacity`, `.localDepth`.
    pub swiss_table_capacity: u16,
    pub swiss_table_local_depth: u16,
    pub hmap_oldbuckets: u16,
    /// The per-map hash seed: `runtime.hmap.hash0` (u32) and `internal/runtime/maps.Map.seed`
    /// (uintptr). Every `make` draws a new one (so do `clear` and deleting the last entry),
    /// which tells a new map at a recycled address from the one that lived there before.
    pub hmap_hash0: u16,
    pub swiss_map_seed: u16,
    pub _pad: [u16; 2],
    /// Run-time address of `runtime.gcCPULimiter.enabled` (0: unknown): an assist that starts
    /// while it is set returns at once without paying.
    pub limiter_enabled_addr: u64,
    /// Where the runtime keeps its accounting of each GC cycle's cost.
    pub gc_cost: GcCostLayout,
}

const _: () = assert!(core::mem::size_of::<Config>() == 80 + 64);

/// The runtime's accounting of a GC cycle's cost, read by the start-the-world probe once the
/// cycle has ended: run-time addresses of `runtime.work`, `runtime.gcController` and
/// `runtime.gcCPULimiter` (0: unknown, and nothing of that struct is read), and the offsets in
/// them of what is read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcCostLayout {
    pub work_addr: u64,
    pub controller_addr: u64,
    pub limiter_addr: u64,
    /// `workType`: `cycles`, `stwprocs`, `maxprocs`, `tSweepTerm`, `tMark`, `tMarkTerm`, `tEnd`.
    pub work_cycles: u16,
    pub work_stwprocs: u16,
    pub work_maxprocs: u16,
    pub work_t_sweep_term: u16,
    pub work_t_mark: u16,
    pub work_t_mark_term: u16,
    pub work_t_end: u16,
    /// `gcControllerState`: `gcPercent`, `memoryLimit`, `lastHeapGoal`, `heapMarked`,
    /// `totalAlloc`, `assistTime`, `dedicatedMarkTime`, `fractionalMarkTime`, `idleMarkTime`.
    pub gc_percent: u16,
    pub memory_limit: u16,
    pub last_heap_goal: u16,
    pub heap_marked: u16,
    pub total_alloc: u16,
    pub assist_time: u16,
    pub dedicated_time: u16,
    pub fractional_time: u16,
    pub idle_time: u16,
    /// `gcCPULimiterState`: `enabled`, `lastEnabledCycle`.
    pub limiter_enabled: u16,
    pub limiter_last_enabled_cycle: u16,
    pub _pad: [u16; 2],
}

const _: () = assert!(core::mem::size_of::<GcCostLayout>() == 64);

/// Words the growth probes read at once from the start of a classic `hmap` (for `count`,
/// `flags`, `B`, `noverflow`, `hash0`), of a Swiss `Map` (`used`, `seed`, `dirLen`,
/// `globalDepth`) and of a Swiss
/// `table` (`capacity`, `localDepth`): user space checks that each of those fields lies within
/// one word of its struct's first few.
pub const HMAP_WORDS: usize = 2;
pub const SWISS_MAP_WORDS: usize = 5;
pub const SWISS_TABLE_WORDS: usize = 1;

impl Config {
    /// The first field the growth probes would read wrongly from their one read of a struct's
    /// first words: one that lies beyond them or across two words.
    pub fn unreadable_field(&self) -> Option<&'static str> {
        let fits =
            |off: u16, size: u16, words: usize| usize::from(off / 8) < words && off % 8 + size <= 8;
        [
            ("hmap.count", self.hmap_count, 8, HMAP_WORDS),
            ("hmap.flags", self.hmap_flags, 1, HMAP_WORDS),
            ("hmap.B", self.hmap_b, 1, HMAP_WORDS),
            ("hmap.noverflow", self.hmap_noverflow, 2, HMAP_WORDS),
            ("hmap.hash0", self.hmap_hash0, 4, HMAP_WORDS),
            ("maps.Map.used", self.swiss_map_used, 8, SWISS_MAP_WORDS),
            ("maps.Map.seed", self.swiss_map_seed, 8, SWISS_MAP_WORDS),
            (
                "maps.Map.dirLen",
                self.swiss_map_dir_len,
                8,
                SWISS_MAP_WORDS,
            ),
            (
                "maps.Map.globalDepth",
                self.swiss_map_global_depth,
                1,
                SWISS_MAP_WORDS,
            ),
            (
                "maps.table.capacity",
                self.swiss_table_capacity,
                2,
                SWISS_TABLE_WORDS,
            ),
            (
                "maps.table.localDepth",
                self.swiss_table_local_depth,
                1,
                SWISS_TABLE_WORDS,
            ),
        ]
        .into_iter()
        .find(|&(_, off, size, words)| !fits(off, size, words))
        .map(|(name, ..)| name)
    }
}

#[cfg(feature = "user")]
// SAFETY: `Config` is `repr(C)`, made of integers only, with explicit padding.
unsafe impl aya::Pod for Config {}

#[cfg(test)]
mod tests {
    use super::*;

    fn go_layout() -> Config {
        Config {
            hmap_flags: 8,
            hmap_b: 9,
            hmap_noverflow: 10,
            hmap_hash0: 12,
            swiss_map_seed: 8,
            swiss_map_dir_len: 24,
            swiss_map_global_depth: 32,
            swiss_table_capacity: 2,
            swiss_table_local_depth: 6,
            ..Config::default()
        }
    }

    #[test]
    fn the_go_layouts_fit_the_probes_reads() {
        assert_eq!(go_layout().unreadable_field(), None);
    }

    #[test]
    fn a_field_beyond_or_across_the_words_read_is_named() {
        let beyond = Config {
            swiss_map_global_depth: 40,
            ..go_layout()
        };
        assert_eq!(beyond.unreadable_field(), Some("maps.Map.globalDepth"));
        let across = Config {
            hmap_noverflow: 15,
            ..go_layout()
        };
        assert_eq!(across.unreadable_field(), Some("hmap.noverflow"));
        // The seeds too: hash0 beyond the hmap's two words, a uintptr seed across two.
        let beyond = Config {
            hmap_hash0: 16,
            ..go_layout()
        };
        assert_eq!(beyond.unreadable_field(), Some("hmap.hash0"));
        let across = Config {
            swiss_map_seed: 12,
            ..go_layout()
        };
        assert_eq!(across.unreadable_field(), Some("maps.Map.seed"));
    }
}
