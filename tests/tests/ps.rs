//! `mapleak ps` and `mapleak trace --name`: the Go processes running here, each with the
//! version and map implementation its binary says, found by name.

use std::process::{Command, Stdio};

use mapleak_tests::{Fixture, GoBuild, build, require_root, tracer};

/// A fixture binary copied under a name of its own, so that a pattern can pick it alone.
fn renamed(go: &str, name: &str) -> std::path::PathBuf {
    let exe = build(&GoBuild::plain("mapgrow", go));
    let copy = exe.with_file_name(name);
    std::fs::copy(&exe, &copy).expect("copy the fixture");
    copy
}

fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}")))
        .collect()
}

#[test]
fn ps_lists_each_go_process_with_what_its_binary_says() {
    require_root();
    let old = Fixture::start(&renamed("1.21.13", "psold"), &["fill", "1", "1"], &[]);
    let new = Fixture::start(&renamed("1.27.3", "psnew"), &["fill", "1", "1"], &[]);
    let mut sleeper = Command::new("sleep")
        .arg("600")
        .stdout(Stdio::null())
        .spawn()
        .expect("start sleep");
    let out = tracer::run(&["ps", "--format", "json"]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let procs = json_lines(&out.stdout);
    let find = |pid: u32| procs.iter().find(|p| p["pid"] == pid);
    let row = find(old.pid()).expect("the go1.21 fixture is listed");
    assert_eq!(
        (&row["go_version"], &row["map_impl"], &row["name"]),
        (&"go1.21.13".into(), &"classic".into(), &"psold".into())
    );
    assert_eq!(row["why_not"], serde_json::Value::Null, "{row}");
    assert_eq!(
        row["command"],
        format!("{} fill 1 1", row["exe"].as_str().unwrap())
    );
    let row = find(new.pid()).expect("the go1.27 fixture is listed");
    assert_eq!(
        (&row["go_version"], &row["map_impl"]),
        (&"go1.27.3".into(), &"swiss".into())
    );
    assert!(find(sleeper.id()).is_none(), "sleep is not Go");

    // The text table, filtered by name.
    let out = tracer::run(&["ps", "--name", "^ps(old|new)$"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0]
            .split_whitespace()
            .eq(["PID", "GO", "MAPS", "COMMAND"]),
        "{text}"
    );
    for (line, (pid, go, maps)) in lines[1..].iter().zip([
        (old.pid(), "go1.21.13", "classic"),
        (new.pid(), "go1.27.3", "swiss"),
    ]) {
        let fields: Vec<&str> = line.split_whitespace().take(3).collect();
        assert_eq!(fields, [pid.to_string().as_str(), go, maps], "{text}");
    }
}

#[test]
fn trace_by_name_traces_the_one_match_and_lists_several() {
    require_root();
    let one = Fixture::start(&renamed("1.21.13", "byname-a"), &["fill", "1000", "1"], &[]);
    let two = Fixture::start(&renamed("1.21.13", "byname-b"), &["fill", "1", "1"], &[]);

    // Several match: both listed, nothing traced, exit status 1.
    let out = tracer::run(&["trace", "--name", "^byname-", "--duration", "1s"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty());
    assert!(err.contains("2 Go processes match \"^byname-\""), "{err}");
    for pid in [one.pid(), two.pid()] {
        assert!(err.contains(&format!(" {pid} ")), "{pid} listed: {err}");
    }
    assert!(
        err.ends_with("mapleak: give the one to trace with --pid\n"),
        "{err}"
    );

    // One matches: it is the one traced, until it exits.
    let mut trace = Command::new(tracer::mapleak_bin())
        .args([
            "trace",
            "--name",
            "^byname-a$",
            "--exact",
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mapleak");
    let mut banner = std::io::BufReader::new(trace.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("tracing pid") {
        assert!(
            std::io::BufRead::read_line(&mut banner, &mut said).unwrap() > 0,
            "{said}"
        );
    }
    assert!(
        said.contains(&format!("tracing pid {} ", one.pid())),
        "{said}"
    );
    let one_pid = one.pid();
    let lines = one.go_and_wait();
    let out = trace.wait_with_output().unwrap();
    assert!(out.status.success());
    let summary = json_lines(&out.stdout).pop().unwrap();
    assert_eq!(summary["pid"], one_pid);
    let maps = Fixture::maps(&lines);
    // Go 1.21 grows a map[int]int to 1000 entries 8 times (load factor 6: 8, 12 … 768).
    let row = summary["maps"]["top"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["map"] == maps[0].0.as_str())
        .unwrap_or_else(|| panic!("{} is reported: {summary}", maps[0].0));
    assert_eq!(row["grow_events"], 8, "{row}");

    // None matches: one sentence, naming a process that matched but is not Go.
    let sleep = std::env::temp_dir().join("byname-sleep");
    std::fs::copy("/bin/sleep", &sleep).expect("copy sleep");
    let mut sleeper = Command::new(&sleep)
        .arg("600")
        .spawn()
        .expect("start sleep");
    let out = tracer::run(&["trace", "--name", "^byname-(zzz|sleep)$"]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with(&format!(
            "mapleak: no Go process matches \"^byname-(zzz|sleep)$\" (byname-sleep, pid {}, matches but is not a Go program)",
            sleeper.id()
        )),
        "{err}"
    );
    drop(two);
}
