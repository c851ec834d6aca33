//! Load bias: where the kernel placed the executable (non-zero for PIE), for data addresses such as
//! `memstats.numgc`. Code probes need none: uprobes are placed by file offset.

use std::fs;

/// `mapping start − link-time address` of the executable's first loadable segment, found in
/// `/proc/PID/maps` by the inode of the image that was inspected (robust to deleted or renamed
/// files, and never another image's mapping).
pub fn load_bias(pid: u32, inode: u64, first_load_vaddr: u64) -> Option<u64> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let start = mapping_of(&maps, inode)?;
    start.checked_sub(first_load_vaddr & !0xfff)
}

/// Start of the mapping of file offset 0 of the file with `inode`.
fn mapping_of(maps: &str, inode: u64) -> Option<u64> {
    maps.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let range = f.next()?;
        let (_perms, offset, _dev, ino) = (f.next()?, f.next()?, f.next()?, f.next()?);
        if ino.parse::<u64>().ok()? != inode || u64::from_str_radix(offset, 16).ok()? != 0 {
            return None;
        }
        u64::from_str_radix(range.split('-').next()?, 16).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_offset_zero_mapping_by_inode() {
        let maps = "\
555555554000-555555556000 r--p 00000000 fe:01 4242 /tmp/x (deleted)
555555556000-55555555a000 r-xp 00002000 fe:01 4242 /tmp/x (deleted)
7ffff7dd3000-7ffff7dfc000 r-xp 00000000 fe:01 99 /lib/ld.so
";
        assert_eq!(mapping_of(maps, 4242), Some(0x5555_5555_4000));
        assert_eq!(mapping_of(maps, 7), None);
    }

    #[test]
    fn our_own_bias_is_consistent() {
        // This test binary is a PIE or not; either way the bias is page-aligned.
        use std::os::unix::fs::MetadataExt;
        let inode = fs::metadata("/proc/self/exe").unwrap().ino();
        if let Some(bias) = load_bias(std::process::id(), inode, 0) {
            assert_eq!(bias % 4096, 0);
        }
    }
}
