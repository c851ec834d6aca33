//! The overhead governor on a workload whose growth probes would cost several times the target's
//! own work: it must cut that cost, say what it sampled, and never misattribute a pause.

use mapleak_tests::{Fixture, GoBuild, Tracer, build, require_root};

const GO127: GoBuild = GoBuild {
    name: "mapgrow",
    go: "1.27.3",
    flags: &[],
    env: &[],
};

/// Runs `churn 4000` (fresh 200-entry maps for 4 s) under mapleak with `args` (`None`:
/// `--exact`); returns the maps it managed to make and the summary.
fn churn(args: Option<&[&str]>) -> (u64, serde_json::Value) {
    let fixture = Fixture::start(&build(&GO127), &["churn", "4000"], &[]);
    let tracer = match args {
        Some(args) => Tracer::attach_governed(fixture.pid(), args),
        None => Tracer::attach(fixture.pid(), &[]),
    };
    let lines = fixture.go_and_wait();
    let report = tracer.finish();
    let maps = lines
        .iter()
        .find_map(|l| l.strip_prefix("maps ")?.trim().parse().ok())
        .expect("the fixture printed its map count");
    (maps, report.summary)
}

fn growth_group(summary: &serde_json::Value) -> serde_json::Value {
    summary["sampling"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "growth")
        .cloned()
        .expect("a growth group")
}

#[test]
fn the_default_budget_bounds_the_cost_and_marks_the_counts_sampled() {
    require_root();
    let (exact_maps, exact) = churn(None);
    // Exact: every escaping 200-entry Swiss map grows six times (small group, 16-slot table,
    // then 32, 64, 128 and 256 slots).
    assert_eq!(
        exact["maps"]["grow_events"],
        6 * exact_maps,
        "{} {}",
        exact["events"],
        exact["notes"]
    );
    assert_eq!(exact["sampling"]["governor"], false);

    let (_, governed) = churn(Some(&[]));
    let s = &governed["sampling"];
    assert_eq!(s["governor"], true, "{s}");
    assert!(s["hit_cost_ns"].as_u64() > Some(0));
    let growth = growth_group(&governed);
    assert_eq!(growth["sampled"], true, "{growth}");
    // Probes costing about what the target's own work does get a share near the 1 % budget:
    // far less than half (what it takes to detach is no part of the test).
    let attached = growth["attached_fraction"].as_f64().expect("a fraction");
    assert!(attached < 0.5, "{growth}");
    // Switching the probes many times loses no record's type sizes (sent once per type and
    // CPU) and drops nothing.
    assert_eq!(governed["events"]["invalid"], 0, "{}", governed["events"]);
    assert_eq!(governed["events"]["lost"], 0, "{}", governed["events"]);
    // Every event seen is reported as seen; the scaled figure is never below it.
    assert_eq!(growth["observed_events"], governed["maps"]["grow_events"]);
    assert!(growth["estimated_events"].as_u64() >= growth["observed_events"].as_u64());
}

#[test]
fn sampled_counts_are_scaled_to_the_truth() {
    require_root();
    // A fixed share (so that the sample does not depend on how fast the machine is), windows
    // spread over the run. The truth is the fixture's own count: 6 growths a map, as the exact
    // run of the test above shows. The windows' events are scaled by the heap the target
    // allocated in them against all it allocated, which the probes do not change.
    let (maps, governed) = churn(Some(&["--duty", "growth=0.05"]));
    let growth = growth_group(&governed);
    assert_eq!(growth["sampled"], true, "{growth}");
    assert_eq!(growth["scaled_by"], "allocation", "{growth}");
    let estimated = growth["estimated_events"].as_u64().unwrap() as f64;
    let truth = (6 * maps) as f64;
    eprintln!(
        "estimated {estimated} of {truth} ({:.3}), attached {}",
        estimated / truth,
        growth["attached_fraction"]
    );
    assert!(
        (0.9..=1.1).contains(&(estimated / truth)),
        "estimated {estimated} vs {truth} made"
    );
    // The interval the windows' scatter gives holds the truth.
    let interval = &growth["estimated_events_interval"];
    let (lo, hi) = (
        interval[0].as_u64().unwrap() as f64,
        interval[1].as_u64().unwrap() as f64,
    );
    assert!(lo <= truth && truth <= hi, "{truth} outside {interval}");
    assert!(lo <= estimated && estimated <= hi, "{interval}");
}

#[test]
fn switching_the_gc_probes_never_misattributes_a_pause() {
    require_root();
    // The GC probes are switched on and off many times while back-to-back collections keep
    // pauses in flight: a fixed duty cycle (a hidden test option), so that the switching does
    // not depend on what the probes cost on this machine.
    let fixture = Fixture::start(&build(&GO127), &["gcloop", "3000"], &[]);
    let tracer = Tracer::attach_governed(fixture.pid(), &["--duty", "gc=0.3"]);
    let lines = fixture.go_and_wait();
    let report = tracer.finish();
    let parse = |l: &String| {
        l.strip_prefix("numgc ")
            .and_then(|n| n.trim().parse::<u64>().ok())
    };
    let (before, after) = (parse(&lines[0]).unwrap(), parse(&lines[1]).unwrap());
    assert!(after - before >= 3000, "{before} → {after}");
    // The runtime's own pause of every cycle.
    let runtime = Fixture::pauses(&lines);
    assert_eq!(runtime.len() as u64, after - before, "{lines:?}");
    let gc = &report.summary["gc"];
    let per_cycle = gc["per_cycle"].as_array().unwrap();
    // Attached 30 % of the time: some cycles seen, not all.
    assert!(!per_cycle.is_empty(), "{gc}");
    assert!((per_cycle.len() as u64) < after - before, "{gc}");
    let mut whole = 0;
    let cycles: Vec<u64> = per_cycle
        .iter()
        .map(|c| {
            // A cycle is opened only by a complete sweep-termination pause …
            let sweep = c["sweep_term_pause_ns"].as_u64().unwrap();
            let mark_term = c["mark_term_pause_ns"].as_u64().unwrap();
            assert!(sweep > 0, "{c}");
            let n = c["cycle"].as_u64().unwrap();
            // … and its pauses are its own: both seen, they are the runtime's to the
            // nanosecond; its mark termination missed (detached), what was seen is less.
            if let Some(&ns) = runtime.get(&(n as u32)) {
                if mark_term > 0 {
                    assert_eq!(sweep + mark_term, ns, "{c}");
                    whole += 1;
                } else {
                    assert!(sweep < ns, "{c}: the runtime says {ns}");
                }
            }
            n
        })
        .collect();
    assert!(whole > 0, "no whole cycle: {gc}");
    // It carries the runtime's own number, once, in order, within what ran.
    assert!(cycles.windows(2).all(|w| w[0] < w[1]), "{cycles:?}");
    assert!(cycles.iter().all(|n| (before + 1..=after).contains(n)));
    let sampled = report.summary["sampling"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["group"] == "gc" && g["sampled"] == true);
    assert!(
        sampled,
        "the GC probes were never switched: {}",
        report.summary["sampling"]
    );
}
