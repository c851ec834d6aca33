//! `mapleak run`: a program started by mapleak is traced from its first instruction, however
//! soon it exits, through any launcher that executes it; mapleak lives as long as it does and
//! exits with its status.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use mapleak_tests::{
    Fixture, GoBuild, Report, build,
    fixture::go_bin,
    mapleak_bin, require_root,
    versions::{MATRIX, check_swiss_fill},
};

/// A report file of this test's own.
fn report_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mapleak-run-{name}-{}.json", std::process::id()))
}

/// `mapleak run FLAGS… --format json --output REPORT -- COMMAND…` with `stdin` written to the
/// command's standard input, run to completion.
fn run(
    report: &Path,
    flags: &[&str],
    command: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> Output {
    let mut child = Command::new(mapleak_bin())
        .arg("run")
        .args(flags)
        .args(["--format", "json", "--output"])
        .arg(report)
        .arg("--")
        .args(command)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mapleak run");
    let mut input = child.stdin.take().expect("piped stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait for mapleak run")
}

fn read_report(path: &Path) -> Report {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no report at {}: {e}", path.display()));
    let _ = std::fs::remove_file(path);
    let mut values: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}")))
        .collect();
    let summary = values.pop().expect("a summary");
    assert_eq!(summary["type"], "summary", "{summary}");
    Report {
        intervals: values,
        summary,
    }
}

fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The pid the fixture announced on its first line.
fn ready_pid(lines: &[String]) -> u64 {
    lines
        .first()
        .and_then(|l| l.strip_prefix("ready "))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the fixture did not say ready: {lines:?}"))
}

/// The trace has each GC cycle the program's own gctrace printed on `stderr`, both stops of
/// the world of each, and at most one more that the exit cut short.
fn assert_every_cycle(report: &Report, stderr: &str) {
    let numbers: Vec<u64> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("gc ")?.split_once(" @")?.0.parse().ok())
        .collect();
    assert!(!numbers.is_empty(), "no gctrace lines: {stderr}");
    // One process, numbered from its first cycle.
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
    // gctrace prints a cycle after it ends: the last one traced may have begun (or even ended)
    // just before the exit, with no line printed. Every printed cycle is traced and ended.
    let per_cycle = report.summary["gc"]["per_cycle"].as_array().unwrap();
    let ended = |c: &serde_json::Value| c["mark_term_pause_ns"].as_u64().unwrap() > 0;
    let n = numbers.len();
    assert!(
        per_cycle.len() == n || per_cycle.len() == n + 1,
        "{} cycles traced, {n} printed: {}",
        per_cycle.len(),
        report.summary["gc"]
    );
    let traced: Vec<u64> = per_cycle
        .iter()
        .map(|c| c["cycle"].as_u64().unwrap())
        .collect();
    assert_eq!(traced, (1..=per_cycle.len() as u64).collect::<Vec<_>>());
    assert!(per_cycle[..n].iter().all(ended), "{}", report.summary["gc"]);
    let extra = per_cycle[n..]
        .iter()
        .map(|c| if ended(c) { 2 } else { 1 })
        .sum::<u64>();
    assert_eq!(report.u64(&["gc", "cycles"]), per_cycle.len() as u64);
    assert_eq!(report.u64(&["gc", "pause_count"]), 2 * n as u64 + extra);
}

#[test]
fn a_program_that_exits_at_once_is_traced_from_its_first_instruction() {
    require_root();
    // The fixture finds its start line already written and is done within milliseconds: only
    // a trace that began before its first instruction sees every growth.
    let exe = build(&GoBuild::plain("mapgrow", "1.21.13"));
    let report_file = report_path("first");
    let exe = exe.to_str().unwrap();
    let out = run(
        &report_file,
        &[],
        &[exe, "fill", "100000", "5"],
        "go\n",
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    let lines = stdout_lines(&out);
    let report = read_report(&report_file);
    assert_eq!(report.u64(&["pid"]), ready_pid(&lines));
    let maps = Fixture::maps(&lines);
    assert_eq!(maps.len(), 5, "{lines:?}");
    let expect = MATRIX.iter().find(|c| c.go == "1.21.13").unwrap().expect;
    for (addr, len) in &maps {
        assert_eq!(*len, 100_000);
        let row = report
            .map(addr)
            .unwrap_or_else(|| panic!("{addr}: {}", report.summary));
        assert_eq!(row["grow_events"], expect.grow_events, "{row}");
        assert_eq!(row["bytes"], expect.bytes, "{row}");
    }
    assert_eq!(report.u64(&["events", "lost"]), 0);
    assert_eq!(report.summary["stop_reason"], "target_exited");
    // Gone before any interval's reading: RSS is the peak from its exit status, which holds at
    // least the five maps' last bucket arrays, all kept live to the end.
    let last_arrays = 5 * 34_816 * 144;
    assert!(
        report.u64(&["memory", "rss_bytes"]) > last_arrays,
        "{}",
        report.summary["memory"]
    );
    // Read at its first instruction, the runtime had not set GOGC or GOMEMLIMIT yet: those
    // zeros are not believed. What is said is the runtime's own (GOGC 100, no limit), or nothing.
    for path in [&["memory", "gogc"][..], &["gc", "gogc"]] {
        let gogc = &report.summary[path[0]][path[1]];
        assert!(
            gogc.is_null() || *gogc == 100,
            "{path:?}: {}",
            report.summary
        );
    }
    assert_eq!(report.summary["memory"]["heap_read_errors"], 0);
}

#[test]
fn a_launcher_that_executes_the_program_is_followed_to_it() {
    require_root();
    // `env` is not Go: it runs until it executes the fixture, whose image is then traced.
    let exe = build(&GoBuild::plain("mapgrow", "1.27.3"));
    let report_file = report_path("env");
    let exe = exe.to_str().unwrap();
    let out = run(
        &report_file,
        &[],
        &["env", "MAPLEAK_TEST=1", exe, "fill", "100000", "3"],
        "go\n",
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(
        err.contains("is not a Go program: it runs untraced until it executes one"),
        "{err}"
    );
    let lines = stdout_lines(&out);
    let report = read_report(&report_file);
    assert_eq!(report.u64(&["pid"]), ready_pid(&lines));
    assert_eq!(report.summary["go_version"], "go1.27.3");
    let maps = Fixture::maps(&lines);
    assert_eq!(maps.len(), 3, "{lines:?}");
    for (addr, _) in &maps {
        let row = report
            .map(addr)
            .unwrap_or_else(|| panic!("{addr}: {}", report.summary));
        // 100 000 entries fit no fewer than 128 tables of 896.
        check_swiss_fill(row, 127, 136);
    }
    assert_eq!(report.u64(&["events", "lost"]), 0);
}

#[test]
fn mapleak_exits_with_the_programs_status() {
    require_root();
    // No start line: the fixture exits 3 on the end of its input.
    let exe = build(&GoBuild::plain("mapgrow", "1.21.13"));
    let report_file = report_path("status");
    let out = run(
        &report_file,
        &[],
        &[exe.to_str().unwrap(), "fill", "1", "1"],
        "",
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = read_report(&report_file);
    assert_eq!(report.summary["stop_reason"], "target_exited");
}

#[test]
fn a_signal_sent_to_mapleak_alone_goes_on_to_the_program() {
    require_root();
    let exe = build(&GoBuild::plain("mapgrow", "1.21.13"));
    let report_file = report_path("signal");
    let mut child = Command::new(mapleak_bin())
        .args(["run", "--exact", "--format", "json", "--output"])
        .arg(&report_file)
        .arg("--")
        .arg(&exe)
        .args(["fill", "1", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mapleak run");
    // The fixture waits on its standard input, which stays open: only the signal ends it.
    let _input = child.stdin.take();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("mapleak: tracing pid") {
        assert!(stderr.read_line(&mut said).unwrap() > 0, "{said}");
    }
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut ready = String::new();
    stdout.read_line(&mut ready).unwrap();
    assert!(ready.starts_with("ready "), "{ready}");
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    // Go's default for SIGTERM is to die of it: 128 + 15, as a shell shows it.
    assert_eq!(status.code(), Some(143), "{status}: {said}{rest}");
    let report = read_report(&report_file);
    assert_eq!(report.summary["stop_reason"], "target_exited");
    assert_eq!(
        report.u64(&["pid"]),
        ready[6..].trim().parse::<u64>().unwrap()
    );
}

#[test]
fn the_go_command_through_its_python_launcher_has_every_gc_cycle() {
    require_root();
    // The Go toolchain from its Python package: a script that executes the real `go`, a large
    // real program. Its own gctrace numbers every cycle from the first: the trace must have
    // each one, and both of each one's stops of the world.
    let go = go_bin("1.27.3");
    let report_file = report_path("golist");
    let out = run(
        &report_file,
        &[],
        &[go.to_str().unwrap(), "list", "-deps", "std"],
        "",
        &[("GODEBUG", "gctrace=1")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    let report = read_report(&report_file);
    assert_every_cycle(&report, &err);
    assert_eq!(report.u64(&["gc", "unpaired"]), 0);
    assert_eq!(report.u64(&["events", "lost"]), 0);
    assert_eq!(report.summary["stop_reason"], "target_exited");
}

#[test]
fn the_go_compiler_compiling_a_package_has_every_gc_cycle_and_its_status() {
    require_root();
    // The compiler itself (no `go` command around it) on a generated package of 1500 functions
    // that fill maps: a second of work and, with GOGC=25, a dozen GC cycles.
    let compile = go_bin("1.27.3")
        .parent()
        .unwrap()
        .join("../lib/python3.11/site-packages/go/pkg/tool/linux_amd64/compile");
    let dir = std::env::temp_dir().join(format!("mapleak-compile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut source = String::from("package p\n");
    for i in 0..1500 {
        source.push_str(&format!(
            "func F{i}(n int) map[int]int {{ m := map[int]int{{}}; for j := 0; j < n; j++ {{ m[j*{i}] = j }}; return m }}\n"
        ));
    }
    std::fs::write(dir.join("p.go"), source).unwrap();
    let archive = dir.join("p.a");
    let (c, a, p) = (
        compile.to_str().unwrap(),
        archive.to_str().unwrap(),
        dir.join("p.go"),
    );
    let report_file = report_path("compile");
    let env = [("GODEBUG", "gctrace=1"), ("GOGC", "25")];
    let out = run(
        &report_file,
        &[],
        &[c, "-p", "p", "-o", a, p.to_str().unwrap()],
        "",
        &env,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(
        std::fs::metadata(&archive).unwrap().len() > 0,
        "the compiler wrote its archive"
    );
    let report = read_report(&report_file);
    assert_every_cycle(&report, &err);
    assert_eq!(report.u64(&["events", "lost"]), 0);
    // A program mapleak starts is measured exactly unless given a budget: nothing sampled.
    assert_eq!(
        report.summary["sampling"]["governor"], false,
        "{}",
        report.summary["sampling"]
    );
    let governed = run(
        &report_file,
        &["--max-overhead", "1"],
        &[c, "-p", "p", "-o", a, p.to_str().unwrap()],
        "",
        &[],
    );
    assert!(governed.status.success());
    assert_eq!(
        read_report(&report_file).summary["sampling"]["governor"],
        true
    );

    // A package that does not compile: the compiler's status (2) is mapleak's.
    std::fs::write(
        dir.join("q.go"),
        "package q\nfunc F() int { return \"x\" }\n",
    )
    .unwrap();
    let q = dir.join("q.go");
    let out = run(
        &report_file,
        &[],
        &[c, "-p", "q", "-o", a, q.to_str().unwrap()],
        "",
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        read_report(&report_file).summary["stop_reason"],
        "target_exited"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
