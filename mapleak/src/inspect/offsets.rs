//! Struct offsets of the Go runtime, per version, for the kernel programs (`mapleak_common::Config`).
//!
//! Values were read from the DWARF of each release's binaries (go1.19, go1.21–go1.27 on amd64);
//! the tests pin them. The kernel programs' offsets are the same in every release; the `gcController`
//! fields user space reads moved once, in 1.21.

use mapleak_common::Config;

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

/// `runtime.gcControllerState.heapMarked`, which user space reads (not the kernel programs):
/// 1.21 dropped three words ahead of it. Go 1.20 is absent, as for [`work_pause_start`].
pub fn heap_marked(v: &GoVersion) -> Option<u64> {
    match v.minor {
        19 => Some(184),
        21..=27 => Some(152),
        _ => None,
    }
}

/// `runtime.gcControllerState.totalAlloc`, the heap bytes allocated since start, which user space
/// reads too: 18 words after `heapMarked` in every release, so it moves with it. Go 1.20 is
/// absent, as for [`heap_marked`].
pub fn total_alloc(v: &GoVersion) -> Option<u64> {
    match v.minor {
        19 => Some(328),
        21..=27 => Some(296),
        _ => None,
    }
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
    fn heap_marked_offset_follows_the_gc_controller_layout() {
        let at = |s| heap_marked(&GoVersion::parse(s).unwrap());
        assert_eq!(at("go1.19.8"), Some(184));
        assert_eq!(at("go1.20.14"), None);
        assert_eq!(at("go1.21.13"), Some(152));
        assert_eq!(at("go1.23.9"), Some(152));
        assert_eq!(at("go1.27.3"), Some(152));
    }

    #[test]
    fn total_alloc_offset_follows_the_gc_controller_layout() {
        let at = |s| total_alloc(&GoVersion::parse(s).unwrap());
        assert_eq!(at("go1.19.8"), Some(328));
        assert_eq!(at("go1.20.14"), None);
        assert_eq!(at("go1.21.13"), Some(296));
        assert_eq!(at("go1.23.9"), Some(296));
        assert_eq!(at("go1.27.3"), Some(296));
    }
}
