//! Findings: each fires on a fixture built to show it, at the fixture's own source line (on a
//! stripped build too), with numbers checked against the fixture's own view; and none fires on
//! the twin written the right way.

use std::time::Duration;

use mapleak_tests::{
    Fixture, GoBuild, Report, Tracer, build, require_root, strip,
    versions::{check_swiss_fill, classic_fill_bytes},
};
use serde_json::Value;

const FIXTURE: &str = "tests/fixtures/findings/main.go";
const CHURN_MAPS: u64 = 20_000;

fn classic() -> GoBuild<'static> {
    GoBuild::plain("findings", "1.21.13")
}

/// Swiss maps (the tests strip the build: symbols and DWARF gone, only `.gopclntab` left).
fn swiss_stripped() -> GoBuild<'static> {
    GoBuild::plain("findings", "1.27.3")
}

/// The line marked `// site:NAME` in the fixture's source.
fn site_line(name: &str) -> u32 {
    let src = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/findings/main.go"),
    )
    .unwrap();
    let marker = format!("// site:{name}");
    let found: Vec<usize> = src
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_end().ends_with(&marker))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(found.len(), 1, "one {marker} in the fixture");
    found[0] as u32
}

struct Run {
    report: Report,
    /// What the fixture printed before "done".
    lines: Vec<String>,
}

impl Run {
    /// The fixture's `KEY VALUE` line.
    fn printed(&self, key: &str) -> u64 {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("the fixture printed no {key}: {:?}", self.lines))
    }

    fn findings(&self, kind: &str) -> Vec<&Value> {
        self.report.summary["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == kind)
            .collect()
    }

    /// The only finding of `kind`, checked to name the fixture line marked `site`.
    fn the(&self, kind: &str, site: Option<&str>) -> &Value {
        let all = self.findings(kind);
        assert_eq!(
            all.len(),
            1,
            "one {kind}: {}",
            self.report.summary["findings"]
        );
        let f = all[0];
        match site {
            Some(site) => {
                assert!(f["file"].as_str().unwrap().ends_with(FIXTURE), "{f}");
                assert_eq!(f["line"], site_line(site), "{f}");
            }
            None => assert_eq!(f["line"], 0, "{f}"),
        }
        assert_eq!(f["estimated"], false, "{f}");
        assert!(!f["suggestion"].as_str().unwrap().is_empty(), "{f}");
        f
    }

    fn assert_no_findings(&self) {
        assert_eq!(
            self.report.summary["findings"],
            serde_json::json!([]),
            "the right way shows no finding"
        );
    }
}

/// Runs `mode` under `mapleak trace --exact EXTRA…`; mapleak is stopped (Ctrl-C) while the
/// fixture is still alive, so that its last reads of the fixture's memory see the final state.
fn trace(spec: &GoBuild, stripped: bool, mode: &str, extra: &[&str]) -> Run {
    let mut exe = build(spec);
    if stripped {
        exe = strip(&exe);
    }
    let n = CHURN_MAPS.to_string();
    let mut fixture = Fixture::start(&exe, &[mode, &n], &[]);
    let tracer = Tracer::attach(fixture.pid(), extra);
    fixture.go();
    let lines = fixture.read_until("done");
    tracer.signal(libc::SIGINT);
    let report = tracer.finish();
    fixture.release();
    Run { report, lines }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

/// The growths and bytes of `maps`, each filled from empty to `len` `map[int]int` entries, as
/// the runtime's rules give them: on Go 1.21 `classic_b` doublings from one bucket (load
/// factor 6); on Swiss maps checked map by map (`min_splits`: see [`check_swiss_fill`]), their
/// splits depending on each map's hash seed.
fn fills(
    spec: &GoBuild,
    run: &Run,
    maps: &[(String, u64)],
    len: u64,
    classic_b: usize,
    min_splits: u64,
) -> (u64, u64) {
    assert!(!maps.is_empty());
    let mut total = (0, 0);
    for (addr, made) in maps {
        assert_eq!(*made, len, "{addr}");
        let row = run.report.map(addr).expect("each map grew");
        if spec.go == classic().go {
            assert_eq!(u(&row["grow_events"]), classic_b as u64, "{row}");
            assert_eq!(u(&row["bytes"]), classic_fill_bytes(classic_b), "{row}");
        } else {
            check_swiss_fill(row, min_splits, 136);
        }
        total.0 += u(&row["grow_events"]);
        total.1 += u(&row["bytes"]);
    }
    total
}

fn check_unsized(spec: &GoBuild, stripped: bool) {
    let run = trace(spec, stripped, "unsized", &[]);
    let f = run.the("unsized_map", Some("unsized"));
    let e = &f["evidence"];
    let maps = Fixture::maps(&run.lines);
    assert_eq!(maps.len(), 20);
    // Go 1.21's load factor is 6 entries a bucket: 50 000 entries need B = 14 (6 × 2^13 =
    // 49 152 < 50 000), 14 doublings from one bucket, 5 037 264 B. Swiss: 50 000 entries
    // overfill 32 tables of 896.
    let (grown, bytes) = fills(spec, &run, &maps, 50_000, 14, 63);
    if spec.go == classic().go {
        assert_eq!((grown, bytes), (20 * 14, 20 * 5_037_264));
    }
    assert_eq!(u(&e["maps"]), 20, "{e}");
    assert_eq!(u(&e["grow_events"]), grown, "{e}");
    assert_eq!(u(&e["bytes"]), bytes, "{e}");
    assert_eq!(u(&e["grow_events_saved"]), grown, "{e}");
    // The live entries mapleak read from each map: what the fixture's len(m) says.
    assert_eq!(u(&e["hint"]), 50_000, "{e}");
    assert_eq!(u(&e["maps_covered"]), 20, "{e}");
    // The type as Go names it, from the binary's type descriptors (stripped: through its
    // module data), in the advice and beside each map.
    let advice = f["suggestion"].as_str().unwrap();
    assert!(
        advice.starts_with("pre-size it: make(map[int]int, 50000) where the map is made."),
        "{advice}"
    );
    for (addr, _) in &maps {
        let row = run.report.map(addr).unwrap();
        assert_eq!(row["type_name"], "map[int]int", "{row}");
        assert_eq!(row["grown_at"]["function"], "main.unsized", "{row}");
        assert!(
            row["grown_at"]["file"].as_str().unwrap().ends_with(FIXTURE),
            "{row}"
        );
        assert_eq!(row["grown_at"]["line"], site_line("unsized"), "{row}");
    }
    if spec.go == classic().go {
        // What the runtime allocated for make(map[int]int, 50000), less the 48-byte hmap and
        // the 24-byte mapextra that points at the preallocated overflow buckets.
        let presized = run.printed("alloc") - 48 - 24;
        assert_eq!(u(&e["bytes_saved"]), u(&e["bytes"]) - 20 * presized, "{e}");
    }
}

#[test]
fn unsized_maps_get_a_hint_from_their_live_size() {
    require_root();
    check_unsized(&classic(), false);
    check_unsized(&swiss_stripped(), true);
    trace(&swiss_stripped(), true, "presized", &[]).assert_no_findings();
}

fn check_churn(spec: &GoBuild, stripped: bool) {
    // With the creation probe: counted where the maps are made.
    let run = trace(spec, stripped, "churn", &["--probes", "create"]);
    let f = run.the("map_churn", Some("churn-make"));
    let e = &f["evidence"];
    assert_eq!(u(&e["maps"]), CHURN_MAPS, "{e}");
    assert_eq!(e["from_creation_probe"], true, "{e}");
    let grown = run.the("unsized_map", Some("churn"));
    let made_at = format!("{FIXTURE}:{}", site_line("churn-make"));
    assert!(
        grown["evidence"]["created_at"]
            .as_str()
            .unwrap()
            .ends_with(&made_at),
        "{grown}"
    );
    // Without it: counted where they grow, one new map per first growth.
    let run = trace(spec, stripped, "churn", &[]);
    let f = run.the("map_churn", Some("churn"));
    assert_eq!(u(&f["evidence"]["maps"]), CHURN_MAPS, "{f}");
    assert_eq!(f["evidence"]["from_creation_probe"], false, "{f}");
}

#[test]
fn map_churn_is_found_where_maps_are_made_and_where_they_grow() {
    require_root();
    check_churn(&classic(), false);
    check_churn(&swiss_stripped(), true);
    trace(&swiss_stripped(), true, "reuse", &["--probes", "create"]).assert_no_findings();
    trace(&classic(), false, "reuse", &[]).assert_no_findings();
}

fn check_retained(spec: &GoBuild, stripped: bool) {
    let run = trace(spec, stripped, "retained", &[]);
    let f = run.the("retained_capacity", Some("retained"));
    let e = &f["evidence"];
    let maps = Fixture::maps(&run.lines);
    assert_eq!(maps.len(), 1);
    let (addr, len) = &maps[0];
    // The fixture kept every hundredth of its 100 000 entries.
    assert_eq!(*len, 1000);
    assert_eq!(&e["map"], addr, "{e}");
    assert_eq!(u(&e["maps"]), 1, "{e}");
    assert_eq!(u(&e["entries"]), *len, "{e}");
    let row = run.report.map(addr).expect("the map grew");
    assert_eq!(u(&e["peak_entries"]), u(&row["entries"]), "{e}");
    // What the map holds, and what make(map[int][64]byte, 1000) would, by the runtime's rules.
    let (capacity, bytes, needed) = if spec.go == classic().go {
        // Load factor 6: the last doubling came at 6 × 2^14 entries, to 2^15 buckets of 8
        // slots, plus 2^11 overflow buckets; a bucket is 8 tophash bytes, 8 keys, 8 values of
        // 64 B and the overflow pointer, 592 B, and 34 816 of them fill whole pages. 1000
        // entries need B = 8 (6 × 2^7 = 768 < 1000): 256 + 16 buckets, 161 024 B, rounded up
        // to 20 pages, which hold 276 buckets.
        assert_eq!(u(&e["peak_entries"]), 98_304, "{e}");
        (262_144, 34_816 * 592, 276 * 592)
    } else {
        // 100 000 entries overfill 64 tables of 896; groups are an 8-byte control word and 8
        // slots of an 8-byte key and a 64-byte value, 584 B. make(m, 1000) sizes for 1142
        // slots at 7/8 load: two tables of 1024 slots.
        let splits = check_swiss_fill(row, 127, 584);
        assert!(u(&e["peak_entries"]) < 100_000, "{e}");
        let tables = splits + 1;
        (tables * 1024, tables * 128 * 584, 2 * 128 * 584)
    };
    assert_eq!(u(&e["capacity"]), capacity, "{e}");
    assert_eq!(u(&e["bytes"]), bytes, "{e}");
    assert_eq!(u(&e["bytes_reclaimable"]), bytes - needed, "{e}");
}

#[test]
fn retained_capacity_is_read_from_the_live_map() {
    require_root();
    check_retained(&classic(), false);
    check_retained(&swiss_stripped(), true);
    trace(&swiss_stripped(), true, "kept", &[]).assert_no_findings();
}

fn check_growth_in_gc(spec: &GoBuild, stripped: bool) {
    let run = trace(spec, stripped, "gcgrow", &[]);
    assert!(
        !run.lines
            .iter()
            .any(|l| l.starts_with("outlasted") || l.starts_with("interrupted")),
        "a fill outlasted its cycle's mark phase, or a cycle began during one between cycles: \
         {:?}",
        run.lines
    );
    let f = run.the("growth_in_gc", Some("gcgrow"));
    let e = &f["evidence"];
    let s = &run.report.summary;
    // Six maps of 10 000 entries filled while marking, then six between cycles: on Go 1.21
    // B = 11 (6 × 2^10 = 6144 < 10 000), 11 doublings; Swiss maps overfill 8 tables of 896.
    let maps = Fixture::maps(&run.lines);
    assert_eq!(maps.len(), 12);
    let (grown, bytes) = fills(spec, &run, &maps[..6], 10_000, 11, 15);
    let (idle_grown, _) = fills(spec, &run, &maps[6..], 10_000, 11, 15);
    assert_eq!(u(&e["grow_events"]), grown, "{e}");
    assert_eq!(u(&e["bytes"]), bytes, "{e}");
    assert_eq!(u(&s["maps"]["grow_events"]), grown + idle_grown, "{e}");
    // The fixture filled each map between its cycle's sweep termination and its mark
    // termination, and checked that it did: all of it grew while the GC marked.
    assert_eq!(u(&e["mark_grow_events"]), grown, "{e}");
    assert_eq!(u(&e["mark_bytes"]), bytes, "{e}");
    assert_eq!(e["mark_share"].as_f64(), Some(1.0), "{e}");
    // And nothing else did: the fills between cycles are not counted in any mark phase.
    let per_cycle = s["gc"]["per_cycle"].as_array().unwrap();
    let mark_bytes: u64 = per_cycle.iter().map(|c| u(&c["mark_grow_bytes"])).sum();
    assert_eq!(mark_bytes, bytes, "{e}");
    // The share of time the GC marked, from the cycles' own mark phases: the fixture idles
    // three times each cycle's length after it (the cycles that built its heap marked more).
    let marking: u64 = per_cycle.iter().map(|c| u(&c["mark_ns"])).sum();
    let time_share = marking as f64 / u(&s["duration_ns"]) as f64;
    assert!(
        (e["mark_time_share"].as_f64().unwrap() - time_share).abs() < 1e-6,
        "{e}"
    );
    assert!(time_share > 0.0 && time_share < 0.5, "{e}");
    assert_eq!(u(&e["pause_max_ns"]), u(&s["gc"]["pause_max_ns"]), "{e}");
}

#[test]
fn growth_during_gc_marking_is_found() {
    require_root();
    check_growth_in_gc(&classic(), false);
    check_growth_in_gc(&swiss_stripped(), true);
    // Growth while the GC marks non-stop: in a mark phase as often as chance puts it there.
    let idle = trace(&swiss_stripped(), true, "gcnonstop", &[]);
    assert!(
        idle.findings("growth_in_gc").is_empty(),
        "{}",
        idle.report.summary["findings"]
    );
    trace(&swiss_stripped(), true, "gcpresized", &[]).assert_no_findings();
}

/// Like [`trace`], sampling every 200 ms and stopping mapleak only once the fixture has held
/// still for `hold` after "done": `unreleased_memory` wants memory held at every reading for a
/// second.
fn trace_and_hold(spec: &GoBuild, stripped: bool, mode: &str, hold: Duration) -> Run {
    let mut exe = build(spec);
    if stripped {
        exe = strip(&exe);
    }
    let n = CHURN_MAPS.to_string();
    let mut fixture = Fixture::start(&exe, &[mode, &n], &[]);
    let tracer = Tracer::attach(fixture.pid(), &["--interval", "200ms"]);
    fixture.go();
    let lines = fixture.read_until("done");
    std::thread::sleep(hold);
    tracer.signal(libc::SIGINT);
    let report = tracer.finish();
    fixture.release();
    Run { report, lines }
}

fn check_unreleased(spec: &GoBuild, stripped: bool) {
    let run = trace_and_hold(spec, stripped, "unreleased", Duration::from_millis(1600));
    let f = run.the("unreleased_memory", None);
    let e = &f["evidence"];
    // The runtime's own metric of what the last GC marked live, read by the fixture.
    assert_eq!(u(&e["heap_live_bytes"]), run.printed("heaplive"), "{e}");
    // RSS as the fixture read it just before; the scavenger may return a little meanwhile.
    let rss = run.printed("rss") as f64;
    let seen = u(&e["rss_bytes"]) as f64;
    assert!((seen - rss).abs() / rss < 0.05, "{e} vs rss {rss}");
    // What is held is the collected garbage, idle in the heap far above its small goal (the
    // figures themselves are checked against the runtime's in tests/heap.rs).
    assert!(u(&e["heap_goal_bytes"]) < 16 << 20, "{e}");
    assert!(u(&e["heap_free_bytes"]) >= 200 << 20, "{e}");
    assert_eq!(e["excess_bytes"], e["idle_above_need_bytes"], "{e}");
    assert!(u(&e["held_ns"]) >= 1_000_000_000, "{e}");
}

#[test]
fn unreleased_memory_is_idle_heap_held_above_the_goal() {
    require_root();
    check_unreleased(&classic(), false);
    check_unreleased(&swiss_stripped(), true);
    trace_and_hold(
        &swiss_stripped(),
        true,
        "released",
        Duration::from_millis(1600),
    )
    .assert_no_findings();
}

#[test]
fn maps_rebuilt_at_their_size_are_no_sizing_problem() {
    require_root();
    let run = trace(&classic(), false, "samesize", &[]);
    let f = run.the("same_size_growth", Some("samesize"));
    let e = &f["evidence"];
    // Every one a rebuild of the map's 8 buckets (B = 3 for 40 keys at load factor 6) of 144
    // bytes: 8 tophash bytes, 8 int keys, 8 int values and the overflow pointer.
    assert_eq!(u(&e["bytes"]), u(&e["grow_events"]) * 8 * 144, "{e}");
    assert_eq!(
        u(&e["grow_events"]),
        u(&run.report.summary["maps"]["same_size_grows"]),
        "{e}"
    );
    assert!(u(&e["grow_events"]) > 1000, "{e}");
    // Thousands of growths, and not one a size hint would have prevented.
    assert!(run.findings("unsized_map").is_empty());
    // Swiss maps reuse the deleted slots: after the first fill nothing grows at all.
    let swiss = trace(&swiss_stripped(), true, "samesize", &[]);
    swiss.assert_no_findings();
    assert!(u(&swiss.report.summary["maps"]["grow_events"]) <= 8);
}
