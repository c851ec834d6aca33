//! The runtime's heap accounting as mapleak reads it from the target (`gcController`), against
//! the runtime's own report of the same figures read by the fixture itself (runtime/metrics in
//! Go 1.21+, runtime.MemStats in 1.19) while it holds still; and `unreleased_memory` on what it
//! is about — idle heap held far above the goal — and not on its look-alikes: RSS that is a
//! file mapping, a heap at its normal GOGC headroom, memory the runtime returns by itself.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use mapleak_tests::{Failures, Fixture, GoBuild, Tracer, build, require_root, strip};
use serde_json::Value;

const MIB: u64 = 1 << 20;
/// mapleak's sampling interval here, and how long the fixture holds still after printing its
/// figures: the finding wants a second of readings.
const INTERVAL: &str = "200ms";
const HOLD: Duration = Duration::from_millis(1600);
const ATTEMPTS: usize = 3;

fn go121() -> GoBuild<'static> {
    GoBuild::plain("heap", "1.21.13")
}

fn go127() -> GoBuild<'static> {
    GoBuild::plain("heap", "1.27.3")
}

fn go119() -> GoBuild<'static> {
    GoBuild::plain("heap", "1.19")
}

struct Run {
    summary: Value,
    /// The fixture's `NAME VALUE` lines.
    printed: BTreeMap<String, u64>,
    go: &'static str,
}

impl Run {
    fn printed(&self, name: &str) -> u64 {
        *self
            .printed
            .get(name)
            .unwrap_or_else(|| panic!("the fixture printed no {name}: {:?}", self.printed))
    }

    fn memory(&self, field: &str) -> &Value {
        &self.summary["memory"][field]
    }

    fn unreleased(&self) -> Vec<&Value> {
        self.summary["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == "unreleased_memory")
            .collect()
    }

    fn the_finding(&self) -> &Value {
        let all = self.unreleased();
        assert_eq!(all.len(), 1, "{}", self.summary["findings"]);
        let f = all[0];
        assert_eq!(f["line"], 0, "{f}");
        assert_eq!(f["estimated"], false, "{f}");
        &f["evidence"]
    }

    fn assert_no_finding(&self) {
        assert!(
            self.unreleased().is_empty(),
            "Go {}: {}",
            self.go,
            self.summary["findings"]
        );
    }

    /// What mapleak read equals what the runtime reported.
    fn assert_figures_are_the_runtimes(&self) {
        let m = &self.summary["memory"];
        assert!(
            !self.printed.contains_key("unsettled"),
            "{:?}",
            self.printed
        );
        assert_eq!(m["heap_read_errors"], 0, "{m}");
        for (field, name) in [
            ("heap_in_use_bytes", "heap_in_use"),
            ("heap_free_bytes", "heap_free"),
            ("heap_released_bytes", "heap_released"),
            ("heap_goal_bytes", "heap_goal"),
            ("gogc", "gogc"),
        ] {
            assert_eq!(
                u(&m[field]),
                self.printed(name),
                "Go {}: {field}: {m}",
                self.go
            );
        }
        let limit = self.printed("gomemlimit");
        if limit == i64::MAX as u64 {
            assert!(m["gomemlimit_bytes"].is_null(), "{m}");
        } else {
            assert_eq!(u(&m["gomemlimit_bytes"]), limit, "{m}");
        }
        // Go 1.19 has no metric of the marked heap.
        if let Some(&live) = self.printed.get("heap_live") {
            assert_eq!(u(&m["heap_live_bytes"]), live, "{m}");
        }
        // smaps_rollup, as the fixture read it a moment before settling (and before printing,
        // which touches a few more pages).
        let anonymous = self.printed("anonymous");
        let seen = u(&m["anonymous_bytes"]);
        assert!(
            seen.abs_diff(anonymous) <= (anonymous / 20).max(MIB),
            "{m} vs {anonymous}"
        );
    }

    /// What the rule mapleak replaced saw: RSS at least twice the live heap and 64 MiB above it.
    fn assert_the_old_rule_would_fire(&self) {
        let rss = u(self.memory("rss_bytes"));
        let live = u(self.memory("heap_live_bytes"));
        assert!(
            rss >= 2 * live && rss - live >= 64 * MIB,
            "rss {rss}, live {live}"
        );
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

/// The fixture's `NAME VALUE` lines (a bare `NAME` is 0).
fn parse(lines: &[String]) -> BTreeMap<String, u64> {
    lines
        .iter()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?.to_owned();
            match f.next() {
                Some(v) => Some((name, v.parse().ok()?)),
                None => Some((name, 0)),
            }
        })
        .collect()
}

/// Runs `mode` under `mapleak trace --exact --interval 200ms`; mapleak is stopped (Ctrl-C) once
/// the fixture has held still for `hold` after printing its figures, while it still lives. The
/// fixture then reads its figures again; returns the figures that moved meanwhile.
/// How long the trace goes on after the fixture's first reading.
enum Hold {
    For(Duration),
    /// Until the target's anonymous memory is this much below the fixture's reading (or a
    /// minute has passed): the runtime returning memory in its own time, however busy the
    /// machine is.
    UntilReturned(u64),
}

fn anonymous_bytes(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let kib: u64 = rollup
        .lines()
        .find_map(|l| l.strip_prefix("Anonymous:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn trace_once(
    exe: &Path,
    go: &'static str,
    mode: &str,
    env: &[(&str, &str)],
    hold: Hold,
) -> (Run, Vec<String>) {
    let mut fixture = Fixture::start(exe, &[mode], env);
    let tracer = Tracer::attach(fixture.pid(), &["--interval", INTERVAL]);
    fixture.go();
    let printed = parse(&fixture.read_until("done"));
    match hold {
        Hold::For(d) => std::thread::sleep(d),
        Hold::UntilReturned(bytes) => {
            let start = std::time::Instant::now();
            let target = printed["anonymous"].saturating_sub(bytes);
            while anonymous_bytes(fixture.pid()).is_some_and(|now| now > target)
                && start.elapsed() < Duration::from_secs(60)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            // mapleak reads the runtime's counters once more as the trace ends.
        }
    }
    tracer.signal(libc::SIGINT);
    let report = tracer.finish();
    fixture.send("again");
    let after = parse(&fixture.read_until("end"));
    fixture.release();
    let moved = after
        .iter()
        .filter_map(|(name, v)| {
            let name = name.strip_prefix("after_")?;
            (printed.get(name) != Some(v)).then(|| format!("{name} {:?} → {v}", printed.get(name)))
        })
        .collect();
    let run = Run {
        summary: report.summary,
        printed,
        go,
    };
    (run, moved)
}

fn exe(spec: &GoBuild, stripped: bool) -> PathBuf {
    let exe = build(spec);
    if stripped { strip(&exe) } else { exe }
}

/// [`trace_once`] until a run in which the runtime's figures did not move from the fixture's
/// first reading to its second (the scavenger can return a few pages in the background): only
/// then can mapleak's reading in between be compared with them. Up to [`ATTEMPTS`] runs.
fn trace(spec: &GoBuild<'static>, stripped: bool, mode: &str, env: &[(&str, &str)]) -> Run {
    let exe = exe(spec, stripped);
    let mut moved = Vec::new();
    for _ in 0..ATTEMPTS {
        let (run, changed) = trace_once(&exe, spec.go, mode, env, Hold::For(HOLD));
        if changed.is_empty() {
            return run;
        }
        eprintln!(
            "Go {} {mode}: the figures moved, again: {changed:?}",
            spec.go
        );
        moved.push(changed.join(", "));
    }
    panic!(
        "Go {} {mode}: the runtime's figures moved during every trace: {moved:?}",
        spec.go
    );
}

#[test]
fn the_runtimes_own_figures_are_read_at_its_normal_headroom() {
    require_root();
    let mut failures = Failures::new("headroom");
    for (spec, stripped) in [(go121(), false), (go127(), true), (go119(), true)] {
        failures.check(spec.go, || {
            let run = trace(&spec, stripped, "headroom", &[]);
            run.assert_figures_are_the_runtimes();
            assert_eq!(run.memory("gogc"), 400);
            let goal = u(run.memory("heap_goal_bytes"));
            assert!(goal > 150 * MIB, "the goal is GOGC=400's: {goal}");
            run.assert_the_old_rule_would_fire();
            run.assert_no_finding();
        });
    }
    failures.assert_none();
}

#[test]
fn gogc_and_gomemlimit_are_read_from_the_runtime() {
    require_root();
    let mut failures = Failures::new("GOGC and GOMEMLIMIT");
    for (spec, stripped) in [(go121(), false), (go119(), true)] {
        failures.check(spec.go, || {
            let env = [("GOGC", "150"), ("GOMEMLIMIT", "1GiB")];
            let run = trace(&spec, stripped, "returned", &env);
            run.assert_figures_are_the_runtimes();
            assert_eq!(run.memory("gogc"), 150);
            assert_eq!(run.memory("gomemlimit_bytes"), 1 << 30);
            let run = trace(&spec, stripped, "returned", &[]);
            run.assert_figures_are_the_runtimes();
            assert_eq!(run.memory("gogc"), 100);
            assert!(run.memory("gomemlimit_bytes").is_null());
            // Every idle page went back: nothing to find.
            run.assert_no_finding();
        });
    }
    failures.assert_none();
}

/// The finding's figures are the runtime's, its parts add up to anonymous RSS, and its amount
/// is the free heap above the goal plus the scavenger's 10 %.
fn check_held(run: &Run) -> &Value {
    run.assert_figures_are_the_runtimes();
    let e = run.the_finding();
    let m = &run.summary["memory"];
    for field in [
        "heap_in_use_bytes",
        "heap_free_bytes",
        "heap_released_bytes",
        "anonymous_bytes",
        "rss_bytes",
    ] {
        assert_eq!(e[field], m[field], "{field}: {e} vs {m}");
    }
    // The process held still: the goal over the readings that held is the goal now.
    assert_eq!(u(&e["heap_goal_bytes"]), run.printed("heap_goal"), "{e}");
    assert_eq!(e["held_goal_bytes"], e["heap_goal_bytes"], "{e}");
    let goal = run.printed("heap_goal");
    let need = goal + goal / 100 * 10;
    assert_eq!(u(&e["heap_need_bytes"]), need, "{e}");
    let (in_use, free) = (run.printed("heap_in_use"), run.printed("heap_free"));
    assert_eq!(
        u(&e["idle_above_need_bytes"]),
        free.min((in_use + free).saturating_sub(need)),
        "{e}"
    );
    assert_eq!(
        u(&e["excess_bytes"]),
        u(&e["idle_above_need_bytes"]) + u(&e["lazy_free_bytes"]),
        "{e}"
    );
    let parts = [
        "heap_in_use_bytes",
        "heap_free_bytes",
        "runtime_other_bytes",
        "lazy_free_bytes",
    ];
    let accounted: i64 = parts.iter().map(|p| u(&e[*p]) as i64).sum();
    let anonymous = u(&e["anonymous_bytes"]) as i64;
    assert_eq!(
        accounted + e["other_anonymous_bytes"].as_i64().unwrap(),
        anonymous,
        "{e}"
    );
    // The runtime accounts for nearly all of this pure-Go process's anonymous memory.
    assert!(
        e["other_anonymous_bytes"].as_i64().unwrap().abs() < anonymous / 10,
        "{e}"
    );
    assert_eq!(
        u(&e["rss_bytes"]),
        u(&e["anonymous_bytes"]) + u(&e["file_bytes"])
    );
    assert!(u(&e["held_ns"]) >= 1_000_000_000, "{e}");
    e
}

#[test]
fn idle_heap_held_above_the_goal_is_found() {
    require_root();
    let mut failures = Failures::new("held");
    for (spec, stripped) in [(go121(), false), (go127(), true)] {
        failures.check(spec.go, || {
            let run = trace(&spec, stripped, "burst", &[]);
            let e = check_held(&run);
            assert!(u(&e["heap_free_bytes"]) >= 200 * MIB, "{e}");
            assert_eq!(u(&e["lazy_free_bytes"]), 0, "{e}");
            let f = run.unreleased()[0]["suggestion"].as_str().unwrap();
            let limit = u(&e["suggested_gomemlimit_bytes"]);
            assert!(f.contains(&format!("GOMEMLIMIT={}MiB", limit / MIB)), "{f}");
            assert!(f.contains("debug.FreeOSMemory()"), "{f}");
            // Under a limit already set, the suggestion is to lower it.
            let run = trace(
                &spec,
                stripped,
                "burst",
                &[("GOMEMLIMIT", "1GiB"), ("GOGC", "150")],
            );
            let e = check_held(&run);
            assert_eq!(u(&e["gomemlimit_bytes"]), 1 << 30, "{e}");
            let f = run.unreleased()[0]["suggestion"].as_str().unwrap();
            assert!(
                f.to_lowercase().contains("lowering gomemlimit to")
                    || f.contains("lower GOMEMLIMIT to"),
                "{f}"
            );
        });
    }
    failures.assert_none();
}

#[test]
fn pages_released_with_madv_free_and_still_resident_are_found() {
    require_root();
    // Go 1.19 returns a burst's idle pages within seconds; under madvdontneed=0 RSS keeps them.
    let run = trace(&go119(), true, "lazy", &[("GODEBUG", "madvdontneed=0")]);
    let e = check_held(&run);
    assert!(u(&e["lazy_free_bytes"]) >= 200 * MIB, "{e}");
    assert_eq!(u(&e["idle_above_need_bytes"]), 0, "{e}");
    let f = run.unreleased()[0]["suggestion"].as_str().unwrap();
    assert!(f.contains("madvdontneed=1"), "{f}");
}

#[test]
fn look_alikes_are_not_found() {
    require_root();
    let mut failures = Failures::new("look-alikes");
    for (spec, stripped) in [(go121(), false), (go127(), true)] {
        failures.check(&format!("{} filemap", spec.go), || {
            let run = trace(&spec, stripped, "filemap", &[]);
            run.assert_figures_are_the_runtimes();
            run.assert_the_old_rule_would_fire();
            let file = u(run.memory("rss_bytes")) - u(run.memory("anonymous_bytes"));
            assert!(file >= 200 * MIB, "{}", run.summary["memory"]);
            run.assert_no_finding();
        });
        failures.check(&format!("{} returned", spec.go), || {
            let run = trace(&spec, stripped, "returned", &[]);
            run.assert_figures_are_the_runtimes();
            run.assert_no_finding();
        });
    }
    // Go 1.19's scavenger returns the burst by itself after the GC (a second or two on a quiet
    // machine): held for a while, then returned within the trace, which is no finding.
    failures.check("1.19 burst", || {
        let (run, moved) = trace_once(
            &exe(&go119(), true),
            "1.19",
            "burst",
            &[],
            // Most of the 256 MiB burst: the runtime's own count of what it returned trails
            // the resident memory the kernel has taken back.
            Hold::UntilReturned(240 * MIB),
        );
        let returned = u(run.memory("heap_released_bytes")) - run.printed("heap_released");
        assert!(
            returned >= 200 * MIB,
            "{moved:?}: {}",
            run.summary["memory"]
        );
        run.assert_no_finding();
    });
    failures.assert_none();
}
