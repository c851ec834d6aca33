//! The GC's cost per cycle, the settings it ran under, and map growth's share of allocation,
//! against what the runtime says itself: `GODEBUG=gctrace=1`, the fixture's own reading of
//! runtime/metrics, its environment and `debug.SetGCPercent`, and its own `MemStats.TotalAlloc`.

use mapleak_tests::{
    Failures, Fixture, Output, Report, Tracer, build,
    gctrace::{self, Cost},
    versions::{GoConfig, MATRIX, Mode},
};

/// Runs `gccost ARGS…` under a trace that ends, by Ctrl-C, once the workload is done and while
/// the process still lives: its counters are read at the end.
fn trace(config: &GoConfig, args: &[&str], env: &[(&str, &str)]) -> (Report, Vec<String>, Output) {
    trace_built(config, Mode::Normal, args, env)
}

fn trace_built(
    config: &GoConfig,
    mode: Mode,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Report, Vec<String>, Output) {
    let exe = build(&config.fixture("gccost", mode));
    let mut fixture = Fixture::start(&exe, args, env);
    let tracer = Tracer::attach(fixture.pid(), &[]);
    fixture.go();
    let lines = fixture.read_until("done");
    tracer.signal(libc::SIGINT);
    let report = tracer.finish();
    let rest = fixture.collect();
    assert_eq!(
        report.summary["events"]["lost"], 0,
        "{}",
        report.summary["events"]
    );
    assert!(
        !report.summary["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("cost")),
        "{}",
        report.summary["notes"]
    );
    (report, lines, rest)
}

/// `NAME A B` from the fixture's output.
fn pair(lines: &[String], name: &str) -> Option<(i64, i64)> {
    lines.iter().find_map(|l| {
        let mut f = l.strip_prefix(name)?.split_whitespace();
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}

fn ns(row: &serde_json::Value, key: &str) -> u64 {
    row[key]
        .as_u64()
        .unwrap_or_else(|| panic!("cycle {} has no {key}: {row}", row["cycle"]))
}

/// Each cycle's CPU as gctrace prints it (within its truncation) and its goal in whole MiB; the
/// assist time summed over the cycles as the fixture's runtime/metrics read it, to the ns.
fn check_cost(config: &GoConfig, mode: Mode) {
    let (report, lines, out) = trace_built(
        config,
        mode,
        &["cost", "200000", "1000"],
        &[("GODEBUG", "gctrace=1")],
    );
    let gc = &report.summary["gc"];
    let trace = gctrace::parse_cost(&out.stderr);
    let metrics = pair(&lines, "assist_ns");
    let cycles = pair(&lines, "cycles");
    let rows: Vec<&serde_json::Value> = gc["per_cycle"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| cycles.is_none_or(|(before, _)| c["cycle"].as_i64() > Some(before)))
        .collect();
    assert!(
        rows.len() >= 4,
        "too few cycles to judge: {}",
        gc["per_cycle"]
    );
    for row in &rows {
        let n = row["cycle"].as_u64().unwrap() as u32;
        let Cost {
            sweep_term,
            assist,
            background,
            idle,
            mark_term,
            goal_mb,
        } = *trace
            .get(&n)
            .unwrap_or_else(|| panic!("gctrace has no cycle {n}: {}", out.stderr));
        let holds = |what: &str, clock: gctrace::Clock, key: &str| {
            let v = ns(row, key);
            assert!(
                clock.holds(v),
                "cycle {n}: {what} {v} ns, gctrace {clock:?}"
            );
        };
        holds("assist", assist, "assist_cpu_ns");
        holds("background", background, "background_cpu_ns");
        holds("idle", idle, "idle_cpu_ns");
        holds("pause", sweep_term.plus(mark_term), "pause_cpu_ns");
        assert_eq!(ns(row, "heap_goal_bytes") >> 20, goal_mb, "cycle {n}: goal");
        assert!(row["limiter"].is_boolean(), "cycle {n}: {row}");
    }
    if let (Some((before, after)), Some((c0, c1))) = (metrics, cycles) {
        assert_eq!(
            rows.len() as i64,
            c1 - c0,
            "every cycle the runtime ran is read"
        );
        let sum: u64 = rows.iter().map(|r| ns(r, "assist_cpu_ns")).sum();
        assert!(
            (sum as i64 - (after - before)).abs() <= 10,
            "assist {sum} ns, /cpu/classes/gc/mark/assist {} ns",
            after - before
        );
        assert!(sum > 0, "the workload assists");
    }
    assert_eq!(gc["gogc"], 100);
    assert!(
        gc["gomemlimit_bytes"].is_null(),
        "{}",
        gc["gomemlimit_bytes"]
    );
    let fraction = gc["cpu_fraction"].as_f64().expect("cpu_fraction");
    assert!(fraction > 0.0 && fraction <= 1.0, "cpu_fraction {fraction}");
}

/// GOGC and GOMEMLIMIT from the environment, and GOGC turned off at run time.
fn check_settings(config: &GoConfig) {
    let (report, ..) = trace(
        config,
        &["settings", "2"],
        &[("GOGC", "150"), ("GOMEMLIMIT", "1GiB")],
    );
    let gc = &report.summary["gc"];
    assert_eq!(gc["gogc"], 150);
    assert_eq!(gc["gomemlimit_bytes"], 1u64 << 30);
    let (report, ..) = trace(config, &["settings", "2", "off"], &[]);
    let gc = &report.summary["gc"];
    assert_eq!(gc["gogc"], -1);
    assert!(
        gc["gomemlimit_bytes"].is_null(),
        "{}",
        gc["gomemlimit_bytes"]
    );
    let last = gc["per_cycle"].as_array().unwrap().last().cloned();
    assert!(
        last.is_some_and(|c| !c["assist_cpu_ns"].is_null()),
        "{}",
        gc["per_cycle"]
    );
}

/// Maps that only grow (`share`): all the heap allocation, against `totalAlloc`; with as many
/// bytes of slices beside them, half.
fn check_share(config: &GoConfig) {
    for (args, expect, tolerance) in [
        (&["share", "58000"][..], 1.0, 0.01),
        (&["share", "58000", "slices"][..], 0.5, 0.025),
    ] {
        let (report, ..) = trace(config, args, &[]);
        let gc = &report.summary["gc"];
        let map = gc["map_alloc_bytes"].as_u64().unwrap() as f64;
        let all = gc["allocated_bytes"].as_u64().expect("allocated_bytes") as f64;
        let raw = map / all;
        eprintln!("{args:?}: map growth is {raw:.4} of totalAlloc");
        assert!(
            (raw - expect).abs() <= tolerance,
            "{args:?}: map growth {map} B of {all} B allocated = {raw}"
        );
        let share = gc["map_alloc_share"].as_f64().expect("map_alloc_share");
        assert!(
            (share - expect).abs() <= tolerance,
            "{args:?}: share {share}"
        );
    }
}

/// `gc_pressure` on maps grown from empty. Its fix's saving against what a twin that pre-sizes
/// the same maps allocates less (`MemStats.TotalAlloc`), and the cycles that saving is worth
/// against the run's own cycles per byte (`MemStats.NumGC`): both count work, not time. The
/// twin's own cycle count moves with the pacer's timing, so it is printed, not judged.
fn check_pressure(config: &GoConfig) {
    let delta = |lines: &[String], name| {
        let (before, after) = pair(lines, name).unwrap_or_else(|| panic!("no {name} line"));
        (after - before) as f64
    };
    let (report, lines, _) = trace(config, &["pressure", "500", "20000"], &[]);
    let (cycles, allocated) = (delta(&lines, "numgc"), delta(&lines, "totalalloc"));
    let findings = report.summary["findings"].as_array().unwrap();
    let pressure = findings
        .iter()
        .find(|f| f["kind"] == "gc_pressure")
        .unwrap_or_else(|| panic!("no gc_pressure: {findings:?}"));
    let fix = findings
        .iter()
        .find(|f| f["kind"] == "unsized_map" && f["function"] == "main.pressure")
        .unwrap_or_else(|| panic!("no unsized_map in main.pressure: {findings:?}"));
    let at = format!(
        "main.pressure {}:{}",
        fix["file"].as_str().unwrap(),
        fix["line"]
    );
    assert!(
        pressure["evidence"]["fixes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["at"] == at.as_str() && f["kind"] == "unsized_map"),
        "gc_pressure does not name {at}: {pressure}"
    );
    let share = pressure["evidence"]["map_alloc_share"].as_f64().unwrap();
    assert!(share > 0.5, "map growth is {share} of allocation");
    let saving = fix["saving"]["bytes"].as_f64().unwrap();
    let predicted = fix["gc"]["cycles"].as_f64().expect("the fix's GC saving");
    // The run's own rate: cycles per byte allocated, over the whole workload.
    let expected = saving * cycles / allocated;
    assert!(
        (predicted - expected).abs() <= 0.2 * expected,
        "predicted {predicted:.1} fewer cycles; at the run's {cycles} cycles for {allocated} B, {saving} B is {expected:.1}"
    );

    let (twin, lines, _) = trace(config, &["pressure", "500", "20000", "presized"], &[]);
    let twin_findings = twin.summary["findings"].as_array().unwrap();
    assert!(
        !twin_findings.iter().any(|f| f["kind"] == "gc_pressure"),
        "{twin_findings:?}"
    );
    // Pre-sizing saves the growth's intermediate arrays, and with classic maps the overflow
    // buckets they filled, which a size hint's saving does not count.
    let saved = allocated - delta(&lines, "totalalloc");
    assert!(
        saving <= saved * 1.02 && saving >= saved * 0.8,
        "the fix saves {saving} B; pre-sized, the twin allocated {saved} B less"
    );
    eprintln!(
        "cycles: {cycles}, pre-sized {}; predicted saving {predicted:.1}",
        delta(&lines, "numgc")
    );
}

fn name(config: &GoConfig) -> String {
    format!(
        "go {}{}",
        config.go,
        if config.noswissmap { " noswissmap" } else { "" }
    )
}

fn every_go(what: &'static str, check: fn(&GoConfig)) {
    mapleak_tests::require_root();
    let mut failures = Failures::new(what);
    for config in MATRIX.iter() {
        failures.check(&name(config), || check(config));
    }
    failures.assert_none();
}

/// Stripped builds too: `runtime.work` and `gcCPULimiter` are then found in the GC's code.
#[test]
fn cycle_costs_match_gctrace_and_runtime_metrics_on_every_go() {
    mapleak_tests::require_root();
    let mut failures = Failures::new("gc cost");
    for config in MATRIX.iter() {
        for mode in [Mode::Normal, Mode::Stripped] {
            failures.check(&format!("{} {mode:?}", name(config)), || {
                check_cost(config, mode)
            });
        }
    }
    failures.assert_none();
}

#[test]
fn gogc_and_gomemlimit_are_the_runtimes_on_every_go() {
    every_go("gc settings", check_settings);
}

#[test]
fn map_alloc_share_is_growth_over_total_alloc_on_every_go() {
    every_go("map alloc share", check_share);
}

#[test]
fn gc_pressure_predicts_the_cycles_a_presized_twin_saves_on_every_go() {
    every_go("gc pressure", check_pressure);
}
