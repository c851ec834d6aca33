//! GC cycles and pauses against two independent observers inside the target: the `gc N` lines of
//! `GODEBUG=gctrace=1`, and the runtime's own per-cycle stop-the-world accounting
//! (`MemStats.PauseNs`), on every Go of the matrix.

use std::collections::BTreeMap;

use mapleak_tests::{
    Fixture, Tracer, build,
    versions::{GoConfig, MATRIX, Mode},
};

const CYCLES: u32 = 6;

/// The two stop-the-world phases of a gctrace line, as printed (ns) and as far as the
/// printing truncated them: the runtime prints two significant digits and drops the rest
/// (fmtNSAsMS), so each true value is in `[printed, printed + one unit of its last digit)`.
#[derive(Clone, Copy, Debug)]
struct Clock {
    printed_ns: f64,
    truncation_ns: f64,
}

/// `gc N @… P%: A+B+C ms clock, …` → N ↦ A + C.
fn gctrace(stderr: &str) -> BTreeMap<u32, Clock> {
    let ms = |s: &str| -> Option<(f64, f64)> {
        let decimals = s.split('.').nth(1).map_or(0, str::len);
        Some((
            s.parse::<f64>().ok()? * 1e6,
            1e6 / 10f64.powi(decimals as i32),
        ))
    };
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("gc ")?;
            let n: u32 = rest.split_whitespace().next()?.parse().ok()?;
            let clock = l.split(": ").nth(1)?.split(" ms clock").next()?;
            let parts: Vec<&str> = clock.split('+').collect();
            let ((a, ua), (c, uc)) = (ms(parts.first()?)?, ms(parts.get(2)?)?);
            Some((
                n,
                Clock {
                    printed_ns: a + c,
                    truncation_ns: ua + uc,
                },
            ))
        })
        .collect()
}

/// `gcpause N NS` lines: MemStats.PauseNs of the fixture's own cycles.
fn pause_ns(stdout: &[String]) -> BTreeMap<u32, u64> {
    stdout
        .iter()
        .filter_map(|l| {
            let mut f = l.strip_prefix("gcpause ")?.split_whitespace();
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect()
}

fn check(config: &GoConfig) {
    let exe = build(&config.build(Mode::Normal));
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
    let trace = gctrace(&out.stderr);
    let runtime = pause_ns(&out.stdout);
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
        let clock = trace[n];
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

#[test]
fn gc_cycles_and_pauses_match_the_runtime_on_every_go() {
    mapleak_tests::require_root();
    let mut failures = mapleak_tests::Failures::new("gc");
    for config in MATRIX {
        let name = format!(
            "go {}{}",
            config.go,
            if config.noswissmap { " noswissmap" } else { "" }
        );
        failures.check(&name, || check(config));
    }
    failures.assert_none();
}
