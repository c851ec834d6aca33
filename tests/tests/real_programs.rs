//! Go programs as people install them, driven over loopback HTTP, against the runtime's own
//! gctrace: Debian's `prometheus-node-exporter` (go1.19, stripped, cgo: GC data found by
//! disassembly) scraped in a loop, and the esbuild release binary from npm (go1.26, stripped,
//! no `.go.buildinfo`) rebuilding a bundle on each request. `cargo xtask setup` installs both.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
};

use mapleak_tests::{
    Tracer,
    gctrace::{self, End},
    tracer,
};

/// A program under test: its stderr collected on a thread (so that its pipe never fills), and
/// killed when dropped.
struct Program {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Program {
    /// Starts `cmd` with gctrace on and returns once a line of its stderr contains `ready`.
    fn start(mut cmd: Command, ready: &str) -> Self {
        let mut child = cmd
            .env("GODEBUG", "gctrace=1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the program");
        let mut lines = BufReader::new(child.stderr.take().unwrap());
        let stderr = Arc::new(Mutex::new(String::new()));
        loop {
            let mut line = String::new();
            let n = lines.read_line(&mut line).expect("read stderr");
            assert!(
                n > 0,
                "exited before saying {ready:?}: {}",
                stderr.lock().unwrap()
            );
            stderr.lock().unwrap().push_str(&line);
            if line.contains(ready) {
                break;
            }
        }
        let sink = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Self {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    /// Ends the program (closing its stdin first, which esbuild's server takes as its cue) and
    /// returns everything it wrote to stderr.
    fn finish(mut self) -> String {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        std::mem::take(&mut *self.stderr.lock().unwrap())
    }

    /// gctrace cycles printed so far.
    fn cycles_so_far(&self) -> usize {
        gctrace::parse(&self.stderr.lock().unwrap()).len()
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on now (the kernel's pick).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over HTTP/1.0 on loopback; the status code and the whole response.
fn get_body(port: u16, path: &str) -> (u32, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = Vec::new();
    s.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, response)
}

/// `GET path`: the status code and the response's length.
fn get(port: u16, path: &str) -> (u32, usize) {
    let (code, response) = get_body(port, path);
    (code, response.len())
}

/// mapleak attached to `program`, `work` run, the trace stopped, and its cycles held to
/// gctrace's. The program must be idle around `work`: no cycle may begin while mapleak attaches
/// or detaches, so the cycles gctrace printed after the attachment are exactly the ones
/// mapleak saw.
fn trace_against_gctrace(program: Program, minor: u32, work: impl FnOnce()) -> serde_json::Value {
    let tracer = Tracer::attach(program.child.id(), &[]);
    let before = program.cycles_so_far() as u32;
    work();
    tracer.signal(libc::SIGINT);
    let report = tracer.finish();
    let stderr = program.finish();
    let trace = gctrace::parse(&stderr);
    let gc = &report.summary["gc"];
    assert!(
        gc["cycles"].as_u64() >= Some(5),
        "too few cycles to judge: {gc}"
    );
    assert_eq!(gc["unpaired"], 0);
    let first = gc["per_cycle"][0]["cycle"].as_u64().unwrap() as u32;
    assert_eq!(first, before + 1, "the first cycle after attaching");
    gctrace::check_cycles(&report.summary, &trace, minor, End::Detached);
    report.summary
}

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

/// Debian 12's node exporter: go1.19.8, stripped, linked with cgo. Each scrape allocates a few
/// MB: enough for a GC cycle every few scrapes.
#[test]
fn debian_node_exporter_gc_equals_gctrace() {
    mapleak_tests::require_root();
    assert!(
        Path::new(NODE_EXPORTER).exists(),
        "{NODE_EXPORTER} is missing: run `cargo xtask setup`"
    );
    let plan = tracer::run(&["inspect", "--format", "json", NODE_EXPORTER]);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan["symtab"], false, "Debian strips its Go programs");
    let minor: u32 = plan["go_version"].as_str().unwrap()[4..]
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let port = free_port();
    let mut cmd = Command::new(NODE_EXPORTER);
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let program = Program::start(cmd, "Listening on");
    let summary = trace_against_gctrace(program, minor, || {
        for _ in 0..150 {
            let (code, len) = get(port, "/metrics");
            assert_eq!(code, 200);
            assert!(len > 1000);
        }
    });
    let notes = summary["notes"].as_array().unwrap();
    assert!(
        !notes.iter().any(|n| n.as_str().unwrap().contains("GC")),
        "{notes:?}"
    );
}

/// The esbuild release this test pins (a go1.26 build without `.go.buildinfo`).
const ESBUILD: &str = "0.28.2";

/// `npm install esbuild@ESBUILD` under `target/`, once; the platform package's Go binary.
fn esbuild() -> PathBuf {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../target/npm/esbuild-{ESBUILD}"));
    let exe = dir.join("node_modules/@esbuild/linux-x64/bin/esbuild");
    if !exe.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("npm")
            .args(["install", "--no-save", "--ignore-scripts", "--prefix"])
            .arg(&dir)
            .arg(format!("esbuild@{ESBUILD}"))
            .status()
            .expect("run npm (install Debian's npm: `cargo xtask setup`)")
            .success();
        assert!(ok, "npm install esbuild@{ESBUILD} failed");
    }
    exe
}

/// esbuild's server rebuilds its bundle when its file watcher sees a source change (esbuild
/// turns its GC off when it builds once and exits, but not when it serves): each change is
/// waited for until the bundle served holds it, so every change is one build of a 20 000-line
/// module, however late the watcher looks.
#[test]
fn esbuild_without_build_information_gc_equals_gctrace() {
    mapleak_tests::require_root();
    let exe = esbuild();
    let bytes = std::fs::read(&exe).unwrap();
    assert!(
        !bytes.windows(14).any(|w| w == b"\xff Go buildinf:"),
        "this esbuild has build information: it no longer tests its absence"
    );
    let plan = tracer::run(&["inspect", "--format", "json", exe.to_str().unwrap()]);
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan["go_version_source"], "runtime.buildVersion");
    let version = plan["go_version"].as_str().unwrap();
    // The linker's copy of the same string, found by an independent scan of the file.
    let needle = format!("\0{version}\0");
    assert!(
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
        "{version} is not in the binary"
    );
    let minor: u32 = version[4..].split('.').next().unwrap().parse().unwrap();

    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/npm/esbuild-src");
    std::fs::create_dir_all(&src).unwrap();
    let module: String = (0..20_000)
        .map(|i| format!("export const v{i} = {{ a: {i}, b: \"{i:08}\", c: [{i}, 1, 2, 3] }};\n"))
        .collect();
    std::fs::write(src.join("big.js"), &module).unwrap();
    std::fs::write(
        src.join("main.js"),
        "import * as big from './big.js'; console.log(Object.keys(big).length);\n",
    )
    .unwrap();
    let port = free_port();
    let mut cmd = Command::new(&exe);
    // Collections every few builds, not every few dozen.
    cmd.env("GOGC", "10");
    cmd.current_dir(&src).args([
        "main.js",
        "--bundle",
        "--outfile=out.js",
        &format!("--serve=127.0.0.1:{port}"),
    ]);
    let program = Program::start(cmd, "127.0.0.1");
    // The first build, and its collections, before mapleak attaches.
    assert_eq!(get(port, "/out.js").0, 200);
    let summary = trace_against_gctrace(program, minor, || {
        for i in 0..8 {
            let marker = format!("marker{i} = {i}");
            std::fs::write(
                src.join("big.js"),
                format!("{module}export const {marker};\n"),
            )
            .unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            loop {
                let (code, body) = get_body(port, "/out.js");
                assert_eq!(code, 200);
                if body.contains(&marker) {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "esbuild never rebuilt with {marker}"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    });
    assert_eq!(summary["go_version"], version);
}
