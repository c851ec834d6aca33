//! The opt-in hot probes (`--probes`): counts per map that match what the fixture did.

use mapleak_tests::{
    Fixture, GoBuild, Tracer, build, require_root, strip,
    versions::{CLASSIC_BUCKET_BYTES, CLASSIC_FILL_BUCKETS},
};

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
    assigns_per_map(&GoBuild::plain("mapgrow", "1.21.13"), false);
    assigns_per_map(&GoBuild::plain("mapgrow", "1.27.3"), true);
}

#[test]
fn evacuation_holds_each_old_array_until_the_next_growth() {
    require_root();
    let spec = GoBuild::plain("mapgrow", "1.23.9");
    let fixture = Fixture::start(&build(&spec), &["fill", "100000", "1"], &[]);
    let tracer = Tracer::attach(fixture.pid(), &["--probes", "evacuate"]);
    let maps = Fixture::maps(&fixture.go_and_wait());
    let report = tracer.finish();
    let row = report.map(&maps[0].0).expect("the map grew");
    let growths = row["growths"].as_array().unwrap();
    let evacuations = row["evacuations"].as_array().unwrap();
    // One evacuation per growth (1.23: 14 doublings to 100 000 entries).
    assert_eq!(growths.len(), 14);
    assert_eq!(evacuations.len(), growths.len(), "{row}");
    for (i, (e, g)) in evacuations.iter().zip(growths).enumerate() {
        assert_eq!(e["grow_ns"], g["ts_ns"], "{e}");
        assert!(e["held_ns"].as_u64() > Some(0), "{e}");
        assert!(e["evacuate_calls"].as_u64() > Some(0), "{e}");
        assert_eq!(
            g["bytes"],
            CLASSIC_FILL_BUCKETS[i] * CLASSIC_BUCKET_BYTES,
            "{g}"
        );
        // The array held twice is the one the previous growth allocated, by the runtime's
        // bucket rules; the first growth's is the map's initial single bucket.
        let old_buckets = if i == 0 {
            1
        } else {
            CLASSIC_FILL_BUCKETS[i - 1]
        };
        assert_eq!(e["old_bytes"], old_buckets * CLASSIC_BUCKET_BYTES, "{e}");
        // Each one but the last was closed by the growth after it.
        if i + 1 < growths.len() {
            assert_eq!(e["finished"], true, "{e}");
        }
    }
}

#[test]
fn evacuation_on_swiss_maps_is_explained_not_zero() {
    require_root();
    let spec = GoBuild::plain("mapgrow", "1.27.3");
    let fixture = Fixture::start(&build(&spec), &["fill", "1000", "1"], &[]);
    let tracer = Tracer::attach(fixture.pid(), &["--probes", "evacuate"]);
    let maps = Fixture::maps(&fixture.go_and_wait());
    let report = tracer.finish();
    let notes = report.summary["notes"].to_string();
    assert!(
        notes.contains("Swiss maps rehash a table at once"),
        "{notes}"
    );
    // The fixture's map grew (small group, table, six doublings, one split) and is among
    // them: the check below is over a list that holds it.
    assert_eq!(maps.len(), 1);
    let row = report.map(&maps[0].0).expect("the map grew");
    assert_eq!(row["grow_events"], 9, "{row}");
    let top = report.summary["maps"]["top"].as_array().unwrap();
    assert!(
        top.iter().all(|m| m.get("evacuations").is_none()),
        "{top:?}"
    );
}
