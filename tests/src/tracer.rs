//! Running the real `mapleak` binary against a fixture.

use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, ChildStderr, ChildStdout, Command, Output, Stdio},
};

use crate::Report;

/// `$MAPLEAK_BIN`, set by `cargo xtask test` to the release build.
pub fn mapleak_bin() -> PathBuf {
    let bin = std::env::var_os("MAPLEAK_BIN")
        .map(PathBuf::from)
        .expect("MAPLEAK_BIN names the mapleak binary (run the tests with `cargo xtask test`)");
    assert!(bin.exists(), "MAPLEAK_BIN={} does not exist", bin.display());
    bin
}

/// `mapleak …` run to completion.
pub fn run(args: &[&str]) -> Output {
    Command::new(mapleak_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run mapleak")
}

/// `mapleak …` run as an unprivileged user with no capabilities.
pub fn run_unprivileged(args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(mapleak_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv")
}

/// Whom [`setpriv`] runs mapleak as.
#[derive(Clone, Copy, Debug)]
pub enum User {
    /// uid 0, with the bounding set cut to the capabilities given.
    Root,
    /// `nobody` (uid 65534), with the capabilities given as ambient ones: the way to grant them
    /// to one run without setting file capabilities on the binary.
    Nobody,
}

/// A command that runs mapleak as `user` with exactly `caps` (setpriv's names, e.g.
/// `sys_admin`) in its effective and permitted sets.
pub fn setpriv(user: User, caps: &[&str]) -> Command {
    let list: Vec<String> = std::iter::once("-all".to_owned())
        .chain(caps.iter().map(|c| format!("+{c}")))
        .collect();
    let list = list.join(",");
    let mut cmd = Command::new("setpriv");
    match user {
        User::Root => cmd.arg(format!("--bounding-set={list}")),
        User::Nobody => cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]),
    };
    cmd.arg(format!("--inh-caps={list}"))
        .arg(format!("--ambient-caps={list}"))
        .arg(mapleak_bin());
    cmd
}

/// `cmd …` (e.g. [`setpriv`]) run to completion.
pub fn run_with(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run mapleak")
}

/// A `mapleak trace` in progress, already attached.
pub struct Tracer {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: BufReader<ChildStderr>,
    banner: String,
    /// JSON lines already read by [`Tracer::next_interval`].
    seen: Vec<serde_json::Value>,
}

impl Tracer {
    /// Starts `mapleak trace --pid PID --format json --exact EXTRA…` and waits until it has
    /// attached. Exact: these tests compare counts with oracles, so nothing may be sampled.
    pub fn attach(pid: u32, extra: &[&str]) -> Self {
        let mut args = vec!["--exact"];
        args.extend_from_slice(extra);
        Self::attach_governed(pid, &args)
    }

    /// Like [`Tracer::attach`], with the overhead governor as users get it by default.
    pub fn attach_governed(pid: u32, extra: &[&str]) -> Self {
        Self::attach_with(Command::new(mapleak_bin()), pid, extra)
    }

    /// Like [`Tracer::attach_governed`], with mapleak started by `cmd` (e.g. [`setpriv`], which
    /// execs it: the child's pid is mapleak's).
    pub fn attach_with(mut cmd: Command, pid: u32, extra: &[&str]) -> Self {
        let pid = pid.to_string();
        let mut child = cmd
            .args(["trace", "--pid", &pid, "--format", "json"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mapleak");
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut banner = String::new();
        // Blocks until mapleak says it is attached, or exits (EOF): no sleeping.
        while stderr.read_line(&mut banner).expect("read mapleak stderr") > 0 {
            if banner.contains("mapleak: tracing pid") {
                return Self {
                    child,
                    stdout,
                    stderr,
                    banner,
                    seen: Vec::new(),
                };
            }
        }
        let status = child.wait().expect("wait for mapleak");
        panic!("mapleak exited ({status}) before attaching: {banner}");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// The next live interval object (blocking until mapleak prints it).
    pub fn next_interval(&mut self) -> serde_json::Value {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read mapleak stdout");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"));
        assert_eq!(v["type"], "interval", "{v}");
        self.seen.push(v.clone());
        v
    }

    /// Waits for mapleak to exit by itself, checks it succeeded, and parses its JSON lines.
    pub fn finish(mut self) -> Report {
        let mut stdout = String::new();
        self.stdout
            .read_to_string(&mut stdout)
            .expect("read mapleak stdout");
        let mut rest = String::new();
        self.stderr.read_to_string(&mut rest).expect("read stderr");
        let status = self.child.wait().expect("wait for mapleak");
        assert!(
            status.success(),
            "mapleak failed ({status}): {}{rest}",
            self.banner
        );
        let mut values = std::mem::take(&mut self.seen);
        values.extend(stdout.lines().map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}"))
        }));
        let summary = values.pop().expect("mapleak printed a summary");
        assert_eq!(summary["type"], "summary", "the last line is the summary");
        assert!(
            values.iter().all(|v| v["type"] == "interval"),
            "every earlier line is an interval"
        );
        Report {
            intervals: values,
            summary,
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
