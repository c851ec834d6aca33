//! The opt-in hot probes (`--probes`): counts per map that match what the fixture did.

use mapleak_tests::{Fixture, GoBuild, Tracer, build, require_root, strip};

fn assigns_per_map(spec: &GoBuild, stripped: bool) {
    let mut exe = build(spec);
    if stripped {
        exe = strip(&exe);
    }
    let fixture = Fixture::start(&exe, &["fill", "100000", "3"], &[]);
    let tracer = Tracer::attach(fixture.pid(), &["--probes", "assign"]);
    let maps = Fixture::maps(&fixture.go_and_wait());
    let report = tracer.finish();
    assert_eq!(maps.len(), 3);
    for (addr, len) in &maps {
        // Each key is inserted once: one mapassign call per entry the map holds.
        let row = report.map(addr).expect("each map grew");
        assert_eq!(row["assigns"], *len, "{addr}: {row}");
    }
    let total = report.u64(&["maps", "assigns"]);
    assert!(total >= 300_000, "{total}");
    let sampling = &report.summary["sampling"]["groups"];
    let assign = sampling
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "assign")
        .expect("an assign group");
    assert_eq!(assign["sampled"], false, "{assign}");
}

#[test]
fn assign_probes_count_every_insert_of_each_map() {
    require_root();
    let classic = GoBuild {
        name: "mapgrow",
        go: "1.21.13",
        flags: &[],
        env: &[],
    };
    assigns_per_map(&classic, false);
    assigns_per_map(
        &GoBuild {
            go: "1.27.3",
            ..classic.clone()
        },
        true,
    );
}
