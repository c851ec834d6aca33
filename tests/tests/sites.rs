//! Growth by call site: the fixture's own source line, on symbolized and stripped binaries.

use mapleak_tests::{Fixture, GoBuild, Tracer, build, require_root};

/// The line of `m[i] = i` in the fixture's `fill`, read from its source.
fn fill_insert_line() -> u32 {
    let src = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mapgrow/main.go"),
    )
    .unwrap();
    let start = src
        .lines()
        .position(|l| l.starts_with("func fill("))
        .unwrap();
    let offset = src
        .lines()
        .skip(start)
        .position(|l| l.trim() == "m[i] = i")
        .unwrap();
    (start + offset + 1) as u32
}

/// `grows_per_fill`: exact for classic maps; `None` for Swiss, whose split count depends on each
/// map's random hash seed.
fn check(spec: &GoBuild, strip: bool, grows_per_fill: Option<u64>) {
    let mut exe = build(spec);
    if strip {
        let stripped = exe.with_extension("strip");
        let ok = std::process::Command::new("strip")
            .arg("-o")
            .arg(&stripped)
            .arg(&exe)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        exe = stripped;
    }
    let fixture = Fixture::start(&exe, &["fill", "100000", "3"], &[]);
    let tracer = Tracer::attach(fixture.pid(), &[]);
    let maps = Fixture::maps(&fixture.go_and_wait());
    let report = tracer.finish();
    let grown: u64 = maps
        .iter()
        .map(|(addr, _)| {
            report.map(addr).expect("each map grew")["grow_events"]
                .as_u64()
                .unwrap()
        })
        .sum();
    let site = &report.summary["sites"][0];
    assert_eq!(site["function"], "main.fill", "{site}");
    assert!(
        site["file"]
            .as_str()
            .unwrap()
            .ends_with("tests/fixtures/mapgrow/main.go"),
        "{site}"
    );
    assert_eq!(site["line"], fill_insert_line(), "{site}");
    assert_eq!(site["grow_events"], grown, "{site}");
    if let Some(per_fill) = grows_per_fill {
        assert_eq!(grown, 3 * per_fill, "{site}");
    }
    assert_eq!(site["maps"], 3, "{site}");
    let stack = site["stack"].as_array().unwrap();
    assert!(
        stack
            .iter()
            .any(|f| f.as_str().unwrap().starts_with("main.main ")),
        "{site}"
    );
}

#[test]
fn growth_is_attributed_to_the_fixtures_source_line() {
    require_root();
    let classic = GoBuild {
        name: "mapgrow",
        go: "1.21.13",
        flags: &[],
        env: &[],
    };
    let swiss = GoBuild {
        go: "1.27.3",
        ..classic.clone()
    };
    check(&classic, false, Some(15));
    check(&classic, true, Some(15));
    check(&swiss, true, None);
}
