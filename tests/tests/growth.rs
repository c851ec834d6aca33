//! Map growth traced from real Go programs, checked against the runtime's own rules.

use mapleak_tests::{
    Fixture, GoBuild, Tracer, build, require_root,
    versions::{CLASSIC_FILL_BUCKETS, classic_fill_bytes},
};

const GO121: GoBuild = GoBuild {
    name: "mapgrow",
    go: "1.21.13",
    flags: &[],
    env: &[],
};

#[test]
fn five_unsized_fills_grow_exactly_as_the_runtime_rules_say() {
    require_root();
    let fixture = Fixture::start(&build(&GO121), &["fill", "100000", "5"], &[]);
    let tracer = Tracer::attach(fixture.pid(), &["--top", "1000"]);
    let maps = Fixture::maps(&fixture.go_and_wait());
    let report = tracer.finish();

    assert_eq!(maps.len(), 5);
    // A Go 1.21 `map[int]int` filled to 100 000 entries: load factor 6.0 grows it at 8, 12,
    // 24 … 98 304 entries, B 0 → 15.
    let per_fill_bytes = classic_fill_bytes(15);
    let (mut events, mut bytes) = (0, 0);
    for (addr, len) in &maps {
        assert_eq!(*len, 100_000);
        let row = report
            .map(addr)
            .unwrap_or_else(|| panic!("no growth reported for map {addr}: {}", report.summary));
        assert_eq!(row["grow_events"], 15, "{row}");
        assert_eq!(row["bytes"], per_fill_bytes, "{row}");
        // Last grow at 6 × 2^14 entries, to 2^15 buckets of 8 slots.
        assert_eq!(row["entries"], 98_304, "{row}");
        assert_eq!(row["capacity"], 262_144, "{row}");
        let buckets: Vec<u64> = row["growths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["units"].as_u64().unwrap())
            .collect();
        assert_eq!(buckets, CLASSIC_FILL_BUCKETS, "{row}");
        events += row["grow_events"].as_u64().unwrap();
        bytes += row["bytes"].as_u64().unwrap();
    }
    assert_eq!(events, 75);
    assert_eq!(bytes, 5 * per_fill_bytes);
    assert_eq!(per_fill_bytes, 10_050_768);
    assert_eq!(report.u64(&["events", "lost"]), 0);
    assert_eq!(report.summary["stop_reason"], "target_exited");
    assert_eq!(report.summary["go_version"], "go1.21.13");
    assert_eq!(report.summary["map_impl"], "classic");
}

const GO127: GoBuild = GoBuild {
    name: "mapgrow",
    go: "1.27.3",
    flags: &[],
    env: &[],
};

#[test]
fn a_presized_map_never_grows() {
    // 8 classic grows for 1000 entries on Go 1.21 (see below).
    presized_map_never_grows(&GO121, 8);
    // Swiss: small group, 16-slot table, six doublings to 1024 slots, and the 1024-slot table
    // splits when its 897th entry (7/8 load) arrives.
    presized_map_never_grows(&GO127, 1 + 1 + 6 + 1);
}

fn presized_map_never_grows(go: &GoBuild, control_grows: u64) {
    require_root();
    let fixture = Fixture::start(&build(go), &["presized", "100000"], &[]);
    let tracer = Tracer::attach(fixture.pid(), &["--top", "1000"]);
    let maps = Fixture::maps(&fixture.go_and_wait());
    let report = tracer.finish();

    // The fixture also fills an unsized 1000-entry control map, so a silent probe fails here:
    // it grows at 8, 12, 24, 48, 96, 192, 384 and 768 entries on Go 1.21.
    assert_eq!(maps.len(), 2, "{maps:?}");
    let (presized, control) = (&maps[0].0, &maps[1].0);
    assert!(
        report.map(presized).is_none(),
        "make(map[int]int, 100000) grew: {}",
        report.summary
    );
    let control = report.map(control).expect("the control map grew");
    assert_eq!(control["grow_events"], control_grows, "{control}");
    assert_eq!(report.u64(&["events", "lost"]), 0);
}
