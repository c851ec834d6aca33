//! Maps shared by every probe family, and the configuration user space writes before load.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE},
    macros::map,
    maps::{Array, LruHashMap, LruPerCpuHashMap, PerCpuArray, RingBuf},
};
use mapleak_common::{Config, GcCostLayout, ProbeId, maps::Evacuation, probe::COUNTER_SLOTS};

/// Events to user space. User space resizes it at load time (`--ring-size`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

/// Submit flags for the next event: wake the reader only once the ring is a quarter full.
///
/// A wake-up per record (the default when the reader keeps up) costs the traced thread an
/// interrupt and a reschedule on every probe hit; user space drains on a short timer instead,
/// and the forced wake-up keeps a burst from overrunning the ring before the timer fires.
#[inline(always)]
pub fn wakeup() -> u64 {
    let pending = EVENTS.query(BPF_RB_AVAIL_DATA.into());
    let size = EVENTS.query(BPF_RB_RING_SIZE.into());
    if pending >= size / 4 {
        BPF_RB_FORCE_WAKEUP.into()
    } else {
        BPF_RB_NO_WAKEUP.into()
    }
}

/// Assignments per map address (opt-in assign probes): counted here, never sent as events.
#[map]
pub static ASSIGNS: LruPerCpuHashMap<u64, u64> = LruPerCpuHashMap::with_max_entries(65536, 0);

/// Evacuation in progress per classic map (opt-in evacuate probes).
#[map]
pub static EVACUATING: LruHashMap<u64, Evacuation> = LruHashMap::with_max_entries(16384, 0);

/// Probes user space is detaching (1), by `ProbeId` slot: a link being dropped can fire for a
/// few more milliseconds, and those hits must neither cost the target a stack walk nor count as
/// seen outside the window they were not part of.
#[map]
pub static PROBES_OFF: Array<u32> = Array::with_max_entries(ProbeId::SLOTS, 0);

/// Hits per probe, counted whether or not an event could be emitted.
#[map]
pub static HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(ProbeId::SLOTS, 0);

/// Loss and error counters (`mapleak_common::probe::COUNTER_*`).
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// Offsets into the target's runtime structures, written by user space before load.
#[unsafe(no_mangle)]
static CONFIG: Config = Config {
    numgc_addr: 0,
    pause_start_addr: 0,
    gcphase_addr: 0,
    target_tgid: 0,
    hmap_count: 0,
    hmap_flags: 0,
    hmap_b: 0,
    hmap_noverflow: 0,
    maptype_bucket: 0,
    maptype_key_size: 0,
    maptype_value_size: 0,
    type_size: 0,
    type_ptr_bytes: 0,
    maptype_key: 0,
    maptype_elem: 0,
    maptype_group_size: 0,
    swiss_map_used: 0,
    swiss_map_dir_len: 0,
    swiss_map_global_depth: 0,
    swiss_table_capacity: 0,
    swiss_table_local_depth: 0,
    hmap_oldbuckets: 0,
    hmap_hash0: 0,
    swiss_map_seed: 0,
    _pad: [0; 2],
    limiter_enabled_addr: 0,
    gc_cost: GcCostLayout {
        work_addr: 0,
        controller_addr: 0,
        limiter_addr: 0,
        work_cycles: 0,
        work_stwprocs: 0,
        work_maxprocs: 0,
        work_t_sweep_term: 0,
        work_t_mark: 0,
        work_t_mark_term: 0,
        work_t_end: 0,
        gc_percent: 0,
        memory_limit: 0,
        last_heap_goal: 0,
        heap_marked: 0,
        total_alloc: 0,
        assist_time: 0,
        dedicated_time: 0,
        fractional_time: 0,
        idle_time: 0,
        limiter_enabled: 0,
        limiter_last_enabled_cycle: 0,
        _pad: [0; 2],
    },
};

#[inline(always)]
pub fn config() -> &'static Config {
    let at: *const Config = &CONFIG;
    // SAFETY: a volatile read of a local pointer to a plain static: its value is opaque to the
    // compiler, which therefore cannot fold the zero initialiser that user space replaces before
    // load into the field reads, and no copy of the whole struct lands on the 512-byte stack.
    unsafe { &*core::ptr::read_volatile(&at) }
}
