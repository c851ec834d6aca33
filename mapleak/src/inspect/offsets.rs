//! Struct offsets of the Go runtime, per version, for the kernel programs (`mapleak_common::Config`).
//!
//! Values were read from the DWARF of each release's binaries (go1.19, go1.21–go1.27 on amd64);
//! the tests pin them. The kernel programs' offsets are the same in every release; the `gcController`
//! fields user space reads moved once, in 1.21.

use mapleak_common::Config;
use serde::Serialize;

use super::GoVersion;

/// `runtime.workType.pauseStart`, which only Go < 1.22 needs (later releases pass the stop time
/// as an argument). Go 1.20 is absent: no toolchain was at hand to read its layout.
pub fn work_pause_start(v: &GoVersion) -> Option<u64> {
    match v.minor {
        19 => Some(400),
        21 => Some(456),
        _ => None,
    }
}

/// Declares [`GcControllerFields`] from one list: the Rust name, the member's name in DWARF, and
/// its offset in go1.19 and in go1.21–go1.27 (the DWARF of each release's binaries; 1.21 dropped
/// the three words of `consMarkController` ahead of `gcPercentHeapGoal`). Go 1.20 is absent, as
/// for [`work_pause_start`].
macro_rules! gc_controller_fields {
    ($($(#[$doc:meta])* $field:ident: $member:literal @ $go119:literal, $go121:literal;)*) => {
        /// Offsets in `runtime.gcControllerState` of what user space reads: no kernel program
        /// needs them, so they live outside `Config`. `None`: not known for this binary.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
        pub struct GcControllerFields {
            $($(#[$doc])* pub $field: Option<u64>,)*
        }

        impl GcControllerFields {
            /// (DWARF member, field) for every field.
            pub const MEMBERS: &[(&str, &str)] = &[$(($member, stringify!($field))),*];

            /// mapleak's table for `v`.
            pub fn table(v: &GoVersion) -> Self {
                match v.minor {
                    19 => Self { $($field: Some($go119),)* },
                    21..=27 => Self { $($field: Some($go121),)* },
                    _ => Self::default(),
                }
            }

            /// (field, offset) for every field.
            pub fn fields(&self) -> Vec<(&'static str, Option<u64>)> {
                vec![$((stringify!($field), self.$field)),*]
            }

            /// The field called `name`, to fill in.
            pub fn field_mut(&mut self, name: &str) -> Option<&mut Option<u64>> {
                match name {
                    $(stringify!($field) => Some(&mut self.$field),)*
                    _ => None,
                }
            }
        }
    };
}

gc_controller_fields! {
    /// GOGC (`atomic.Int32`; -1 is off).
    gc_percent: "gcPercent" @ 0x0, 0x0;
    /// GOMEMLIMIT (`atomic.Int64`; `math.MaxInt64` when unset).
    memory_limit: "memoryLimit" @ 0x8, 0x8;
    /// The heap goal GOGC gives, stored at each commit (`^0` when GOGC is off).
    gc_percent_heap_goal: "gcPercentHeapGoal" @ 0x68, 0x48;
    sweep_dist_min_trigger: "sweepDistMinTrigger" @ 0x70, 0x50;
    /// `heapLive` when this cycle started; `^0` between cycles.
    triggered: "triggered" @ 0x78, 0x58;
    /// The goal of the last cycle (gctrace's "MB goal").
    last_heap_goal: "lastHeapGoal" @ 0x80, 0x60;
    /// The heap the last GC marked live.
    heap_marked: "heapMarked" @ 0xb8, 0x98;
    /// Bytes in in-use heap spans, free spans not returned, free spans returned (`sysMemStat`).
    heap_in_use: "heapInUse" @ 0x130, 0x110;
    heap_released: "heapReleased" @ 0x138, 0x118;
    heap_free: "heapFree" @ 0x140, 0x120;
    /// Heap bytes allocated and freed since start.
    total_alloc: "totalAlloc" @ 0x148, 0x128;
    total_free: "totalFree" @ 0x150, 0x130;
    /// All memory the runtime has mapped and not released: heap, stacks, metadata.
    mapped_ready: "mappedReady" @ 0x158, 0x138;
}

/// The kernel programs' offsets: the same in every supported release.
pub fn config() -> Config {
    Config {
        // Filled in at load time, with the load bias applied.
        numgc_addr: 0,
        pause_start_addr: 0,
        gcphase_addr: 0,
        target_tgid: 0,
        // runtime.hmap (classic)
        hmap_count: 0,
        hmap_flags: 8,
        hmap_b: 9,
        hmap_noverflow: 10,
        hmap_hash0: 12,
        // maptype after its 48-byte abi.Type: Key, Elem, then Bucket/Group at 64 in both
        // implementations; classic KeySize/ValueSize at 80/81, Swiss GroupSize at 80.
        maptype_key: 48,
        maptype_elem: 56,
        maptype_bucket: 64,
        maptype_key_size: 80,
        maptype_value_size: 81,
        maptype_group_size: 80,
        // abi.Type
        type_size: 0,
        type_ptr_bytes: 8,
        // internal/runtime/maps.Map and .table (identical in 1.24–1.27)
        swiss_map_used: 0,
        swiss_map_seed: 8,
        swiss_map_dir_len: 24,
        swiss_map_global_depth: 32,
        swiss_table_capacity: 2,
        swiss_table_local_depth: 6,
        hmap_oldbuckets: 24,
        _pad: [0; 2],
        // An address, set per process.
        limiter_enabled_addr: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_fits_the_growth_probes_reads() {
        assert_eq!(config().unreadable_field(), None);
    }

    #[test]
    fn gc_controller_offsets_follow_its_layout() {
        let at = |s| GcControllerFields::table(&GoVersion::parse(s).unwrap());
        assert_eq!(at("go1.19.8").heap_marked, Some(184));
        assert_eq!(at("go1.19.8").total_alloc, Some(328));
        assert_eq!(at("go1.20.14"), GcControllerFields::default());
        for v in ["go1.21.13", "go1.23.9", "go1.27.3"] {
            assert_eq!(at(v).heap_marked, Some(152));
            assert_eq!(at(v).total_alloc, Some(296));
            assert_eq!(at(v).gc_percent, Some(0));
        }
        // sysMemStat and atomic counters are eight bytes each, one after another.
        let f = at("go1.21.13");
        assert_eq!(f.heap_in_use.map(|o| o + 8), f.heap_released);
        assert_eq!(f.heap_released.map(|o| o + 8), f.heap_free);
        assert_eq!(f.heap_free.map(|o| o + 8), f.total_alloc);
        assert_eq!(f.total_free.map(|o| o + 8), f.mapped_ready);
        assert!(at("go1.19").fields().iter().all(|(_, o)| o.is_some()));
    }
}
