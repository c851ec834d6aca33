//! Mark assists by call site against the runtime's own accounting: a fixture with a large
//! pointer-rich live heap and two goroutines filling maps while the GC marks, which reads
//! `/cpu/classes/gc/mark/assist:cpu-seconds` itself (Go 1.20+), on every Go of the matrix; and
//! its twin with the GC off, which must show no assist at all; and the calls the GC CPU limiter
//! cuts short, against the runtime's own record of when it turned on
//! (`/gc/limiter/last-enabled:gc-cycle`, Go 1.20+).

use mapleak_tests::{
    Fixture, GoBuild, Report, Tracer, build, gctrace,
    versions::{GoConfig, MATRIX},
};
use serde_json::Value;

/// 64 MiB of linked nodes to mark, and 2 × 40 maps of 200 000 entries (about 750 MiB of bucket
/// arrays): a few dozen cycles, each marking long enough for the fillers to owe scan work.
const LIVE_MB: &str = "64";
const FILLS: &str = "40";
const ENTRIES: &str = "200000";

/// The runtime keeps up to this much assist time per P and cycle unflushed, and drops it when
/// the next cycle starts (go-gc-cost.md D.4): the metric can miss it, the probes do not.
const RESIDUE_NS_PER_P_CYCLE: u64 = 5_000;
/// What the probes may add to each assist beyond the runtime's own window: go-gc-cost.md C.4
/// measured up to 25 µs per call (the trap, and the thread descheduled around it on a loaded
/// host), plus the two hits of this tool's own entry and RET probes…
const BIAS_NS_PER_CALL: u64 = 25_000;
/// … and, relative to the total, the +4.7 % worst case measured there.
const BIAS_SHARE: f64 = 0.047;

fn fixture(config: &GoConfig) -> std::path::PathBuf {
    build(&GoBuild {
        name: "assist",
        go: config.go,
        flags: &[],
        env: if config.noswissmap {
            &[("GOEXPERIMENT", "noswissmap")]
        } else {
            &[]
        },
    })
}

/// The line of the fixture's map assignment, marked in its source.
fn assist_line() -> u64 {
    let src = include_str!("../fixtures/assist/main.go");
    src.lines()
        .position(|l| l.contains("// assist site"))
        .expect("the fixture marks its assist site") as u64
        + 1
}

fn stdout_value(lines: &[String], key: &str) -> Option<u64> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
}

/// The fixture traced with `env` (and gctrace on), and its standard output and error.
fn trace(config: &GoConfig, env: &[(&str, &str)]) -> (Report, Vec<String>, String) {
    trace_with(config, env, &[LIVE_MB, FILLS, ENTRIES])
}

/// [`trace`], with the fixture's arguments.
fn trace_with(
    config: &GoConfig,
    env: &[(&str, &str)],
    args: &[&str],
) -> (Report, Vec<String>, String) {
    let exe = fixture(config);
    let mut env = env.to_vec();
    env.push(("GODEBUG", "gctrace=1"));
    let fixture = Fixture::start(&exe, args, &env);
    let tracer = Tracer::attach(fixture.pid(), &[]);
    let out = fixture.go_and_collect();
    (tracer.finish(), out.stdout, out.stderr)
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key} in {v}"))
}

fn gc_assist_findings(report: &Report) -> Vec<&Value> {
    report.summary["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "gc_assist")
        .collect()
}

/// The GC's share of the run under `check`: at the default 100 the fillers' assists came to
/// 4–7 % of the trace on Go 1.22, astride the gc_assist finding's 5 %; at 50 the mark phases
/// take a larger part of the run and the assists 27–35 %, so the finding's presence does not
/// depend on the machine.
const GOGC_UNDER_CHECK: &str = "50";

fn check(config: &GoConfig) {
    let (report, stdout, stderr) = trace(config, &[("GOGC", GOGC_UNDER_CHECK)]);
    let rows = report.summary["assists"].as_array().unwrap();
    let top = rows
        .first()
        .unwrap_or_else(|| panic!("no assists: {}", report.summary));
    // The filling goroutines pay, at the line that allocates.
    assert_eq!(top["function"], "main.fill", "{top}");
    assert!(
        top["file"]
            .as_str()
            .unwrap()
            .ends_with("fixtures/assist/main.go"),
        "{top}"
    );
    assert_eq!(n(top, "line"), assist_line(), "{top}");
    assert!(
        n(top, "count") > 0 && n(top, "p99_ns") <= n(top, "max_ns"),
        "{top}"
    );
    assert!(n(top, "p50_ns") <= n(top, "p99_ns"), "{top}");
    // Nothing else allocates while the fixture is traced (a Swiss map's header, made on the
    // line before, can be charged an assist of its own; a stack whose walk found no frame
    // outside the runtime is listed as unknown, so that the rows add up), and it allocates
    // only maps.
    assert!(
        rows.iter()
            .all(|r| r["function"] == "main.fill" || r["function"] == "(unknown)"),
        "{rows:?}"
    );
    let share = top["map_growth_share"].as_f64().expect("a map share");
    assert!(share > 0.95, "map growth share {share}: {top}");

    against_the_runtime(config, &report, &stdout, &stderr);
    // Without a memory limit the limiter seldom turns on; when it never did in the process's
    // life (the runtime says so), no call was cut short and no cycle ran under it.
    if stdout_value(&stdout, "limiter_last ") == Some(0) {
        assert_eq!(limiter_calls(&report), 0, "{rows:?}");
        assert_eq!(limited_cycles(&report), Vec::<u64>::new());
    }

    let found = gc_assist_findings(&report);
    assert_eq!(found.len(), 1, "{}", report.summary["findings"]);
    let f = found[0];
    assert_eq!(n(f, "line"), assist_line(), "{f}");
    assert_eq!(f["saving"]["of"], "latency", "{f}");
    assert_eq!(n(&f["evidence"], "total_ns"), n(top, "total_ns"), "{f}");
    assert_eq!(n(&f["evidence"], "p99_ns"), n(top, "p99_ns"), "{f}");
    assert!(
        f["evidence"]["map_growth_share"].as_f64() > Some(0.95),
        "{f}"
    );
    // Without a memory limit, GOGC sets every heap goal, and the advice is about GOGC.
    let set_by = &report.summary["gc"]["heap_goal_set_by"];
    assert_eq!((n(set_by, "memory_limit"), n(set_by, "live_heap")), (0, 0));
    let advice = f["suggestion"].as_str().unwrap();
    assert!(advice.contains("a higher GOGC"), "{advice}");
}

/// The assists' marking time (the runtime's own window, gcAssistAlloc1) against the runtime's
/// own assist time, summed over every row: the fixture's `runtime/metrics` reading (1.20+),
/// and gctrace's per-cycle assist figures for the cycles after the go-ahead (every version);
/// and each assist's wall time holds its marking, mark termination and parking.
fn against_the_runtime(config: &GoConfig, report: &Report, stdout: &[String], stderr: &str) {
    let rows = report.summary["assists"].as_array().unwrap();
    let sum = |key: &str| rows.iter().map(|r| n(r, key)).sum::<u64>();
    let (count, total, work) = (sum("count"), sum("total_ns"), sum("work_ns"));
    let (mark_term, parked) = (sum("in_mark_termination_ns"), sum("parked_ns"));
    assert!(work + mark_term + parked <= total, "{rows:?}");
    let hit_cost = report.summary["sampling"]["hit_cost_ns"].as_u64().unwrap();
    let cycles = stdout_value(stdout, "cycles ").expect("cycles");
    let procs = stdout_value(stdout, "procs ").expect("procs");
    let residue = RESIDUE_NS_PER_P_CYCLE * procs * cycles;
    let bias_per_call = count * (BIAS_NS_PER_CALL + 2 * hit_cost);
    // gctrace: the cycles the traced work ran in, each figure truncated when printed.
    let first = stdout_value(stdout, "cycles_before ").expect("cycles_before") as u32 + 1;
    let printed = gctrace::assist_cpu(stderr);
    assert!(
        printed.contains_key(&(cycles as u32)),
        "no gctrace line for the last cycle"
    );
    let (low, unit) = printed.range(first..).fold((0.0, 0.0), |(l, u), (_, c)| {
        (l + c.printed_ns, u + c.truncation_ns)
    });
    let bias = bias_per_call as f64 + low * BIAS_SHARE;
    assert!(
        work as f64 + residue as f64 >= low,
        "the probes saw {work} ns of assist work, gctrace at least {low} ns"
    );
    assert!(
        (work as f64) < low + unit + bias,
        "the probes saw {work} ns of assist work, gctrace less than {} ns (+ {bias} ns bias allowed)",
        low + unit
    );
    match stdout_value(stdout, "assist_ns ") {
        Some(runtime) => {
            let bias = bias_per_call + (runtime as f64 * BIAS_SHARE) as u64;
            eprintln!(
                "go {}: runtime {runtime} ns, gctrace {low:.0}+{unit:.0} ns; probes: {work} ns marking ({:+.1}%), {total} ns in {count} assists, {mark_term} ns mark termination, {parked} ns parked, {} ns other; limiter calls {}",
                config.go,
                (work as f64 / runtime.max(1) as f64 - 1.0) * 100.0,
                total - work - mark_term - parked,
                sum("limiter_calls"),
            );
            assert!(
                work + residue >= runtime,
                "the probes saw {work} ns of assist work, the runtime {runtime} ns"
            );
            assert!(
                work <= runtime + bias,
                "the probes saw {work} ns of assist work, the runtime {runtime} ns (+ {bias} ns bias allowed)"
            );
        }
        // Go 1.19 has no /cpu/classes metrics: gctrace is the oracle.
        None => {
            eprintln!(
                "go {}: gctrace {low:.0}+{unit:.0} ns; probes: {work} ns marking in {count} assists",
                config.go
            );
            assert!(stdout.iter().any(|l| l == "assist_ns unsupported"));
        }
    }
}

/// The same work with the GC off: nothing marks while it runs, so its goroutines never assist.
/// (The fixture's own runtime.GC() at the end marks: a runtime goroutine allocating then can
/// assist, and the runtime counts it; so the rows are still checked against the runtime's
/// figure.)
fn check_gc_off(config: &GoConfig) {
    let (report, stdout, stderr) = trace(config, &[("GOGC", "off")]);
    let rows = report.summary["assists"].as_array().unwrap();
    assert!(
        rows.iter().all(|r| r["function"] != "main.fill"),
        "{rows:?}"
    );
    assert!(gc_assist_findings(&report).is_empty());
    against_the_runtime(config, &report, &stdout, &stderr);
    // The probes were there to see any. (They may still be hit: the fixture's own
    // runtime.GC() marks, and the scheduler can allocate on g0 meanwhile, a call that returns
    // at once and is nobody's assist.)
    assert!(
        report.summary["probes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["program"] == "assist_alloc"),
        "the assist probes were not attached: {}",
        report.summary["probes"]
    );
}

fn limiter_calls(report: &Report) -> u64 {
    report.summary["assists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| n(r, "limiter_calls"))
        .sum()
}

/// The cycles the report says the limiter was on in.
fn limited_cycles(report: &Report) -> Vec<u64> {
    report.summary["gc"]["per_cycle"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["limiter"] == true)
        .map(|c| n(c, "cycle"))
        .collect()
}

/// A memory limit a quarter of the live heap: the GC runs back to back and, once it has taken
/// over half the CPU for long enough, the limiter turns on and cuts the assists short. The
/// fixture fills maps until the runtime records the limiter turning on during its work, then
/// a few more.
const LIMIT: &str = "16MiB";
const FILLS_UNDER_LIMITER: &str = "2";
const ENTRIES_UNDER_LIMITER: &str = "100000";

fn check_limiter(config: &GoConfig) {
    let (report, stdout, _) = trace_with(
        config,
        &[("GOMEMLIMIT", LIMIT)],
        &[
            LIVE_MB,
            FILLS_UNDER_LIMITER,
            ENTRIES_UNDER_LIMITER,
            "until-limiter",
        ],
    );
    let first = stdout_value(&stdout, "cycles_before ").expect("cycles_before") + 1;
    let last = stdout_value(&stdout, "limiter_last ").expect("limiter_last");
    assert!(
        last >= first,
        "the runtime says the limiter last turned on in cycle {last}, before the work began (cycle {first})"
    );
    let calls = limiter_calls(&report);
    let cycles = limited_cycles(&report);
    eprintln!(
        "go {}: limiter last on in cycle {last}; {calls} calls cut short; limited cycles {cycles:?}",
        config.go
    );
    assert!(calls > 0, "{}", report.summary["assists"]);
    assert!(
        cycles.iter().any(|&c| c >= first),
        "no cycle of the work ({first}…) is said to have run under the limiter: {cycles:?}"
    );
    // The runtime records the cycle in progress when the limiter turns on (numgc + 1); when
    // that cycle completed while traced, it is said to have run under the limiter. (It often
    // has not: the limiter turns on after the last forced collection.)
    let completed = report.summary["gc"]["per_cycle"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| n(c, "cycle") == last && !c["limiter"].is_null());
    if let Some(cycle) = completed {
        assert_eq!(cycle["limiter"], true, "{cycle}");
    }
    // A limit under what is already live leaves the runtime no goal but the live heap itself
    // (memoryLimitHeapGoal never goes below heapMarked): every reading says so, the limiter
    // cycles are the cycles said to be limited, and the advice is to raise the limit, not GOGC.
    let gc = &report.summary["gc"];
    let set_by = &gc["heap_goal_set_by"];
    assert_eq!(
        (n(set_by, "gogc"), n(set_by, "memory_limit")),
        (0, 0),
        "{gc}"
    );
    assert_eq!(n(gc, "limiter_cycles"), cycles.len() as u64);
    let found = gc_assist_findings(&report);
    let f = found.first().expect("a gc_assist finding");
    let advice = f["suggestion"].as_str().unwrap();
    assert!(
        advice.contains("GOMEMLIMIT 16.0 MiB is ") && advice.contains("raise the limit"),
        "{advice}"
    );
}

fn name(config: &GoConfig) -> String {
    format!(
        "go {}{}",
        config.go,
        if config.noswissmap { " noswissmap" } else { "" }
    )
}

#[test]
fn assists_are_timed_at_the_allocating_line_on_every_go() {
    mapleak_tests::require_root();
    let mut failures = mapleak_tests::Failures::new("assists");
    for config in MATRIX.iter() {
        failures.check(&name(config), || check(config));
    }
    failures.assert_none();
}

#[test]
fn no_assists_with_the_gc_off_on_every_go() {
    mapleak_tests::require_root();
    let mut failures = mapleak_tests::Failures::new("assists, GC off");
    for config in MATRIX.iter() {
        failures.check(&name(config), || check_gc_off(config));
    }
    failures.assert_none();
}

#[test]
fn calls_the_limiter_cuts_short_are_counted_on_every_go_that_records_it() {
    mapleak_tests::require_root();
    let mut failures = mapleak_tests::Failures::new("assists under the GC CPU limiter");
    // Go 1.19 has no /gc/limiter metric: nothing independent says when the limiter was on.
    for config in MATRIX.iter().filter(|c| !c.go.starts_with("1.19")) {
        failures.check(&name(config), || check_limiter(config));
    }
    failures.assert_none();
}
