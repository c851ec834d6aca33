//! The target's code as it runs, against its file: a uprobe is an int3 written into the
//! process's copy of a text page, so `/proc/PID/mem` shows every breakpoint in place, and a
//! text that equals its file carries none.

use std::{fs::File, os::unix::fs::FileExt, path::Path};

/// One executable segment: file offset, link-time address, length.
struct Segment {
    offset: u64,
    vaddr: u64,
    len: u64,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The executable PT_LOAD segments of a non-PIE ELF64 (the fixtures' default build).
fn text_segments(elf: &[u8]) -> Vec<Segment> {
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(
        u16_at(elf, 0x10),
        2,
        "ET_EXEC: link-time addresses are run-time ones"
    );
    let (phoff, phentsize, phnum) = (
        u64_at(elf, 0x20) as usize,
        u16_at(elf, 0x36) as usize,
        u16_at(elf, 0x38) as usize,
    );
    (0..phnum)
        .map(|i| &elf[phoff + i * phentsize..])
        .filter(|ph| u32_at(ph, 0) == 1 && u32_at(ph, 4) & 1 != 0)
        .map(|ph| Segment {
            offset: u64_at(ph, 8),
            vaddr: u64_at(ph, 16),
            len: u64_at(ph, 32),
        })
        .collect()
}

/// Addresses where `pid`'s code differs from `exe`'s bytes.
pub fn differences(pid: u32, exe: &Path) -> Vec<u64> {
    let file = std::fs::read(exe).expect("read the executable");
    let mem = File::open(format!("/proc/{pid}/mem")).expect("open /proc/PID/mem");
    let mut out = Vec::new();
    for seg in text_segments(&file) {
        let mut running = vec![0u8; seg.len as usize];
        mem.read_exact_at(&mut running, seg.vaddr)
            .expect("read the running text");
        let on_disk = &file[seg.offset as usize..(seg.offset + seg.len) as usize];
        out.extend(
            running
                .iter()
                .zip(on_disk)
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .map(|(i, _)| seg.vaddr + i as u64),
        );
    }
    out
}

/// Every address where `mapleak inspect` plans a default probe in `exe`: post-prologue entries
/// and RETs, as each probe's placement says.
pub fn planned_probes(exe: &Path) -> Vec<u64> {
    let out = crate::tracer::run(&["inspect", exe.to_str().unwrap(), "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    let mut at = Vec::new();
    for p in plan["probes"].as_array().expect("probes") {
        if p["default"] != true {
            continue;
        }
        let base = p["address"].as_u64().unwrap();
        let placement = p["placement"].as_str().expect("a placement");
        if matches!(placement, "entry" | "entry_and_rets") {
            at.push(base + p["post_prologue"].as_u64().unwrap());
        }
        if matches!(placement, "rets" | "entry_and_rets") {
            at.extend(
                p["ret_offsets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| base + r.as_u64().unwrap()),
            );
        }
    }
    at
}
