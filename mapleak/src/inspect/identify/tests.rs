use super::*;
use crate::inspect::{inspect_bytes, inspect_bytes_as, testgo};

#[test]
fn version_strings_are_what_runtime_version_returns() {
    for good in [
        "go1.26.5",
        "go1.19",
        "go1.22rc1",
        "go1.21beta2",
        "go1.24.11 X:noswissmap",
        "go1.25.5 X:greenteagc,jsonv2",
    ] {
        assert!(is_version_string(good), "{good}");
    }
    for bad in [
        "go1.",
        "go1.x",
        "go1.26.",
        "go1.26.5.go",
        "go1.26.5 ",
        "go1.24 X:",
        "go1.24 X:No",
        "go1.26_test",
        "go2.0",
    ] {
        assert!(!is_version_string(bad), "{bad}");
    }
}

#[test]
fn the_flag_takes_a_version_with_or_without_go() {
    assert_eq!(parse_flag("1.26.5").unwrap().raw, "go1.26.5");
    assert_eq!(parse_flag("go1.19").unwrap().minor, 19);
    assert!(parse_flag("1.26.5x").is_none());
    assert!(parse_flag("latest").is_none());
    assert!(parse_flag("").is_none());
}

#[test]
fn experiments_come_from_the_version_string() {
    let b = build_from_version("go1.24.11 X:noswissmap,foo");
    assert_eq!(b.go_version, "go1.24.11");
    assert!(b.has_experiment("noswissmap"));
    assert!(!build_from_version("go1.24.11").has_experiment("noswissmap"));
}

#[test]
fn build_version_header_is_the_compared_and_set_length_word_less_8() {
    // 0x1000: cmp qword [rip+0x100], 0 (→ 0x1108); mov qword [rip+0xf5], 7 (→ 0x1108)
    let code = [
        0x48, 0x83, 0x3d, 0x00, 0x01, 0x00, 0x00, 0x00, // cmp qword [rip+0x100], 0
        0x48, 0xc7, 0x05, 0xf5, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00,
        0x00, // mov qword [rip+0xf5], 7
        0xc3,
    ];
    assert_eq!(build_version_header(&code, 0x1000), Some(0x1100));
    // Set but never compared: not the check schedinit makes.
    assert_eq!(build_version_header(&code[8..], 0x1008), None);
}

/// `bytes` with every `.go.buildinfo` magic overwritten: what a build that drops the build
/// information leaves to go on.
fn without_buildinfo(bytes: &[u8]) -> Vec<u8> {
    let magic = b"\xff Go buildinf:";
    let mut out = bytes.to_vec();
    let mut hits = 0;
    for i in 0..out.len() - magic.len() {
        if &out[i..i + magic.len()] == magic {
            out[i..i + magic.len()].fill(0);
            hits += 1;
        }
    }
    assert_eq!(hits, 1, "one build information block");
    out
}

/// `bytes` with `len` bytes at link-time `address` zeroed.
fn zeroed(bytes: &[u8], address: u64, len: usize) -> Vec<u8> {
    let elf = GoElf::parse("x", bytes).unwrap();
    let off = elf.file_offset(address).unwrap() as usize;
    let mut out = bytes.to_vec();
    out[off..off + len].fill(0);
    out
}

/// What the layout alone says, per release.
fn expected_layout(version: &str, swiss: bool) -> (u32, u32) {
    let minor: u32 = version.split('.').nth(1).unwrap().parse().unwrap();
    match minor {
        19 => (18, 19),
        21 => (20, 21),
        22 | 23 => (22, 24),
        24 if swiss => (24, 24),
        24 => (22, 24),
        25 if !swiss => (25, 25),
        _ => (25, u32::MAX),
    }
}

/// A fixture build: name tag, `go build` flags, environment.
type Variant = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

/// On every installed Go, as a normal, stripped and PIE build (and noswissmap where it
/// exists): without `.go.buildinfo` the version comes from `runtime.buildVersion`, and the
/// probe plan is the intact build's; without that either, from the version string; without
/// any, the layout's range is named and `--go-version` is needed and checked against it.
#[test]
fn versions_are_recovered_without_build_information_on_every_installed_go() {
    let mut checked = 0;
    for version in testgo::versions() {
        let minor: u32 = version.split('.').nth(1).unwrap().parse().unwrap();
        let mut variants: Vec<Variant> = vec![
            ("", &[], &[]),
            ("-stripped", &["-ldflags=-s -w"], &[]),
            ("-pie", &["-buildmode=pie"], &[]),
        ];
        if minor == 24 || minor == 25 {
            variants.push((
                "-noswiss-stripped",
                &["-ldflags=-s -w"],
                &[("GOEXPERIMENT", "noswissmap")],
            ));
        }
        for (tag, flags, env) in variants {
            let Some(exe) = testgo::fixture(version, tag, flags, env) else {
                continue;
            };
            let name = format!("Go {version}{tag}");
            let intact = std::fs::read(&exe).unwrap();
            let want = inspect_bytes("intact", &intact).unwrap();
            assert_eq!(want.go_version_source, VersionSource::BuildInfo, "{name}");
            let elf = GoElf::parse("intact", &intact).unwrap();
            let table = symbols::pclntab(&elf).unwrap();
            let layout = Layout::of(&table);
            assert_eq!(
                (layout.lo, layout.hi),
                expected_layout(version, want.map_impl == MapImpl::Swiss),
                "{name}: {layout:?}"
            );
            assert_eq!(layout.map_impl, Some(want.map_impl), "{name}");

            let bare = without_buildinfo(&intact);
            let got = inspect_bytes("bare", &bare).unwrap();
            assert_eq!(got.go_version, want.go_version, "{name}");
            assert_eq!(got.go_version_source, VersionSource::BuildVersion, "{name}");
            assert_eq!(got.map_impl, want.map_impl, "{name}");
            assert_eq!(got.probes, want.probes, "{name}");
            assert_eq!(got.numgc_address, want.numgc_address, "{name}");
            assert_eq!(got.gcphase_address, want.gcphase_address, "{name}");
            assert_eq!(got.pause_start_address, want.pause_start_address, "{name}");
            assert_eq!(got.offsets, want.offsets, "{name}");

            // The runtime's own string gone too: the one version string in .rodata.
            let (_, f) = table.functions(&[SCHEDINIT]).into_iter().next().unwrap();
            let header =
                build_version_header(elf.code(f.address, f.size).unwrap(), f.address).unwrap();
            let barer = zeroed(&bare, header, 16);
            let got = inspect_bytes("barer", &barer).unwrap();
            assert_eq!(got.go_version, want.go_version, "{name}");
            assert_eq!(
                got.go_version_source,
                VersionSource::VersionString,
                "{name}"
            );
            assert_eq!(got.map_impl, want.map_impl, "{name}");

            // Nothing left: the user names it, within what the layout allows.
            let words = elf.code(header, 16).unwrap();
            let ptr = u64::from_le_bytes(words[..8].try_into().unwrap());
            let len = u64::from_le_bytes(words[8..].try_into().unwrap());
            let barest = zeroed(&barer, ptr, len as usize);
            let err = inspect_bytes("barest", &barest).unwrap_err().to_string();
            assert!(err.contains("--go-version"), "{name}: {err}");
            assert!(err.contains(&layout.describe()), "{name}: {err}");
            let named = inspect_bytes_as("barest", &barest, Some(&want.go_version)).unwrap();
            assert_eq!(named.go_version, want.go_version, "{name}");
            assert_eq!(named.go_version_source, VersionSource::Flag, "{name}");
            assert_eq!(named.map_impl, want.map_impl, "{name}");
            assert_eq!(named.probes, want.probes, "{name}");
            let outside = if minor == 19 { "1.27.3" } else { "1.19.8" };
            let err = inspect_bytes_as("barest", &barest, Some(outside))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("contradicts the binary's layout"),
                "{name}: {err}"
            );
            checked += 1;
        }
    }
    if checked == 0 {
        eprintln!("note: no Go toolchain installed; version recovery not checked");
    }
}

#[test]
fn a_flag_that_differs_from_the_build_information_is_used_and_noted() {
    let Some(exe) = testgo::fixture("1.22.10", "", &[], &[]) else {
        return;
    };
    let bytes = std::fs::read(&exe).unwrap();
    let got = inspect_bytes_as("x", &bytes, Some("go1.23.9")).unwrap();
    assert_eq!(got.go_version, "go1.23.9");
    assert_eq!(got.go_version_source, VersionSource::Flag);
    assert!(
        got.notes
            .iter()
            .any(|n| n == ".go.buildinfo says go1.22.10; --go-version go1.23.9 is used instead"),
        "{:?}",
        got.notes
    );
    let err = inspect_bytes_as("x", &bytes, Some("one"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a Go version"), "{err}");
}
