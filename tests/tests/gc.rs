//! GC cycles and pauses against two independent observers inside the target: the `gc N` lines of
//! `GODEBUG=gctrace=1`, and the runtime's own per-cycle stop-the-world accounting
//! (`MemStats.PauseNs`), on every Go of the matrix.

use std::collections::BTreeMap;

use mapleak_tests::{
    Fixture, Tracer, build,
    gctrace::{self, End},
    versions::{GoConfig, MATRIX, Mode},
};

const CYCLES: u32 = 6;

fn check(config: &GoConfig, mode: Mode) {
    let exe = build(&config.build(mode));
    let cycles = CYCLES.to_string();
    let fixture = Fixture::start(&exe, &["gc", "20000", &cycles], &[("GODEBUG", "gctrace=1")]);
    let tracer = Tracer::attach(fixture.pid(), &[]);
    let out = fixture.go_and_collect();
    let report = tracer.finish();
    let gc = &report.summary["gc"];
    let ours: BTreeMap<u32, u64> = gc["per_cycle"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let pause = c["sweep_term_pause_ns"].as_u64().unwrap()
                + c["mark_term_pause_ns"].as_u64().unwrap();
            (c["cycle"].as_u64().unwrap() as u32, pause)
        })
        .collect();
    let trace = gctrace::parse(&out.stderr);
    let runtime = Fixture::pauses(&out.stdout);
    assert_eq!(runtime.len(), CYCLES as usize, "{:?}", out.stdout);

    // Cycle numbers: exactly gctrace's, from the first cycle mapleak saw.
    let first = *ours.keys().next().expect("mapleak saw GC cycles");
    let expected: Vec<u32> = trace.keys().copied().filter(|n| *n >= first).collect();
    assert_eq!(ours.keys().copied().collect::<Vec<_>>(), expected);
    assert_eq!(gc["unpaired"], 0);
    assert!(
        report.summary["notes"].as_array().unwrap().is_empty(),
        "{}",
        report.summary["notes"]
    );

    for (n, runtime_ns) in &runtime {
        // The runtime's own accounting, to the nanosecond.
        assert_eq!(ours.get(n), Some(runtime_ns), "cycle {n}");
        // gctrace's phase clocks start before the world is asked to stop, so they bound the pause
        // from above; before 1.22 they start at the same instant as the runtime's pause, so the
        // pause must equal them within their printed precision.
        let [sweep, _, mark_term] = trace[n];
        let clock = sweep.plus(mark_term);
        let pause = *runtime_ns as f64;
        assert!(
            pause < clock.printed_ns + clock.truncation_ns,
            "cycle {n}: pause {runtime_ns} ns exceeds gctrace's {clock:?}"
        );
        if config.minor() < 22 {
            assert!(
                pause >= clock.printed_ns,
                "cycle {n}: pause {runtime_ns} ns is below gctrace's {clock:?}"
            );
        }
    }
    let total: u64 = ours.values().sum();
    assert_eq!(gc["pause_total_ns"], total);
    assert_eq!(gc["pause_count"], 2 * ours.len() as u64);
    // The fixture's ReadMemStats is a stop of its own, reported apart from GC.
    let other = report.summary["stw_other"].as_array().unwrap();
    assert!(
        other.iter().any(|o| o["count"].as_u64() >= Some(1)),
        "ReadMemStats's stop is missing: {other:?}"
    );
    // Each forced cycle follows a fresh fill: its window holds map growth.
    let grew = gc["per_cycle"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["map_grow_events"].as_u64() > Some(0))
        .count();
    assert!(grew >= CYCLES as usize - 1, "{}", gc["per_cycle"]);
}

/// Every Go of the matrix, and the stripped builds whose GC data is found by disassembly
/// (`runtime.gcphase` and `runtime.work.pauseStart`, which only Go < 1.22 needs).
fn cases() -> Vec<(GoConfig, Mode)> {
    let mut cases: Vec<(GoConfig, Mode)> = MATRIX.iter().map(|c| (*c, Mode::Normal)).collect();
    cases.extend(
        MATRIX
            .iter()
            .filter(|c| c.minor() < 22)
            .map(|c| (*c, Mode::Stripped)),
    );
    cases
}

fn name(config: &GoConfig, mode: Mode) -> String {
    format!(
        "go {}{} {mode:?}",
        config.go,
        if config.noswissmap { " noswissmap" } else { "" }
    )
}

#[test]
fn gc_cycles_and_pauses_match_the_runtime_on_every_go() {
    mapleak_tests::require_root();
    let mut failures = mapleak_tests::Failures::new("gc");
    for (config, mode) in cases() {
        failures.check(&name(&config, mode), || check(&config, mode));
    }
    failures.assert_none();
}

/// Live pointers the `gcread` fixture keeps, so that each mark phase lasts long enough for its
/// ReadMemStats loop to stop the world inside it.
const GCREAD_NODES: &str = "200000";
const GCREAD_CYCLES: &str = "4";

/// Each cycle's mark phase against gctrace's mark clock, while a ReadMemStats loop stops the
/// world again and again in the middle of it.
fn check_mark(config: &GoConfig, mode: Mode) {
    let exe = build(&config.build(mode));
    let fixture = Fixture::start(
        &exe,
        &["gcread", GCREAD_NODES, GCREAD_CYCLES],
        &[("GODEBUG", "gctrace=1")],
    );
    let tracer = Tracer::attach(fixture.pid(), &[]);
    let out = fixture.go_and_collect();
    let report = tracer.finish();
    let trace = gctrace::parse(&out.stderr);
    let gc = &report.summary["gc"];
    assert_eq!(gc["unpaired"], 0);
    let reads: u64 = out
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("reads ")?.parse().ok())
        .expect("the fixture counts its reads");
    let other: u64 = report.summary["stw_other"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["count"].as_u64().unwrap())
        .sum();
    // Every ReadMemStats is a stop of its own, and none is taken for a GC stop.
    assert!(other >= reads, "{other} other stops for {reads} reads");
    gctrace::check_cycles(&report.summary, &trace, config.minor(), End::ProgramExit);
}

#[test]
fn mark_phases_match_gctrace_with_stops_during_mark_on_every_go() {
    mapleak_tests::require_root();
    let mut failures = mapleak_tests::Failures::new("gc mark");
    for (config, mode) in cases() {
        failures.check(&name(&config, mode), || check_mark(&config, mode));
    }
    failures.assert_none();
}
