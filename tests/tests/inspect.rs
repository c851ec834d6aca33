//! `mapleak inspect` on good and bad files: a plan, or one sentence and exit status 1 — never a
//! panic (exit status 101).

use std::{path::Path, process::Command};

use mapleak_tests::{
    GoBuild, build, tracer,
    versions::{MATRIX, Mode},
};

const GO121: GoBuild = GoBuild {
    name: "mapgrow",
    go: "1.21.13",
    flags: &[],
    env: &[],
};
const GO127_STRIPPED: GoBuild = GoBuild {
    name: "mapgrow",
    go: "1.27.3",
    flags: &["-ldflags=-s -w"],
    env: &[],
};

fn inspect(path: &Path) -> std::process::Output {
    tracer::run(&["inspect", path.to_str().unwrap()])
}

fn assert_refused(path: &Path, needle: &str) {
    let out = inspect(path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}: {stderr}", path.display());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("mapleak: "), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} missing from {stderr}");
}

fn scratch(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/inspect-bad");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn files_that_are_not_elf() {
    assert_refused(
        &scratch("text", b"#!/bin/sh\necho hi\n"),
        "is not an ELF executable",
    );
    assert_refused(&scratch("empty", b""), "is not an ELF executable");
    // What is not a regular file is refused before it is read: /dev/zero would never end, a
    // FIFO without a writer would block forever.
    assert_refused(
        Path::new("/dev/zero"),
        "is a device, not an executable file",
    );
    let fifo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/inspect-bad/fifo");
    let _ = std::fs::remove_file(&fifo);
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo takes a NUL-terminated path and a mode.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert_refused(&fifo, "is a FIFO, not an executable file");
    let missing = tracer::run(&["inspect", "/nonexistent/mapleak-test-binary"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}

#[test]
fn truncated_and_garbled_go_binaries_never_panic() {
    for spec in [GO121, GO127_STRIPPED] {
        let bytes = std::fs::read(build(&spec)).unwrap();
        // Cut at 64 points spread over the file, and at the very small sizes.
        let cuts = (1..64)
            .map(|i| bytes.len() * i / 64)
            .chain([4, 16, 63, 64, 65, 4096]);
        for cut in cuts {
            let out = inspect(&scratch("cut", &bytes[..cut]));
            assert_ne!(out.status.code(), Some(101), "panic at cut {cut}");
            assert_eq!(
                out.status.code(),
                Some(1),
                "a {cut}-byte prefix was accepted"
            );
        }
        // ELF magic followed by noise.
        let mut noise: Vec<u8> = (0..65_536u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        noise[..4].copy_from_slice(b"\x7fELF");
        let out = inspect(&scratch("noise", &noise));
        assert_eq!(out.status.code(), Some(1));
        // Every 4 KiB page of the real binary overwritten in turn with 0xff: any outcome but a
        // panic or a hang is acceptable (some pages are padding).
        for page in (0..bytes.len()).step_by(bytes.len() / 48 + 1) {
            let mut garbled = bytes.clone();
            let end = (page + 4096).min(garbled.len());
            garbled[page..end].fill(0xff);
            let out = inspect(&scratch("garbled", &garbled));
            assert!(
                matches!(out.status.code(), Some(0) | Some(1)),
                "page {page:#x}: {:?} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn a_file_needs_no_privileges() {
    let exe = build(&GO121);
    let out = tracer::run_unprivileged(&["inspect", "--format", "json", exe.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["go_version"], "go1.21.13");
    assert_eq!(plan["map_impl"], "classic");
    assert_eq!(plan["probes"][0]["symbol"], "runtime.hashGrow");
}

/// `memstats.numgc`, found by decoding `gcMarkTermination`, is where `.symtab` says `memstats`
/// is plus the field's offset in that release (7704 up to 1.24, 7680 from 1.25, per DWARF).
#[test]
fn numgc_is_found_by_disassembly_on_every_go() {
    for config in MATRIX.iter() {
        let exe = build(&config.build(Mode::Normal));
        let nm = Command::new("nm").arg(&exe).output().expect("run nm");
        let memstats = String::from_utf8_lossy(&nm.stdout)
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 3 && f[2] == "runtime.memstats").then(|| u64::from_str_radix(f[0], 16))
            })
            .expect("runtime.memstats in .symtab")
            .unwrap();
        let offset = if config.minor() >= 25 { 7680 } else { 7704 };
        let out = tracer::run(&["inspect", "--format", "json", exe.to_str().unwrap()]);
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(plan["numgc_address"], memstats + offset, "go {}", config.go);
    }
}
