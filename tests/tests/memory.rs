//! Memory the runtime returns: mapleak's released bytes against strace, a second observer of the
//! same system calls, and the RSS the fixture reads from /proc around `debug.FreeOSMemory()`.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use mapleak_tests::{Fixture, GoBuild, Tracer, build, require_root};

const GO127: GoBuild = GoBuild {
    name: "mapgrow",
    go: "1.27.3",
    flags: &[],
    env: &[],
};

/// `strace -f -p PID` writing madvise calls to `out`; returns once it has attached.
fn strace(pid: u32, out: &std::path::Path) -> Child {
    let mut child = Command::new("strace")
        .args(["-f", "-e", "trace=madvise", "-o"])
        .arg(out)
        .args(["-p", &pid.to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("run strace (cargo xtask setup installs it)");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if line.contains("attached") {
            return child;
        }
        line.clear();
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("strace did not attach");
}

/// Sum of madvise lengths by advice. A call interrupted by another thread's output is printed as
/// `madvise(addr, len, ADVICE <unfinished ...>`; its arguments are all on that line.
fn madvised(strace_out: &str) -> BTreeMap<String, u64> {
    let mut sums = BTreeMap::new();
    for line in strace_out.lines() {
        let Some(args) = line.split("madvise(").nth(1) else {
            continue;
        };
        if line.contains("resumed>") || line.contains("= -1") {
            continue;
        }
        let mut f = args.split(", ");
        let (_addr, len, advice) = (f.next(), f.next(), f.next());
        let (Some(len), Some(advice)) = (len.and_then(|l| l.parse::<u64>().ok()), advice) else {
            continue;
        };
        let advice = advice
            .split([')', ' '])
            .next()
            .unwrap_or_default()
            .to_owned();
        *sums.entry(advice).or_default() += len;
    }
    sums
}

fn run(godebug: &str) -> (serde_json::Value, BTreeMap<String, u64>, (u64, u64)) {
    let fixture = Fixture::start(
        &build(&GO127),
        &["release", "200000"],
        &[("GODEBUG", godebug)],
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/strace");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("madvise-{}.txt", fixture.pid()));
    let mut observer = strace(fixture.pid(), &out);
    let tracer = Tracer::attach(fixture.pid(), &[]);
    let lines = fixture.go_and_wait();
    let report = tracer.finish();
    observer.wait().unwrap();
    let rss = lines
        .iter()
        .find_map(|l| {
            let mut f = l.strip_prefix("rss ")?.split_whitespace();
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .expect("the fixture printed its RSS");
    let seen = madvised(&std::fs::read_to_string(&out).unwrap());
    (report.summary["memory"].clone(), seen, rss)
}

#[test]
fn freed_memory_matches_the_madvise_calls_strace_saw() {
    require_root();
    let (memory, strace, (before, after)) = run("");
    let released = memory["released_bytes"].as_u64().unwrap();
    assert!(released > 0, "{memory}");
    assert_eq!(
        memory["released_dontneed_bytes"], strace["MADV_DONTNEED"],
        "{strace:?}"
    );
    assert_eq!(memory["released_free_bytes"], 0);
    // DONTNEED drops the pages at once: RSS falls, by no more than what was released.
    assert!(after < before, "RSS {before} → {after}");
    assert!(
        before - after <= released,
        "RSS fell {} but {released} released",
        before - after
    );
    assert!(memory["rss_bytes"].as_u64() > Some(0));
}

#[test]
fn madvdontneed_0_releases_with_madv_free() {
    require_root();
    let (memory, strace, _) = run("madvdontneed=0");
    assert!(memory["released_free_bytes"].as_u64() > Some(0), "{memory}");
    assert_eq!(
        memory["released_free_bytes"], strace["MADV_FREE"],
        "{strace:?}"
    );
    assert_eq!(
        memory["released_dontneed_bytes"],
        strace.get("MADV_DONTNEED").copied().unwrap_or(0)
    );
}
