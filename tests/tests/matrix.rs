//! Every supported Go, as a normal, stripped, PIE and stripped-PIE build (plus one cgo build),
//! and the normal and stripped builds again without `.go.buildinfo`: the traced growth of a
//! 100 000-int fill equals what the runtime's rules predict, and `inspect` places the probes at
//! the same addresses with and without a symbol table or build information.

use mapleak_tests::{
    Fixture, Tracer, build, tracer,
    versions::{GoConfig, MATRIX, Mode, check_swiss_fill},
};

const FILLS: u64 = 3;

fn cases() -> Vec<(GoConfig, Mode)> {
    let mut cases: Vec<(GoConfig, Mode)> = MATRIX
        .iter()
        .flat_map(|c| [Mode::Normal, Mode::Stripped, Mode::Pie].map(|m| (*c, m)))
        .collect();
    cases.push((*MATRIX.last().unwrap(), Mode::Cgo));
    cases
}

/// Builds every case, two `go build`s at a time (each is itself parallel).
fn build_all(cases: &[(GoConfig, Mode)]) -> Vec<std::path::PathBuf> {
    let mut out = Vec::with_capacity(cases.len());
    for pair in cases.chunks(2) {
        std::thread::scope(|s| {
            let handles: Vec<_> = pair
                .iter()
                .map(|(c, m)| s.spawn(move || build(&c.build(*m))))
                .collect();
            out.extend(handles.into_iter().map(|h| h.join().expect("go build")));
        });
    }
    out
}

fn check_fill(config: &GoConfig, exe: &std::path::Path) {
    let fills = FILLS.to_string();
    let fixture = Fixture::start(exe, &["fill", "100000", &fills], &[]);
    let tracer = Tracer::attach(fixture.pid(), &["--top", "1000"]);
    let maps = Fixture::maps(&fixture.go_and_wait());
    let report = tracer.finish();
    assert_eq!(report.summary["map_impl"], config.expect.map_impl);
    assert_eq!(report.u64(&["events", "lost"]), 0);
    assert_eq!(maps.len() as u64, FILLS);
    for (addr, _) in &maps {
        let row = report
            .map(addr)
            .unwrap_or_else(|| panic!("no growth for map {addr}"));
        if config.expect.map_impl == "swiss" {
            // 100 000 entries fit no fewer than 128 tables of 896.
            check_swiss_fill(row, 127, 136);
            continue;
        }
        assert_eq!(row["grow_events"], config.expect.grow_events, "{addr}");
        assert_eq!(row["bytes"], config.expect.bytes, "{addr}");
    }
}

/// `strip` of `exe` (same code, no `.symtab`, no DWARF), next to it.
fn strip(exe: &std::path::Path) -> std::path::PathBuf {
    let out = exe.with_extension("strip");
    let status = std::process::Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(exe)
        .status()
        .expect("run strip");
    assert!(status.success());
    out
}

/// A copy of `exe` without its `.go.buildinfo` section, as some release builds ship (a
/// JavaScript bundler's, for one), next to it.
fn without_buildinfo(exe: &std::path::Path) -> std::path::PathBuf {
    let out = exe.with_extension("nobuildinfo");
    let status = std::process::Command::new("objcopy")
        .args(["--remove-section", ".go.buildinfo"])
        .arg(exe)
        .arg(&out)
        .status()
        .expect("run objcopy");
    assert!(status.success());
    let bytes = std::fs::read(&out).unwrap();
    assert!(
        !bytes.windows(14).any(|w| w == b"\xff Go buildinf:"),
        "objcopy left the build information in {}",
        out.display()
    );
    out
}

/// `mapleak inspect --format json` of `exe`.
fn inspect_json(exe: &std::path::Path) -> serde_json::Value {
    let out = tracer::run(&["inspect", "--format", "json", exe.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The probe plan `mapleak inspect --format json` prints, without the fields that legitimately
/// differ between twins (path, symbol source), plus the numgc address found by disassembly.
fn plan(exe: &std::path::Path) -> (Vec<serde_json::Value>, serde_json::Value) {
    let out = tracer::run(&["inspect", "--format", "json", exe.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let probes = v["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p.as_object_mut().unwrap().remove("source");
            p
        })
        .collect();
    (probes, v["numgc_address"].clone())
}

#[test]
fn every_go_grows_by_the_runtime_rules() {
    mapleak_tests::require_root();
    let cases = cases();
    let exes = build_all(&cases);
    let mut failures = mapleak_tests::Failures::new("matrix");
    for ((config, mode), exe) in cases.iter().zip(&exes) {
        let name = format!(
            "go {}{} {mode:?}",
            config.go,
            if config.noswissmap { " noswissmap" } else { "" }
        );
        let twin = cases.iter().position(|(c, m)| {
            c.go == config.go && c.noswissmap == config.noswissmap && *m == Mode::Normal
        });
        failures.check(&name, || {
            check_fill(config, exe);
            if *mode == Mode::Stripped {
                // `-s -w` relinks and moves code, so the address twin is the normal build with
                // its symbol table stripped afterwards.
                let normal = &exes[twin.expect("every config has a normal build")];
                assert_eq!(
                    plan(normal),
                    plan(&strip(normal)),
                    "probe plan differs without .symtab"
                );
            }
            if matches!(mode, Mode::Normal | Mode::Stripped) {
                // Without build information the version comes from the runtime's own
                // runtime.buildVersion: the same version, the same plan, the same counts.
                let bare = without_buildinfo(exe);
                let (intact, got) = (inspect_json(exe), inspect_json(&bare));
                assert_eq!(intact["go_version_source"], "buildinfo");
                assert_eq!(got["go_version_source"], "runtime.buildVersion");
                for key in [
                    "go_version",
                    "map_impl",
                    "numgc_address",
                    "gcphase_address",
                    "pause_start_address",
                ] {
                    assert_eq!(got[key], intact[key], "{key} without .go.buildinfo");
                }
                assert_eq!(plan(exe), plan(&bare), "plan differs without .go.buildinfo");
                check_fill(config, &bare);
            }
            if *mode == Mode::Pie {
                // Stripped PIEs, as distributions ship them: Go 1.18–1.25 keep the function
                // table in .data.rel.ro there.
                let stripped = strip(exe);
                assert_eq!(
                    plan(exe),
                    plan(&stripped),
                    "PIE plan differs without .symtab"
                );
                check_fill(config, &stripped);
            }
        });
    }
    failures.assert_none();
}
