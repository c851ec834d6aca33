//! Bad input gets one clear sentence and a non-zero exit; a target that goes away still gets its
//! report.

use std::process::{Command, Output};

use mapleak_tests::{Fixture, GoBuild, Tracer, build, require_root, tracer};

const GO121: GoBuild = GoBuild {
    name: "mapgrow",
    go: "1.21.13",
    flags: &[],
    env: &[],
};

/// The error is one line starting `mapleak: `, with no panic or backtrace, and exit code 1.
fn assert_one_sentence(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
    assert!(stderr.starts_with("mapleak: "), "{stderr}");
    assert!(!stderr.starts_with("mapleak: mapleak"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
    }
    assert!(out.stdout.is_empty(), "no report on error");
}

/// `mapleak trace` of `pid`, bounded so that a wrongly accepted target cannot hang the suite.
fn trace_briefly(run: fn(&[&str]) -> Output, pid: u32) -> Output {
    run(&["trace", "--duration", "10s", "--pid", &pid.to_string()])
}

#[test]
fn a_pid_that_does_not_exist() {
    require_root();
    // pid_max itself is never a valid pid.
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap();
    let pid = pid_max.trim();
    let out = tracer::run(&["trace", "--pid", pid]);
    assert_one_sentence(&out, &[&format!("no process with pid {pid}")]);
}

#[test]
fn a_process_that_is_not_go() {
    require_root();
    let mut sleep = Command::new("sleep").arg("60").spawn().unwrap();
    let out = trace_briefly(tracer::run, sleep.id());
    let _ = sleep.kill();
    let _ = sleep.wait();
    assert_one_sentence(&out, &["is not a Go program"]);
}

#[test]
fn an_unsupported_go_version_names_the_supported_range() {
    require_root();
    // A real Go program whose version strings (build info and runtime.buildVersion) claim
    // go1.17.13: same length, so every layout holds.
    let exe = build(&GO121);
    let mut bytes = std::fs::read(&exe).unwrap();
    let mut patched_count = 0;
    while let Some(at) = bytes.windows(9).position(|w| w == b"go1.21.13") {
        bytes[at..at + 9].copy_from_slice(b"go1.17.13");
        patched_count += 1;
    }
    assert!(patched_count >= 1, "the version string is in the binary");
    let patched = exe.with_file_name("mapgrow-go117");
    std::fs::write(&patched, &bytes).unwrap();
    std::fs::set_permissions(
        &patched,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let fixture = Fixture::start(&patched, &["fill", "10", "1"], &[]);
    let out = trace_briefly(tracer::run, fixture.pid());
    fixture.kill();
    assert_one_sentence(
        &out,
        &[
            "go1.17.13 is not supported",
            "mapleak traces Go programs built with go1.",
        ],
    );
}

#[test]
fn missing_privileges_name_the_capabilities() {
    require_root();
    let fixture = Fixture::start(&build(&GO121), &["fill", "10", "1"], &[]);
    // The same binary as an unprivileged user with no capabilities (one capability at a time:
    // privileges.rs).
    let out = trace_briefly(tracer::run_unprivileged, fixture.pid());
    fixture.kill();
    assert_one_sentence(
        &out,
        &[
            "CAP_BPF",
            "CAP_PERFMON",
            "CAP_SYS_PTRACE",
            "CAP_DAC_READ_SEARCH",
            "run mapleak as root",
        ],
    );
}

#[test]
fn a_target_killed_mid_trace_still_gets_a_final_report() {
    require_root();
    let fixture = Fixture::start(&build(&GO121), &["fill", "10", "1"], &[]);
    let tracer = Tracer::attach(fixture.pid(), &[]);
    fixture.kill();
    let report = tracer.finish();
    assert_eq!(report.summary["stop_reason"], "target_exited");
}

#[test]
fn ctrl_c_and_duration_stop_with_a_final_report() {
    require_root();
    let fixture = Fixture::start(&build(&GO121), &["fill", "10", "1"], &[]);
    let tracer = Tracer::attach(fixture.pid(), &[]);
    tracer.signal(libc::SIGINT);
    let report = tracer.finish();
    assert_eq!(report.summary["stop_reason"], "interrupted");

    let tracer = Tracer::attach(
        fixture.pid(),
        &["--duration", "300ms", "--interval", "100ms"],
    );
    let report = tracer.finish();
    assert_eq!(report.summary["stop_reason"], "duration");
    assert!(report.u64(&["duration_ns"]) >= 300_000_000);
    assert!(
        !report.intervals.is_empty(),
        "interval objects precede the summary"
    );
    fixture.kill();
}

#[test]
fn a_thread_a_kernel_thread_and_a_zombie_are_each_named() {
    require_root();
    let fixture = Fixture::start(&build(&GO121), &["fill", "10", "1"], &[]);
    let pid = fixture.pid();
    // A Go program runs several threads; any but the first is not a process of its own.
    let tid = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| t.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|&t| t != pid)
        .expect("a Go program has more than one thread");
    let out = trace_briefly(tracer::run, tid);
    assert_one_sentence(&out, &[&format!("{tid} is a thread of process {pid}")]);
    fixture.kill();
    // kthreadd is pid 2 on every Linux.
    let out = trace_briefly(tracer::run, 2);
    assert_one_sentence(&out, &["pid 2 is a kernel thread"]);
    // A child that exited and that nobody reaped.
    let mut child = Command::new("true").spawn().unwrap();
    let zombie = child.id();
    while !std::fs::read_to_string(format!("/proc/{zombie}/stat")).is_ok_and(|s| s.contains(") Z "))
    {
        std::thread::yield_now();
    }
    let out = trace_briefly(tracer::run, zombie);
    child.wait().unwrap();
    assert_one_sentence(&out, &[&format!("process {zombie} has exited")]);
}
