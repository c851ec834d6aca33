//! Privileges as the kernel judges them: mapleak traces a root process with the least it needs,
//! names in one sentence what it lacks, and once attached holds only what the rest of the trace
//! uses, as its threads' `/proc/PID/task/TID/status` says.

use std::process::Output;

use mapleak_tests::{
    Failures, Fixture, GoBuild, Report, Tracer, build, require_root,
    tracer::{self, User},
};

const GO121: GoBuild = GoBuild::plain("mapgrow", "1.21.13");

/// The least a trace of a root process needs on this kernel (measured on Linux 6.18), where
/// uprobes attach as `uprobe.multi` links: loading and tracing take CAP_BPF and CAP_PERFMON,
/// reading a process of another user CAP_SYS_PTRACE, and tracefs, which is root's alone,
/// CAP_DAC_READ_SEARCH.
const NOBODY_LEAST: &[&str] = &["bpf", "perfmon", "sys_ptrace", "dac_read_search"];
/// uid 0 owns tracefs, but a root process with every capability is still more privileged than
/// one with three, so reading it takes CAP_SYS_PTRACE.
const ROOT_LEAST: &[&str] = &["bpf", "perfmon", "sys_ptrace"];
/// With perf-event uprobes (older kernels, or `MAPLEAK_UPROBES=perf`), CAP_SYS_ADMIN instead of
/// the first two.
const NOBODY_LEAST_PERF: &[&str] = &["sys_admin", "sys_ptrace", "dac_read_search"];

/// Bit numbers of linux/capability.h.
const CAP_DAC_READ_SEARCH: u64 = 1 << 2;
const CAP_SYS_PTRACE: u64 = 1 << 19;
const CAP_SYS_ADMIN: u64 = 1 << 21;

/// `cmd` with perf-event uprobes forced.
fn perf(mut cmd: std::process::Command) -> std::process::Command {
    cmd.env("MAPLEAK_UPROBES", "perf");
    cmd
}

/// Every fill of Go 1.21's unsized `map[int]int{}` to 100 000 entries grows it 15 times (see
/// growth.rs).
fn assert_fills_traced(lines: &[String], report: &Report) {
    let maps = Fixture::maps(lines);
    assert_eq!(maps.len(), 5, "{lines:?}");
    for (addr, _) in maps {
        let row = report.map(&addr).expect("every map is in the report");
        assert_eq!(row["grow_events"], 15, "{row}");
    }
}

#[test]
fn the_least_capabilities_trace_a_root_process() {
    require_root();
    let mut failures = Failures::new("least capabilities");
    let cases = [
        (User::Nobody, NOBODY_LEAST, false),
        (User::Root, ROOT_LEAST, false),
        (User::Nobody, NOBODY_LEAST_PERF, true),
    ];
    for (user, caps, perf_uprobes) in cases {
        failures.check(
            &format!("{user:?} with {caps:?}, perf {perf_uprobes}"),
            || {
                let fixture = Fixture::start(&build(&GO121), &["fill", "100000", "5"], &[]);
                let mut cmd = tracer::setpriv(user, caps);
                if perf_uprobes {
                    cmd = perf(cmd);
                }
                let tracer = Tracer::attach_with(cmd, fixture.pid(), &["--exact"]);
                let lines = fixture.go_and_wait();
                let report = tracer.finish();
                assert_fills_traced(&lines, &report);
                let s = &report.summary;
                // The memory tracepoints were attached too: no note says they were not.
                let notes = s["notes"].to_string();
                assert!(!notes.contains("memory mappings"), "{notes}");
                assert!(
                    s["probes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["symbol"] == "mmap"),
                    "{}",
                    s["probes"]
                );
            },
        );
    }
    failures.assert_none();
}

/// One line starting `mapleak: ` (once), exit status 1, no report.
fn assert_one_sentence(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
    assert!(stderr.starts_with("mapleak: "), "{stderr}");
    assert!(!stderr.starts_with("mapleak: mapleak"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "no report on error");
    stderr
}

#[test]
fn each_missing_capability_is_named_in_one_sentence() {
    require_root();
    let fixture = Fixture::start(&build(&GO121), &["fill", "10", "1"], &[]);
    let pid = fixture.pid().to_string();
    let required = [
        "CAP_BPF",
        "CAP_PERFMON",
        "CAP_SYS_ADMIN",
        "CAP_SYS_PTRACE",
        "CAP_DAC_READ_SEARCH",
    ];
    // (user, capabilities held, perf-event uprobes, the one capability named)
    let cases: [(User, &[&str], bool, &str); 8] = [
        (
            User::Nobody,
            &["perfmon", "sys_ptrace", "dac_read_search"],
            false,
            "CAP_BPF",
        ),
        (
            User::Nobody,
            &["bpf", "sys_ptrace", "dac_read_search"],
            false,
            "CAP_PERFMON",
        ),
        (
            User::Nobody,
            &["bpf", "perfmon", "dac_read_search"],
            false,
            "CAP_SYS_PTRACE",
        ),
        (
            User::Nobody,
            &["bpf", "perfmon", "sys_ptrace"],
            false,
            "CAP_DAC_READ_SEARCH",
        ),
        (User::Root, &["perfmon", "sys_ptrace"], false, "CAP_BPF"),
        (User::Root, &["bpf", "perfmon"], false, "CAP_SYS_PTRACE"),
        // Perf-event uprobes: the kernel refuses them to CAP_BPF + CAP_PERFMON.
        (
            User::Nobody,
            &["bpf", "perfmon", "sys_ptrace", "dac_read_search"],
            true,
            "CAP_SYS_ADMIN",
        ),
        (User::Root, &["sys_ptrace"], true, "CAP_SYS_ADMIN"),
    ];
    let mut failures = Failures::new("missing capability");
    for (user, caps, perf_uprobes, named) in cases {
        failures.check(
            &format!("{user:?} with {caps:?}, perf {perf_uprobes}"),
            || {
                let mut cmd = tracer::setpriv(user, caps);
                if perf_uprobes {
                    cmd = perf(cmd);
                }
                let out = tracer::run_with(cmd, &["trace", "--duration", "10s", "--pid", &pid]);
                let sentence = assert_one_sentence(&out);
                assert!(sentence.contains(named), "{named} missing from: {sentence}");
                assert!(sentence.contains("run mapleak as root"), "{sentence}");
                for other in required.iter().filter(|c| **c != named) {
                    assert!(!sentence.contains(other), "{other} is held: {sentence}");
                }
            },
        );
    }
    fixture.kill();
    failures.assert_none();
}

/// The capability sets of every thread of `pid`: (CapInh, CapPrm, CapEff, CapBnd, CapAmb).
fn thread_caps(pid: u32) -> Vec<[u64; 5]> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("mapleak is running");
    tasks
        .map(|task| {
            let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
            ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
                .map(|field| cap_field(&status, field))
        })
        .collect()
}

fn cap_field(status: &str, field: &str) -> u64 {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    u64::from_str_radix(line.trim(), 16).unwrap()
}

/// Checks that every thread of the attached mapleak holds `kept` in its effective and permitted
/// sets and nothing else, nothing inheritable or ambient, and `bounding` as its bounding set.
fn assert_holds_only(tracer: &Tracer, kept: u64, bounding: u64) {
    let threads = thread_caps(tracer.pid());
    assert!(!threads.is_empty());
    for [inh, prm, eff, bnd, amb] in threads {
        assert_eq!(eff, kept, "CapEff {eff:x}, expected {kept:x}");
        assert_eq!(prm, kept, "CapPrm {prm:x}, expected {kept:x}");
        assert_eq!((inh, amb), (0, 0), "CapInh {inh:x} CapAmb {amb:x}");
        assert_eq!(bnd, bounding, "CapBnd {bnd:x}, expected {bounding:x}");
    }
}

#[test]
fn capabilities_not_needed_after_attach_are_dropped() {
    require_root();
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let own_bounding = cap_field(&own, "CapBnd");
    assert!(
        cap_field(&own, "CapEff") & CAP_DAC_READ_SEARCH != 0,
        "the tests run as root"
    );
    let perf_governed = CAP_SYS_ADMIN | CAP_SYS_PTRACE;
    let mut failures = Failures::new("dropped after attach");

    // Governed: CAP_SYS_PTRACE stays for the reads of the target at every interval, and with
    // perf-event uprobes CAP_SYS_ADMIN for the governor's re-attaching (a uprobe.multi link
    // needs none). The growth probes go on and off on a fixed duty cycle while a target churns
    // maps for 4 s: without what attaching needs, the attach fails (EACCES) and no growth is
    // seen after the first interval.
    type Start = fn(u32) -> Tracer;
    let starts: [(&str, Start, u64, u64); 3] = [
        (
            "root",
            |pid| Tracer::attach_governed(pid, &["--duty", "growth=0.2"]),
            CAP_SYS_PTRACE,
            own_bounding & CAP_SYS_PTRACE,
        ),
        (
            "nobody with the least",
            |pid| {
                let cmd = tracer::setpriv(User::Nobody, NOBODY_LEAST);
                Tracer::attach_with(cmd, pid, &["--duty", "growth=0.2"])
            },
            CAP_SYS_PTRACE,
            own_bounding,
        ),
        (
            "root, perf-event uprobes",
            |pid| {
                Tracer::attach_with(
                    perf(tracer::setpriv(
                        User::Root,
                        &["sys_admin", "sys_ptrace", "setpcap"],
                    )),
                    pid,
                    &["--duty", "growth=0.2"],
                )
            },
            perf_governed,
            perf_governed,
        ),
    ];
    for (who, start, kept, bounding) in starts {
        failures.check(&format!("{who}, governed"), || {
            let fixture = Fixture::start(&build(&GO121), &["churn", "4000"], &[]);
            let tracer = start(fixture.pid());
            // The banner comes after the drop: no waiting needed.
            assert_holds_only(&tracer, kept, bounding);
            fixture.go_and_wait();
            let report = tracer.finish();
            let growth = report.summary["sampling"]["groups"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["group"] == "growth")
                .cloned()
                .expect("a growth group");
            assert_eq!(growth["sampled"], true, "{growth}");
            // Growth seen after the first interval: the probes were attached again.
            assert!(
                report.intervals[1..]
                    .iter()
                    .any(|i| i["grow_events"].as_u64() > Some(0)),
                "no growth after the first interval: {} {}",
                report.summary["sampling"],
                report.summary["notes"]
            );
        });
    }

    // Exact: nothing is attached after the start, so only CAP_SYS_PTRACE stays. The target idles
    // while traced, so that the reads at the end still find it.
    failures.check("root, exact", || {
        let fixture = Fixture::start(&build(&GO121), &["fill", "10", "1"], &[]);
        let mut tracer = Tracer::attach(fixture.pid(), &["--interval", "100ms"]);
        assert_holds_only(&tracer, CAP_SYS_PTRACE, own_bounding & CAP_SYS_PTRACE);
        tracer.next_interval();
        tracer.signal(libc::SIGINT);
        let report = tracer.finish();
        let memory = &report.summary["memory"];
        // smaps_rollup and process_vm_readv, both behind ptrace access, worked after the drop.
        assert!(memory["rss_bytes"].as_u64() > Some(0), "{memory}");
        assert!(memory["heap_live_bytes"].is_u64(), "{memory}");
        fixture.kill();
    });
    failures.assert_none();
}
