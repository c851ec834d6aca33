//! The GC probes under stress: thousands of back-to-back collections, and a target that dies in
//! the middle of one.

use mapleak_tests::{Fixture, GoBuild, Tracer, build, require_root};

const GO127: GoBuild = GoBuild {
    name: "mapgrow",
    go: "1.27.3",
    flags: &[],
    env: &[],
};

fn numgc(line: &str) -> u64 {
    line.strip_prefix("numgc ")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("expected `numgc N`, got {line:?}"))
}

/// Collections the tight loop forces: a few seconds of them on the machines this runs on.
const GC_LOOP: u64 = 3000;

#[test]
fn a_tight_runtime_gc_loop_loses_no_cycle() {
    require_root();
    let fixture = Fixture::start(&build(&GO127), &["gcloop", &GC_LOOP.to_string()], &[]);
    let tracer = Tracer::attach(fixture.pid(), &[]);
    let lines = fixture.go_and_wait();
    let report = tracer.finish();
    let (before, after) = (numgc(&lines[0]), numgc(&lines[1]));
    // Each runtime.GC() runs a whole cycle of its own (the runtime may add one it started).
    assert!(
        after - before >= GC_LOOP,
        "only {} cycles ran",
        after - before
    );
    assert_eq!(
        report.u64(&["events", "lost"]),
        0,
        "the default ring buffer kept up"
    );
    let seen: Vec<u64> = report.summary["gc"]["per_cycle"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cycle"].as_u64().unwrap())
        .filter(|n| (before + 1..=after).contains(n))
        .collect();
    let expected: Vec<u64> = (before + 1..=after).collect();
    assert_eq!(
        seen.len(),
        expected.len(),
        "every cycle between the two ReadMemStats, once"
    );
    assert_eq!(seen, expected);
    assert_eq!(report.summary["gc"]["unpaired"], 0);
    // Every cycle's pauses are the runtime's own, to the nanosecond.
    let runtime = Fixture::pauses(&lines);
    assert_eq!(runtime.len() as u64, after - before);
    for c in report.summary["gc"]["per_cycle"].as_array().unwrap() {
        let n = c["cycle"].as_u64().unwrap() as u32;
        if let Some(&ns) = runtime.get(&n) {
            let ours = c["sweep_term_pause_ns"].as_u64().unwrap()
                + c["mark_term_pause_ns"].as_u64().unwrap();
            assert_eq!(ours, ns, "{c}");
        }
    }
}

#[test]
fn a_target_killed_during_gc_still_gets_its_report() {
    require_root();
    // Far more collections than run before the kill.
    let mut fixture = Fixture::start(&build(&GO127), &["gcloop", "100000000"], &[]);
    let mut tracer = Tracer::attach(fixture.pid(), &["--interval", "50ms"]);
    fixture.go();
    numgc(&fixture.read_line());
    // Kill once mapleak has seen collections: the loop does nothing else, so the kill lands
    // inside a cycle or between two.
    while tracer.next_interval()["gc_cycles"].as_u64() == Some(0) {}
    fixture.kill();
    let report = tracer.finish();
    assert_eq!(report.summary["stop_reason"], "target_exited");
    assert!(report.u64(&["gc", "cycles"]) >= 1);
}
