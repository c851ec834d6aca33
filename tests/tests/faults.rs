//! Fault injection: the ways a trace can go wrong on a real machine — the target replaces its
//! image, a symbol table lies, the target exits mid-switch, signals come early, pipes close,
//! values are huge, the report's file is contested, two tracers meet, mapleak is killed — each
//! must leave the target's code as its file has it and end with a report or one sentence.

use std::{
    io::{BufRead, BufReader, Read},
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::Path,
    process::{Command, Stdio},
};

use mapleak_tests::{
    Fixture, GoBuild, Tracer, build, mapleak_bin, require_root, text, tracer, versions::MATRIX,
};

const GO121: GoBuild = GoBuild::plain("mapgrow", "1.21.13");
/// Bytes of one unsized map[int]int filled to 100 000 on Go 1.21 (load factor 6).
fn go121_fill() -> (u64, u64) {
    let c = MATRIX.iter().find(|c| c.go == "1.21.13").unwrap();
    (c.expect.grow_events, c.expect.bytes)
}

/// A Go 1.21 fixture waiting on its start line (idle), and its executable.
fn idle_target() -> (std::path::PathBuf, Fixture) {
    let exe = build(&GO121);
    let fixture = Fixture::start(&exe, &["fill", "10", "1"], &[]);
    (exe, fixture)
}

/// The target's code equals its file: no breakpoint left, none misplaced.
fn assert_text_intact(pid: u32, exe: &Path) {
    let diff = text::differences(pid, exe);
    assert!(
        diff.is_empty(),
        "{} byte(s) of pid {pid}'s code differ from {}: first at {:#x}",
        diff.len(),
        exe.display(),
        diff[0]
    );
}

#[test]
fn an_exec_of_another_go_ends_the_trace_and_leaves_the_new_image_untouched() {
    require_root();
    // Two releases and two map implementations: no offset of one plan fits the other image.
    let traced = build(&GoBuild::plain("execer", "1.26.6"));
    let next = build(&GoBuild::plain("execer", "1.21.13"));
    let mut fixture = Fixture::start(&traced, &["churn"], &[]);
    let pid = fixture.pid();
    // The default governor: it switches the growth probes on and off while the maps churn.
    let mut tracer = Tracer::attach_governed(pid, &["--interval", "100ms"]);
    fixture.go();
    for _ in 0..5 {
        tracer.next_interval();
    }
    fixture.send(&format!("exec {}", next.display()));
    // The new program ranged over its maps and checked every sum before saying so.
    let line = fixture.read_line();
    assert_eq!(line.trim(), format!("ready {pid}"), "the new image runs");
    let report = tracer.finish();
    assert_eq!(report.summary["stop_reason"], "target_exec");
    let notes = report.summary["notes"].to_string();
    assert!(
        notes.contains(&format!("pid {pid} executed a new program")),
        "{notes}"
    );
    assert!(
        report.u64(&["maps", "grow_events"]) > 0,
        "the old image was traced"
    );
    assert_eq!(report.u64(&["events", "lost"]), 0);
    assert_text_intact(pid, &next);
    fixture.send("go");
    let line = fixture.read_line();
    assert_eq!(line.trim(), "ok 40", "the new image checked its maps twice");
    assert!(fixture.wait().success());
}

/// Moves the `.symtab` value of `name` by `delta` bytes.
fn move_symbol(bytes: &mut [u8], name: &str, delta: u64) {
    // Elf64: section headers at e_shoff, e_shentsize, e_shnum; .symtab is SHT_SYMTAB (2) and its
    // sh_link names the string table.
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes(b[at..at + 2].try_into().unwrap());
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let (shoff, shentsize, shnum) = (
        u64_at(bytes, 0x28) as usize,
        u16_at(bytes, 0x3a) as usize,
        u16_at(bytes, 0x3c) as usize,
    );
    let section = |i: usize| shoff + i * shentsize;
    let symtab = (0..shnum)
        .map(section)
        .find(|&sh| u32_at(bytes, sh + 4) == 2)
        .expect("a .symtab");
    let strtab = section(u32_at(bytes, symtab + 40) as usize);
    let (syms, size) = (
        u64_at(bytes, symtab + 24) as usize,
        u64_at(bytes, symtab + 32) as usize,
    );
    let strings = u64_at(bytes, strtab + 24) as usize;
    for sym in (syms..syms + size).step_by(24) {
        let at = strings + u32_at(bytes, sym) as usize;
        let end = at + bytes[at..].iter().position(|&b| b == 0).unwrap();
        if &bytes[at..end] == name.as_bytes() {
            let value = u64_at(bytes, sym + 8) + delta;
            bytes[sym + 8..sym + 16].copy_from_slice(&value.to_le_bytes());
            return;
        }
    }
    panic!("{name} not in .symtab");
}

#[test]
fn a_symbol_table_one_byte_off_cannot_misplace_a_probe() {
    require_root();
    let exe = build(&GO121);
    let mut bytes = std::fs::read(&exe).unwrap();
    move_symbol(&mut bytes, "runtime.hashGrow", 1);
    let patched = exe.with_file_name("mapgrow-symtab-off-by-one");
    std::fs::write(&patched, &bytes).unwrap();
    std::fs::set_permissions(&patched, PermissionsExt::from_mode(0o755)).unwrap();

    let fixture = Fixture::start(&patched, &["fill", "100000", "2"], &[]);
    let pid = fixture.pid();
    let tracer = Tracer::attach(pid, &[]);
    let maps = Fixture::maps(&fixture.go_and_wait());
    let report = tracer.finish();
    let (grows, bytes) = go121_fill();
    for (addr, _) in &maps {
        let row = report.map(addr).expect("each map grew");
        assert_eq!(row["grow_events"], grows, "{row}");
        assert_eq!(row["bytes"], bytes, "{row}");
    }
    let notes = report.summary["notes"].to_string();
    assert!(
        notes.contains(".symtab puts runtime.hashGrow at"),
        "the disagreement is noted: {notes}"
    );
}

#[test]
fn a_target_that_exits_while_the_probes_are_switched_still_gets_its_report() {
    require_root();
    let exe = build(&GoBuild::plain("execer", "1.27.3"));
    // Five times: each run exits at another point of the duty cycle.
    for _ in 0..5 {
        let mut fixture = Fixture::start(&exe, &["churnfor", "20000"], &[]);
        let tracer = Tracer::attach_governed(fixture.pid(), &["--interval", "100ms"]);
        fixture.go();
        assert_eq!(fixture.read_line().trim(), "made 20000");
        assert!(fixture.wait().success());
        let report = tracer.finish();
        assert_eq!(report.summary["stop_reason"], "target_exited");
        assert_eq!(report.u64(&["events", "lost"]), 0);
    }
}

/// Whether `pid` blocks or catches `signal`, by its /proc status masks.
fn takes_signal(pid: u32, signal: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let bit = 1u64 << (signal - 1);
    ["SigBlk:", "SigCgt:"].iter().any(|field| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|mask| mask & bit != 0)
    })
}

/// `mapleak trace` of `pid`, sent `signal` as soon as its `main` holds the signal: long before
/// it can have attached.
fn signalled_at_once(pid: u32, signal: i32) -> std::process::Output {
    let child = Command::new(mapleak_bin())
        .args(["trace", "--pid", &pid.to_string(), "--format", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while !takes_signal(child.id(), signal) {
        std::thread::yield_now();
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    child.wait_with_output().unwrap()
}

#[test]
fn an_early_signal_ends_with_one_sentence_or_a_report() {
    require_root();
    let (exe, fixture) = idle_target();
    for signal in [libc::SIGINT, libc::SIGTERM] {
        for _ in 0..3 {
            let out = signalled_at_once(fixture.pid(), signal);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.contains("panicked"), "{stderr}");
            match out.status.code() {
                // Before the probes were attached: nothing traced, one sentence.
                Some(1) => {
                    assert!(
                        stderr.contains("interrupted before any probe was attached"),
                        "{stderr}"
                    );
                    assert!(out.stdout.is_empty());
                }
                // After: the report, whole.
                Some(0) => {
                    let last = String::from_utf8_lossy(&out.stdout);
                    let summary: serde_json::Value =
                        serde_json::from_str(last.lines().last().unwrap()).unwrap();
                    assert_eq!(summary["stop_reason"], "interrupted");
                }
                // Killed by the signal: the handlers came too late.
                other => panic!("mapleak ended with {other:?} ({:?}): {stderr}", out.status),
            }
        }
    }
    assert_text_intact(fixture.pid(), &exe);
}

#[test]
fn closed_pipes_never_panic_and_the_file_gets_its_report() {
    require_root();
    let (exe, fixture) = idle_target();
    let pid = fixture.pid().to_string();
    let dir = tempdir("closed-pipes");
    let report = dir.join("report.json");

    // stderr closed before the banner: the report still goes to its file.
    let mut child = Command::new(mapleak_bin())
        .args([
            "trace",
            "--pid",
            &pid,
            "--format",
            "json",
            "--duration",
            "300ms",
        ])
        .arg("--output")
        .arg(&report)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&report).unwrap();
    let summary: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(summary["stop_reason"], "duration");

    // stdout closed by its reader after the first interval: the trace stops and says why.
    let mut child = Command::new(mapleak_bin())
        .args([
            "trace",
            "--pid",
            &pid,
            "--format",
            "json",
            "--interval",
            "50ms",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("\"interval\""), "{first}");
    drop(stdout);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the report's reader closed its end"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // `mapleak inspect BIN | true`: a reader that never reads.
    let mut child = Command::new(mapleak_bin())
        .args(["inspect", exe.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_text_intact(fixture.pid(), &exe);
}

#[test]
fn huge_values_are_served_or_refused_in_one_sentence() {
    require_root();
    let (exe, fixture) = idle_target();
    let pid = fixture.pid().to_string();
    for (flag, value, sentence) in [
        (
            "--ring-size",
            "2147483648",
            "the ring size must be a power of two",
        ),
        (
            "--ring-size",
            "3000",
            "the ring size must be a power of two",
        ),
        (
            "--interval",
            "18446744073709551615s",
            "the interval must be from 10ms to 24h",
        ),
        ("--duration", "0s", "a trace of no time traces nothing"),
        (
            "--max-overhead",
            "1e-300",
            "the overhead budget must be from 0.01% to 100%",
        ),
    ] {
        let out = tracer::run(&["trace", "--pid", &pid, flag, value]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(sentence), "{flag} {value}: {stderr}");
        assert!(out.stdout.is_empty());
    }
    // The largest ring accepted is served; a duration past the clock's end is no deadline, and
    // Ctrl-C still ends the trace with its report.
    let tracer = Tracer::attach(
        fixture.pid(),
        &[
            "--ring-size",
            "67108864",
            "--duration",
            "18446744073709551615s",
            "--interval",
            "50ms",
        ],
    );
    let mut tracer = tracer;
    tracer.next_interval();
    tracer.signal(libc::SIGINT);
    let report = tracer.finish();
    assert_eq!(report.summary["stop_reason"], "interrupted");
    // A second's trace reports about a second, not the time detaching took.
    let tracer = Tracer::attach(fixture.pid(), &["--duration", "1s"]);
    let report = tracer.finish();
    let ns = report.u64(&["duration_ns"]);
    assert!(
        (1_000_000_000..1_200_000_000).contains(&ns),
        "--duration 1s reported {ns} ns"
    );
    assert_text_intact(fixture.pid(), &exe);
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mapleak-faults-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_report_file_is_replaced_only_by_a_report_and_never_through_a_foreign_link() {
    require_root();
    let (_, fixture) = idle_target();
    let pid = fixture.pid().to_string();
    let dir = tempdir("output");

    // A failed start leaves the earlier report as it was.
    let report = dir.join("report.json");
    std::fs::write(&report, "the earlier report").unwrap();
    let missing = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap();
    let out = tracer::run(&[
        "trace",
        "--pid",
        missing.trim(),
        "--output",
        report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(&report).unwrap(),
        "the earlier report"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no file left behind"
    );

    // A new report is readable by its owner only.
    let fresh = dir.join("fresh.json");
    let out = tracer::run(&[
        "trace",
        "--pid",
        &pid,
        "--duration",
        "200ms",
        "--output",
        fresh.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o777, 0o600);
    assert!(
        std::fs::read_to_string(&fresh)
            .unwrap()
            .contains("map growth")
    );

    // In a world-writable sticky directory, another user's link to a root-only file.
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, PermissionsExt::from_mode(0o1777)).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "root only").unwrap();
    std::fs::set_permissions(&secret, PermissionsExt::from_mode(0o600)).unwrap();
    let planted = shared.join("report.json");
    std::os::unix::fs::symlink(&secret, &planted).unwrap();
    let c = std::ffi::CString::new(planted.to_str().unwrap()).unwrap();
    // SAFETY: lchown with a NUL-terminated path.
    assert_eq!(unsafe { libc::lchown(c.as_ptr(), 65534, 65534) }, 0);
    let out = tracer::run(&[
        "trace",
        "--pid",
        &pid,
        "--duration",
        "200ms",
        "--output",
        planted.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("symbolic link owned by another user"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root only");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn two_tracers_on_one_pid_both_count_exactly() {
    require_root();
    let exe = build(&GO121);
    let fixture = Fixture::start(&exe, &["fill", "100000", "2"], &[]);
    let pid = fixture.pid();
    let first = Tracer::attach(pid, &[]);
    let second = Tracer::attach(pid, &[]);
    let maps = Fixture::maps(&fixture.go_and_wait());
    let (grows, bytes) = go121_fill();
    for report in [first.finish(), second.finish()] {
        for (addr, _) in &maps {
            let row = report.map(addr).expect("each tracer saw each map");
            assert_eq!(row["grow_events"], grows, "{row}");
            assert_eq!(row["bytes"], bytes, "{row}");
        }
    }
}

#[test]
fn a_killed_mapleak_leaves_no_breakpoint_behind() {
    require_root();
    let (exe, fixture) = idle_target();
    let pid = fixture.pid();
    let planned = text::planned_probes(&exe);
    assert!(planned.len() >= 4, "{planned:?}");
    assert_text_intact(pid, &exe);
    let tracer = Tracer::attach(pid, &[]);
    // The oracle sees breakpoints: each planned address holds an int3 while attached.
    let attached = text::differences(pid, &exe);
    for at in &planned {
        assert!(
            attached.contains(at),
            "no breakpoint at {at:#x}: {attached:x?}"
        );
    }
    assert!(
        attached.iter().all(|a| planned.contains(a)),
        "{attached:x?}"
    );
    tracer.signal(libc::SIGKILL);
    drop(tracer);
    assert_text_intact(pid, &exe);
}
