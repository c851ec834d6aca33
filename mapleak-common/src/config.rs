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
    /// `runtime.g.goid`.
    pub g_goid: u16,
    /// `runtime.hmap.count`, `.flags`, `.B`, `.noverflow`, `.oldbuckets`.
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
    pub _pad: [u16; 3],
}

const _: () = assert!(core::mem::size_of::<Config>() == 72);

#[cfg(feature = "user")]
// SAFETY: `Config` is `repr(C)`, made of integers only, with explicit padding.
unsafe impl aya::Pod for Config {}
