use serde_json::json;

use super::*;

const MIB: u64 = 1 << 20;

/// A summary of a classic-map program with the findings given, its growth probes attached a
/// quarter of the time, 100 MiB of map growth seen over 10 s.
fn summary(findings: Value) -> Value {
    json!({
        "type": "summary", "pid": 42, "go_version": "go1.19.8", "map_impl": "classic",
        "duration_ns": 10_000_000_000u64, "stop_reason": "duration",
        "maps": {"grow_events": 1000, "grow_bytes": 100 * MIB},
        "events": {"received": 1200, "lost": 0, "invalid": 0, "read_errors": 0},
        "memory": {"committed_bytes": 4 * MIB, "rss_bytes": 30 * MIB},
        "sampling": {"groups": [
            {"group": "growth", "attached_fraction": 0.25},
            {"group": "gc", "attached_fraction": 1.0}
        ]},
        "sites": [{
            "function": "github.com/dep/lib.Parse", "file": "github.com/dep/lib/parse.go", "line": 10,
            "stack": [
                "runtime.hashGrow runtime/map.go:1041",
                "github.com/dep/lib.Parse github.com/dep/lib/parse.go:10",
                "github.com/me/app/cmd.run github.com/me/app/cmd/run.go:33",
                "main.main main.go:5"
            ]
        }],
        "findings": findings,
        "notes": []
    })
}

fn cx() -> Context {
    Context {
        own_prefix: Some("github.com/me/app".to_owned()),
        committed: Some(1 << 30),
        resident: Some(200 * MIB),
        exit: Some(0),
        stderr: String::new(),
        workload: Ok("100 requests".to_owned()),
    }
}

fn unsized_map(function: &str, file: &str, entries_max: u64) -> Value {
    json!({
        "kind": "unsized_map", "function": function, "file": file, "line": 71,
        "evidence": {"maps": 121, "grow_events": 484, "bytes": 830_544, "entries_p50": 53,
                     "entries_p90": 53, "entries_max": entries_max, "hint": 53,
                     "hint_percentile": 90, "maps_covered": 119, "grow_events_saved": 476,
                     "bytes_saved": 346_528},
        "suggestion": "pre-size it: make(map[K]V, 53)", "estimated": true
    })
}

fn failed(j: &Judgement) -> Vec<&'static str> {
    j.checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name)
        .collect()
}

#[test]
fn a_clean_summary_passes_every_check() {
    let s = summary(json!([unsized_map(
        "github.com/me/app/collector.parse",
        "github.com/me/app/collector/parse.go",
        60
    )]));
    let j = judge(Some(&s), &cx());
    assert!(j.passed(), "{:#?}", j.checks);
    assert_eq!(j.findings.len(), 1);
    assert_eq!(j.findings[0].origin, Origin::Main);
    assert!(
        j.findings[0].evidence.contains("bytes=811.1KiB"),
        "{}",
        j.findings[0].evidence
    );
}

/// The node-exporter case: 824 G entries in a map of a process of 1 GiB.
#[test]
fn entries_beyond_what_the_process_holds_are_impossible() {
    let s = summary(json!([unsized_map(
        "github.com/me/app/collector.parse",
        "github.com/me/app/collector/parse.go",
        824_635_043_664
    )]));
    let j = judge(Some(&s), &cx());
    assert_eq!(failed(&j), ["plausible numbers"]);
    assert!(j.findings[0].problems[0].starts_with("entries_max 824635043664 exceeds"));
}

/// The "18.1 PiB back" retained-capacity finding, and a capacity that is no classic
/// map's, and a suggestion that says petabytes.
#[test]
fn retained_capacity_beyond_memory_and_not_a_power_of_two() {
    let retained = |capacity: u64, bytes: u64, text: &str| {
        json!({
            "kind": "retained_capacity", "function": "main.fill", "file": "main.go", "line": 3,
            "evidence": {"maps": 1, "map": "0xc000262e10", "entries": 0, "peak_entries": 26,
                         "capacity": capacity, "bytes": bytes, "total_bytes": bytes,
                         "bytes_reclaimable": bytes},
            "suggestion": text, "estimated": false
        })
    };
    let s = summary(json!([
        retained(
            562_949_953_421_312,
            20_336_567_067_344_896,
            "about 18.1 PiB back over 1 map(s)"
        ),
        retained(3 << 20, 2 * MIB, "about 2.0 MiB back"),
        retained(1 << 20, 64 * MIB, "about 64.0 MiB back"),
    ]));
    let j = judge(Some(&s), &cx());
    assert_eq!(failed(&j), ["plausible numbers"]);
    let p = &j.findings[0].problems;
    assert!(
        p.iter()
            .any(|p| p.starts_with("capacity 562949953421312 exceeds"))
    );
    assert!(p.iter().any(|p| p.starts_with("bytes 18.1 PiB exceeds")));
    assert!(p.iter().any(|p| p == "its text says 18.1 PiB"), "{p:?}");
    assert_eq!(
        j.findings[1].problems,
        ["capacity 3145728 is not 8 × a power of two (a classic map's slots)"]
    );
    assert!(j.findings[2].problems.is_empty(), "{:?}", j.findings[2]);
}

/// A Swiss map's capacity sums its tables' and need not be a power of two.
#[test]
fn a_swiss_capacity_is_a_multiple_of_a_group() {
    let mut s = summary(json!([{
        "kind": "retained_capacity", "function": "main.fill", "file": "main.go", "line": 3,
        "evidence": {"maps": 1, "entries": 10, "capacity": 150_016, "bytes": MIB,
                     "total_bytes": MIB, "bytes_reclaimable": MIB / 2},
        "suggestion": "", "estimated": false
    }]));
    s["map_impl"] = json!("swiss");
    assert!(judge(Some(&s), &cx()).passed());
    s["findings"][0]["evidence"]["capacity"] = json!(150_017);
    let j = judge(Some(&s), &cx());
    assert_eq!(
        j.findings[0].problems,
        ["capacity 150017 is not a multiple of 8 (a Swiss map's group)"]
    );
}

/// Allocation figures are bounded by the growth the trace saw, scaled by the attached share.
#[test]
fn savings_beyond_the_growth_seen_are_impossible() {
    let churn = |per_sec: f64| {
        json!({
            "kind": "map_churn", "function": "main.churn", "file": "main.go", "line": 9,
            "evidence": {"maps": 5000, "maps_per_sec": 2000.0, "from_creation_probe": false,
                         "maps_freed": 4000, "entries_p50": 48, "grow_events_per_sec": 9000.0,
                         "bytes_per_sec": per_sec},
            "suggestion": "", "estimated": true
        })
    };
    // 100 MiB seen at a quarter of the time: up to 400 MiB over 10 s, 40 MiB/s.
    let s = summary(json!([churn(39.0 * MIB as f64), churn(41.0 * MIB as f64)]));
    let j = judge(Some(&s), &cx());
    assert!(j.findings[0].problems.is_empty(), "{:?}", j.findings[0]);
    assert_eq!(j.findings[1].problems.len(), 1, "{:?}", j.findings[1]);
    assert!(j.findings[1].problems[0].starts_with("bytes_per_sec 41.0 MiB/s"));

    let mut s = summary(json!([unsized_map("main.f", "main.go", 60)]));
    s["findings"][0]["evidence"]["bytes_saved"] = json!(900_000);
    s["findings"][0]["evidence"]["maps"] = json!(0);
    s["findings"][0]["evidence"]["maps_covered"] = json!(0);
    let j = judge(Some(&s), &cx());
    assert_eq!(
        j.findings[0].problems,
        [
            "bytes_saved 900000 exceeds bytes 830544",
            "it rests on 0 maps"
        ]
    );
}

/// RSS counts file-backed pages (an executable, a database's mmap), the heap does not: each is
/// bounded by its own measure.
#[test]
fn resident_figures_are_bounded_by_the_peak_rss() {
    let unreleased = |rss: u64, live: u64| {
        json!([{"kind": "unreleased_memory", "function": "", "file": "", "line": 0,
                "evidence": {"rss_bytes": rss, "heap_live_bytes": live,
                             "excess_bytes": rss - live, "lazy_free_bytes": 0,
                             "released_dontneed_bytes": 0, "released_free_bytes": 0},
                "suggestion": "", "estimated": false}])
    };
    let cx = Context {
        committed: Some(100 * MIB),
        ..cx()
    };
    // 150 MiB resident in a process that committed 100 MiB: its mmap'd files.
    assert!(judge(Some(&summary(unreleased(150 * MIB, 20 * MIB))), &cx).passed());
    let j = judge(Some(&summary(unreleased(250 * MIB, 120 * MIB))), &cx);
    assert_eq!(
        j.findings[0].problems,
        [
            "heap_live_bytes 120.0 MiB exceeds what the process can hold (100.0 MiB)",
            "rss_bytes 250.0 MiB exceeds the most the process had resident (200.0 MiB)",
        ]
    );
}

#[test]
fn a_finding_in_the_standard_library_is_misplaced() {
    let s = summary(json!([
        unsized_map("net/http.(*Transport).setReqCanceler", "net/http/transport.go", 60),
        unsized_map("reflect.makemap", "runtime/map.go", 60),
        {"kind": "unreleased_memory", "function": "", "file": "", "line": 0,
         "evidence": {"rss_bytes": 90 * MIB, "heap_live_bytes": 20 * MIB,
                      "excess_bytes": 70 * MIB, "lazy_free_bytes": 0,
                      "released_dontneed_bytes": 0, "released_free_bytes": 0},
         "suggestion": "", "estimated": false}
    ]));
    let j = judge(Some(&s), &cx());
    assert_eq!(failed(&j), ["own code"]);
    let origins: Vec<Origin> = j.findings.iter().map(|f| f.origin).collect();
    assert_eq!(origins, [Origin::Std, Origin::Std, Origin::Process]);
    assert!(j.findings[2].problems.is_empty(), "{:?}", j.findings[2]);
}

/// A dependency's line is acceptable only when no frame of the program's own code called it.
#[test]
fn a_dependency_line_with_the_programs_own_frame_below_is_misplaced() {
    let s = summary(json!([unsized_map(
        "github.com/dep/lib.Parse",
        "github.com/dep/lib/parse.go",
        60
    )]));
    let mut s = s;
    s["findings"][0]["line"] = json!(10);
    let j = judge(Some(&s), &cx());
    assert_eq!(failed(&j), ["own code"]);
    assert_eq!(
        j.findings[0].problems,
        [
            "the line is in a dependency, yet the program's own frame github.com/me/app/cmd.run github.com/me/app/cmd/run.go:33 is in its stack"
        ]
    );
    // Without a frame of its own below (another site), the dependency's line is the best one.
    s["findings"][0]["line"] = json!(11);
    assert!(judge(Some(&s), &cx()).passed());
}

#[test]
fn lost_events_too_many_findings_and_a_failed_attach() {
    let mut s = summary(json!(
        (0..13)
            .map(|i| unsized_map(&format!("main.f{i}"), "main.go", 60))
            .collect::<Vec<_>>()
    ));
    s["events"]["lost"] = json!(3);
    let j = judge(Some(&s), &cx());
    assert_eq!(failed(&j), ["lost 0", "at most 12 findings"]);

    let refused = Context {
        exit: Some(1),
        stderr: "mapleak: x is not a Go program".to_owned(),
        workload: Err("the bundle was never served".to_owned()),
        ..cx()
    };
    let j = judge(None, &refused);
    assert_eq!(failed(&j), ["workload", "attached"]);
    assert_eq!(
        j.checks[1].detail,
        "mapleak exited 1 without a summary: mapleak: x is not a Go program"
    );

    let mut s = summary(json!([]));
    s["stop_reason"] = json!("error");
    assert_eq!(failed(&judge(Some(&s), &cx())), ["attached"]);
}

#[test]
fn packages_and_origins_of_symbols() {
    assert_eq!(package("github.com/a/b.(*T).M.func1"), "github.com/a/b");
    assert_eq!(package("runtime.hashGrow"), "runtime");
    assert_eq!(package("main.main"), "main");
    assert_eq!(
        package("github.com/a/b.F[go.shape.struct { x github.com/c/d.T }]"),
        "github.com/a/b"
    );
    let own = Some("cmd");
    assert_eq!(
        origin("cmd/compile/internal/ssa.(*Func).newValue", own),
        Origin::Main
    );
    assert_eq!(
        origin("cmd/vendor/golang.org/x/tools/go/ast/inspector.New", own),
        Origin::Dependency
    );
    assert_eq!(
        origin("vendor/golang.org/x/net/http2/hpack.NewDecoder", own),
        Origin::Std
    );
    assert_eq!(origin("internal/runtime/maps.NewMap", own), Origin::Std);
    assert_eq!(origin("type:.eq.[2]interface {}", own), Origin::Std);
    assert_eq!(
        origin("gopkg.in/yaml.v3.(*parser).node", own),
        Origin::Dependency
    );
    assert_eq!(
        origin("github.com/me/app.run", Some("github.com/me/app")),
        Origin::Main
    );
    assert_eq!(
        origin("github.com/me/application.run", Some("github.com/me/app")),
        Origin::Dependency
    );
}

#[test]
fn sizes_read_well() {
    assert_eq!(human_bytes(512.0), "512 B");
    assert_eq!(human_bytes(1536.0), "1.5 KiB");
    assert_eq!(human_bytes(20_336_567_067_344_896.0), "18.1 PiB");
    assert_eq!(
        text_sizes("about 1.7 GiB back, 3 TiB. and 2 TiB"),
        ["its text says 3 TiB", "its text says 2 TiB"]
    );
}

/// gc_pressure sets map growth against all the process allocated: that total, and the runway
/// per cycle, are not map growth and only the ceiling bounds them; its map bytes are.
#[test]
fn gc_pressure_bounds_only_its_map_bytes_by_the_growth() {
    let pressure = |map_bytes: u64| {
        json!({
            "kind": "gc_pressure", "function": "", "file": "", "line": 0,
            "evidence": {"map_bytes": map_bytes, "allocated_bytes": 50u64 << 30,
                         "map_alloc_share": 0.5, "gc_cycles": 40, "runway_bytes": 1u64 << 30,
                         "map_gc_cycles": 20.0, "map_gc_cycles_per_min": 120.0,
                         "gc_cpu_ns": 1_000_000, "gc_cpu_fraction": 0.1,
                         "map_gc_cpu_ns": 500_000, "fixes": [],
                         "fixes_gc_cycles_per_min": 60.0, "fixes_gc_cpu_ns": 250_000},
            "suggestion": "map growth is 50% of all heap allocation", "estimated": true
        })
    };
    let j = judge(Some(&summary(json!([pressure(110 * MIB)]))), &cx());
    assert!(j.passed(), "{:#?}", j.checks);
    let j = judge(Some(&summary(json!([pressure(100 << 30)]))), &cx());
    assert_eq!(failed(&j), ["plausible numbers"]);
    assert!(
        j.findings[0].problems[0].starts_with("map_bytes"),
        "{:?}",
        j.findings[0].problems
    );
}
