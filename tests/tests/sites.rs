//! Growth by call site: the fixture's own source line, on symbolized and stripped binaries.

use mapleak_tests::{Fixture, GoBuild, Tracer, build, require_root, versions::check_swiss_fill};

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
/// map's random hash seed: each map's growths are checked by the rules that hold for every seed.
fn check(spec: &GoBuild, strip: bool, grows_per_fill: Option<u64>) {
    let built = build(spec);
    let mut exe = built.clone();
    if strip {
        exe = mapleak_tests::strip(&exe);
    }
    let fixture = Fixture::start(&exe, &["fill", "100000", "3"], &[]);
    let tracer = Tracer::attach(fixture.pid(), &[]);
    let maps = Fixture::maps(&fixture.go_and_wait());
    let report = tracer.finish();
    assert_eq!(maps.len(), 3);
    let grown: u64 = maps
        .iter()
        .map(|(addr, _)| {
            let row = report.map(addr).expect("each map grew");
            if grows_per_fill.is_none() {
                // 100 000 entries fit no fewer than 128 tables of 896.
                check_swiss_fill(row, 127, 136);
            }
            row["grow_events"].as_u64().unwrap()
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
    agrees_with_addr2line(spec, &built, &site["frames"]);
    let stack = site["stack"].as_array().unwrap();
    assert!(
        stack
            .iter()
            .any(|f| f.as_str().unwrap().starts_with("main.main ")),
        "{site}"
    );
}

/// Every frame agrees with `go tool addr2line` (of the toolchain that built the binary), which
/// names the physical function at a PC and the innermost source position of its inline tree:
/// our first frame at each PC must have that file:line, our last frame there that function.
fn agrees_with_addr2line(spec: &GoBuild, exe: &std::path::Path, frames: &serde_json::Value) {
    let frames = frames.as_array().unwrap();
    let mut pcs: Vec<&str> = frames.iter().map(|f| f["pc"].as_str().unwrap()).collect();
    pcs.dedup();
    assert!(pcs.len() >= 3, "a stack with its callers: {frames:?}");
    let mut child = std::process::Command::new(mapleak_tests::fixture::go_bin(spec.go))
        .args(["tool", "addr2line"])
        .arg(exe)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run go tool addr2line");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), pcs.join("\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let answers: Vec<(&str, &str)> = text
        .lines()
        .collect::<Vec<_>>()
        .chunks(2)
        .map(|c| (c[0], c[1]))
        .collect();
    assert_eq!(answers.len(), pcs.len(), "{text}");
    for (pc, (function, position)) in pcs.iter().zip(answers) {
        let at: Vec<&serde_json::Value> = frames.iter().filter(|f| f["pc"] == *pc).collect();
        let inner = at[0];
        let outer = at[at.len() - 1];
        assert_eq!(
            format!("{}:{}", inner["file"].as_str().unwrap(), inner["line"]),
            position,
            "{pc}"
        );
        assert_eq!(outer["function"], function, "{pc}");
    }
}

#[test]
fn growth_is_attributed_to_the_fixtures_source_line() {
    require_root();
    let classic = GoBuild::plain("mapgrow", "1.21.13");
    let swiss = GoBuild::plain("mapgrow", "1.27.3");
    check(&classic, false, Some(15));
    check(&classic, true, Some(15));
    check(&swiss, true, None);
}
