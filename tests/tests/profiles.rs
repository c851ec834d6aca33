//! `--pprof` and `--flamegraph`: every stack's growth as a pprof profile, read back by the Go
//! toolchain's own `go tool pprof`, and as an SVG flame graph, on plain and stripped builds,
//! classic and Swiss maps.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use mapleak_tests::{Fixture, GoBuild, Report, Tracer, build, fixture::go_bin, require_root};

const SOURCE: &str = "tests/fixtures/mapgrow/main.go";

/// The line of `needle` in the fixture's function `func`, read from its source.
fn source_line(func: &str, needle: &str) -> u32 {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mapgrow/main.go"),
    )
    .unwrap();
    let start = src
        .lines()
        .position(|l| l.starts_with(&format!("func {func}(")))
        .unwrap();
    let offset = src
        .lines()
        .skip(start)
        .position(|l| l.trim() == needle)
        .unwrap();
    (start + offset + 1) as u32
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mapleak-profiles-{}-{name}", std::process::id()))
}

/// Traces `exe args…` with both profiles asked for; returns the report and the two files.
fn trace(exe: &Path, args: &[&str], tag: &str) -> (Report, PathBuf, PathBuf) {
    let (pprof, svg) = (
        scratch(&format!("{tag}.pb.gz")),
        scratch(&format!("{tag}.svg")),
    );
    let fixture = Fixture::start(exe, args, &[]);
    let tracer = Tracer::attach(
        fixture.pid(),
        &[
            "--pprof",
            pprof.to_str().unwrap(),
            "--flamegraph",
            svg.to_str().unwrap(),
        ],
    );
    fixture.go_and_wait();
    (tracer.finish(), pprof, svg)
}

/// `go tool pprof ARGS… FILE`, which must succeed.
fn pprof(file: &Path, args: &[&str]) -> String {
    let out = Command::new(go_bin("1.27.3"))
        .args(["tool", "pprof"])
        .args(args)
        .arg(file)
        .env("GOTOOLCHAIN", "local")
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .expect("run go tool pprof");
    assert!(
        out.status.success(),
        "go tool pprof {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The sample values `go tool pprof -raw` lists, summed per sample type.
fn raw_totals(raw: &str) -> (u64, u64) {
    let samples = raw
        .split_once("Samples:\n")
        .expect("a Samples section")
        .1
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("Locations"));
    samples.fold((0, 0), |(events, bytes), line| {
        let values: Vec<u64> = line
            .split(':')
            .next()
            .unwrap()
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        (events + values[0], bytes + values[1])
    })
}

/// The first row of `go tool pprof -top -lines` by bytes, the runtime's frames hidden (their
/// flat values go to the caller, as in Go's own heap profiles).
fn top_line(file: &Path) -> String {
    let top = pprof(
        file,
        &[
            "-top",
            "-lines",
            "-sample_index=grow_space",
            "-hide=^runtime\\.|^internal/runtime/",
        ],
    );
    let mut rows = top
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"));
    rows.next();
    rows.next().expect("a top row").to_owned()
}

fn check(spec: &GoBuild, strip: bool, tag: &str) {
    let mut exe = build(spec);
    if strip {
        exe = mapleak_tests::strip(&exe);
    }
    let (report, file, svg) = trace(&exe, &["fill", "100000", "3"], tag);
    // What the toolchain's reader finds equals the JSON summary.
    let raw = pprof(&file, &["-raw"]);
    assert!(raw.contains("PeriodType: grow_space bytes"), "{raw}");
    assert_eq!(
        raw_totals(&raw),
        (
            report.u64(&["maps", "grow_events"]),
            report.u64(&["maps", "grow_bytes"])
        ),
        "{raw}"
    );
    // The compiler may inline fill into main: then the line is marked so, as in Go's own
    // profiles.
    let top = top_line(&file);
    let line = source_line("fill", "m[i] = i");
    let at = format!("{SOURCE}:{line}");
    assert!(
        top.contains(" main.fill ")
            && (top.ends_with(&at) || top.ends_with(&format!("{at} (inline)"))),
        "{top}"
    );
    // The flame graph: well-formed XML naming the fixture's function with its share.
    let ok = Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])",
        ])
        .arg(&svg)
        .status()
        .expect("run python3");
    assert!(ok.success(), "{} is not well-formed XML", svg.display());
    let text = std::fs::read_to_string(&svg).unwrap();
    let site = report.summary["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["function"] == "main.fill")
        .expect("main.fill grew");
    let share = site["bytes"].as_f64().unwrap() / report.u64(&["maps", "grow_bytes"]) as f64;
    let title = format!(
        "<title>main.fill ({} bytes, {:.2}%)</title>",
        commas(site["bytes"].as_u64().unwrap()),
        share * 100.0
    );
    assert!(text.contains(&title), "no {title} in {}", svg.display());
    for f in [file, svg] {
        let _ = std::fs::remove_file(f);
    }
}

/// `1234567` → `1,234,567`, as the flame graph writes counts.
fn commas(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn pprof_reads_every_stack_and_the_flame_graph_names_the_line() {
    require_root();
    check(&GoBuild::plain("mapgrow", "1.21.13"), false, "classic");
    check(&GoBuild::plain("mapgrow", "1.27.3"), true, "swiss-stripped");
}

#[test]
fn an_inlined_call_site_is_a_line_of_its_callers_location() {
    require_root();
    for (spec, strip) in [
        (GoBuild::plain("mapgrow", "1.21.13"), false),
        (GoBuild::plain("mapgrow", "1.27.3"), true),
    ] {
        let mut exe = build(&spec);
        if strip {
            exe = mapleak_tests::strip(&exe);
        }
        let (_, file, svg) = trace(&exe, &["inlined", "100000"], "inlined");
        // As `go tool pprof -lines` shows Go's own heap profiles: the inlined function's line,
        // marked inline, and its caller's line at the same address.
        let top = top_line(&file);
        let line = source_line("put", "m[k] = k");
        assert!(
            top.contains(" main.put ") && top.ends_with(&format!("{SOURCE}:{line} (inline)")),
            "{top}"
        );
        let raw = pprof(&file, &["-raw"]);
        let location = raw
            .lines()
            .skip_while(|l| !l.contains(" main.put "))
            .take(2)
            .collect::<Vec<_>>();
        assert!(
            location.len() == 2 && location[1].trim_start().starts_with("main.inlined "),
            "{raw}"
        );
        for f in [file, svg] {
            let _ = std::fs::remove_file(f);
        }
    }
}
