//! Struct offsets of the Go runtime, per version, for the kernel programs (`mapleak_common::Config`).
//!
//! Values come from the DWARF of each release's binaries (see the README's sources); tests pin them.

use mapleak_common::Config;

use super::GoVersion;

/// `runtime.g.goid`: moved by `g.syscallbp` (1.23) and back by the smaller `gobuf` (1.25).
fn g_goid(v: &GoVersion) -> u16 {
    match v.minor {
        23 | 24 => 160,
        _ => 152,
    }
}

/// Offsets for a classic-map (hmap) runtime.
pub fn classic(v: &GoVersion) -> Config {
    Config {
        g_goid: g_goid(v),
        hmap_count: 0,
        hmap_flags: 8,
        hmap_b: 9,
        hmap_noverflow: 10,
        maptype_bucket: 64,
        maptype_key_size: 80,
        maptype_value_size: 81,
        type_size: 0,
        type_ptr_bytes: 8,
        _pad: [0; 6],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goid_offset_follows_the_runtime_g_layout() {
        let at = |s| classic(&GoVersion::parse(s).unwrap()).g_goid;
        assert_eq!(at("go1.21.13"), 152);
        assert_eq!(at("go1.22.10"), 152);
        assert_eq!(at("go1.23.9"), 160);
    }
}
