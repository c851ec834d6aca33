//! Struct offsets of the Go runtime, per version, for the kernel programs (`mapleak_common::Config`).
//!
//! Values were read from the DWARF of each release's binaries (go1.19, go1.21–go1.27 on amd64);
//! the tests pin them. The kernel programs' offsets are the same in every release; the `gcController`
//! fields user space reads moved once, in 1.21.

use mapleak_common::{Config, GcCostLayout};
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

/// A struct's offsets, field by field: a table's, or what DWARF says.
pub trait OffsetTable: Copy {
    /// (field, offset) for every field.
    fn fields(&self) -> Vec<(&'static str, Option<u64>)>;
    /// The field called `name`, to fill in.
    fn field_mut(&mut self, name: &str) -> Option<&mut Option<u64>>;
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

macro_rules! offset_table {
    ($($t:ty),*) => {$(
        impl OffsetTable for $t {
            fn fields(&self) -> Vec<(&'static str, Option<u64>)> {
                <$t>::fields(self)
            }
            fn field_mut(&mut self, name: &str) -> Option<&mut Option<u64>> {
                <$t>::field_mut(self, name)
            }
        }
    )*};
}

offset_table!(GcControllerFields, GcCostFields);

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
    /// The mark CPU of the cycle in progress, or of the last one until the next starts: assists,
    /// dedicated and fractional workers, idle workers (plain `int64` in go1.19, `atomic.Int64`
    /// after; the value at the same offset).
    assist_time: "assistTime" @ 0xe0, 0xc0;
    dedicated_mark_time: "dedicatedMarkTime" @ 0xe8, 0xc8;
    fractional_mark_time: "fractionalMarkTime" @ 0xf0, 0xd0;
    idle_mark_time: "idleMarkTime" @ 0xf8, 0xd8;
}

/// The releases [`GcCostFields::table`] has a column for, in its order: go1.20 is absent, as for
/// [`work_pause_start`].
const GC_COST_RELEASES: [u32; 8] = [19, 21, 22, 23, 24, 25, 26, 27];

/// Declares [`GcCostFields`] from one list: the Rust name, the struct and member in DWARF, and
/// the offset in each of [`GC_COST_RELEASES`] (from the DWARF of each release's binaries).
macro_rules! gc_cost_fields {
    ($($(#[$doc:meta])* $field:ident: $strukt:literal . $member:literal @ [$($off:literal),*];)*) => {
        /// Offsets in `runtime.workType` and `runtime.gcCPULimiterState` of what the
        /// start-the-world probe reads of a cycle's cost. `None`: not known for this binary.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
        pub struct GcCostFields {
            $($(#[$doc])* pub $field: Option<u64>,)*
        }

        impl GcCostFields {
            /// (DWARF struct, member, field) for every field.
            pub const MEMBERS: &[(&str, &str, &str)] =
                &[$(($strukt, $member, stringify!($field))),*];

            /// mapleak's table for `v`; nothing outside the releases it was read from.
            pub fn table(v: &GoVersion) -> Self {
                let Some(column) = GC_COST_RELEASES.iter().position(|&m| m == v.minor) else {
                    return Self::default();
                };
                Self { $($field: Some([$($off),*][column]),)* }
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

gc_cost_fields! {
    /// Cycles started (`atomic.Uint32`; plain `uint32` in go1.19): `memstats.numgc + 1` while a
    /// cycle runs, `numgc` once it has ended.
    work_cycles: "runtime.workType"."cycles" @ [0x158, 0x190, 0x190, 0x1a8, 0x1a8, 0x200, 0x288, 0x288];
    /// `min(GOMAXPROCS, CPUs)`: what gctrace multiplies a pause's wall time by.
    work_stwprocs: "runtime.workType"."stwprocs" @ [0x15c, 0x194, 0x194, 0x1ac, 0x1ac, 0x204, 0x28c, 0x28c];
    /// GOMAXPROCS when the cycle started.
    work_maxprocs: "runtime.workType"."maxprocs" @ [0x160, 0x198, 0x198, 0x1b0, 0x1b0, 0x208, 0x290, 0x290];
    /// `nanotime()` at the start of each phase: sweep termination, mark, mark termination, end.
    work_t_sweep_term: "runtime.workType"."tSweepTerm" @ [0x168, 0x1a0, 0x1a0, 0x1b8, 0x1b8, 0x210, 0x298, 0x298];
    work_t_mark: "runtime.workType"."tMark" @ [0x170, 0x1a8, 0x1a8, 0x1c0, 0x1c0, 0x218, 0x2a0, 0x2a0];
    work_t_mark_term: "runtime.workType"."tMarkTerm" @ [0x178, 0x1b0, 0x1b0, 0x1c8, 0x1c8, 0x220, 0x2a8, 0x2a8];
    work_t_end: "runtime.workType"."tEnd" @ [0x180, 0x1b8, 0x1b8, 0x1d0, 0x1d0, 0x228, 0x2b0, 0x2b0];
    /// Whether the GC CPU limiter is on now (`atomic.Bool`).
    limiter_enabled: "runtime.gcCPULimiterState"."enabled" @ [0x4, 0x4, 0x4, 0x4, 0x4, 0x4, 0x4, 0x4];
    /// `numgc + 1` when the limiter last turned on (`atomic.Uint32`).
    limiter_last_enabled_cycle: "runtime.gcCPULimiterState"."lastEnabledCycle" @ [0x48, 0x48, 0x48, 0x40, 0x40, 0x40, 0x40, 0x40];
}

/// The offsets the start-the-world probe reads a cycle's cost at, or the name of the first it
/// lacks (or that does not fit the probe's 16-bit offsets).
pub fn gc_cost_layout(
    controller: &GcControllerFields,
    cost: &GcCostFields,
) -> Result<GcCostLayout, &'static str> {
    let off = |name: &'static str, value: Option<u64>| {
        value.and_then(|v| u16::try_from(v).ok()).ok_or(name)
    };
    Ok(GcCostLayout {
        work_cycles: off("workType.cycles", cost.work_cycles)?,
        work_stwprocs: off("workType.stwprocs", cost.work_stwprocs)?,
        work_maxprocs: off("workType.maxprocs", cost.work_maxprocs)?,
        work_t_sweep_term: off("workType.tSweepTerm", cost.work_t_sweep_term)?,
        work_t_mark: off("workType.tMark", cost.work_t_mark)?,
        work_t_mark_term: off("workType.tMarkTerm", cost.work_t_mark_term)?,
        work_t_end: off("workType.tEnd", cost.work_t_end)?,
        gc_percent: off("gcControllerState.gcPercent", controller.gc_percent)?,
        memory_limit: off("gcControllerState.memoryLimit", controller.memory_limit)?,
        last_heap_goal: off("gcControllerState.lastHeapGoal", controller.last_heap_goal)?,
        heap_marked: off("gcControllerState.heapMarked", controller.heap_marked)?,
        total_alloc: off("gcControllerState.totalAlloc", controller.total_alloc)?,
        assist_time: off("gcControllerState.assistTime", controller.assist_time)?,
        dedicated_time: off(
            "gcControllerState.dedicatedMarkTime",
            controller.dedicated_mark_time,
        )?,
        fractional_time: off(
            "gcControllerState.fractionalMarkTime",
            controller.fractional_mark_time,
        )?,
        idle_time: off("gcControllerState.idleMarkTime", controller.idle_mark_time)?,
        limiter_enabled: off("gcCPULimiterState.enabled", cost.limiter_enabled)?,
        limiter_last_enabled_cycle: off(
            "gcCPULimiterState.lastEnabledCycle",
            cost.limiter_last_enabled_cycle,
        )?,
        ..GcCostLayout::default()
    })
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
        gc_cost: GcCostLayout::default(),
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

    #[test]
    fn gc_cost_offsets_follow_their_layouts() {
        let v = |s| GoVersion::parse(s).unwrap();
        assert_eq!(
            GcCostFields::table(&v("go1.20.14")),
            GcCostFields::default()
        );
        for s in [
            "go1.19.8",
            "go1.21.13",
            "go1.22.10",
            "go1.23.9",
            "go1.24.11",
            "go1.25.5",
            "go1.26.6",
            "go1.27.3",
        ] {
            let f = GcCostFields::table(&v(s));
            // workType declares `cycles, stwprocs, maxprocs` then the four phase clocks in every
            // release; only where the block sits moves.
            let t = f.work_t_sweep_term.unwrap();
            assert_eq!(f.work_cycles, Some(t - 0x10), "{s}");
            assert_eq!(f.work_stwprocs, Some(t - 0xc), "{s}");
            assert_eq!(f.work_maxprocs, Some(t - 8), "{s}");
            assert_eq!(
                [f.work_t_mark, f.work_t_mark_term, f.work_t_end],
                [Some(t + 8), Some(t + 16), Some(t + 24)],
                "{s}"
            );
            let layout =
                gc_cost_layout(&GcControllerFields::table(&v(s)), &f).expect("every offset");
            assert_eq!(layout.assist_time + 8, layout.dedicated_time, "{s}");
        }
        assert_eq!(
            gc_cost_layout(
                &GcControllerFields::table(&v("go1.21.13")),
                &GcCostFields::default()
            ),
            Err("workType.cycles")
        );
    }
}
