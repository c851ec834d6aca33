//! Starting each program and driving it: servers get a client loop on loopback that runs
//! until told to stop; one-shot programs are their own workload. Every wait is on a real
//! condition (a port accepting, a response, a process appearing or exiting), bounded in time.

use std::{
    fs::{self, File},
    io::{self, Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{
    corpus::{Program, Workload, go_command},
    data::{self, Rng},
};

/// How long a server may take to accept connections and answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `go build` may take to reach the compile of the package traced.
const COMPILE_TIMEOUT: Duration = Duration::from_secs(300);
/// The package whose compile is traced: the largest of the standard library, compiled last.
const COMPILED_PACKAGE: &str = "go/types";

/// The generated inputs, made once per run of the corpus.
pub struct Inputs {
    pub root: PathBuf,
}

impl Inputs {
    fn tree(&self) -> Result<PathBuf> {
        data::tree(&self.root)
    }
}

/// A started program: the process to trace and what to stop afterwards.
pub struct Target {
    pub pid: u32,
    /// The process started (the server, the one-shot program, or `go build`).
    child: Child,
    /// `go build` runs in a process group of its own, killed whole at the end.
    group: bool,
    /// The client loop of a server.
    driver: Option<Driver>,
    /// What a one-shot program did, for the workload check.
    what: String,
    log: PathBuf,
}

/// The trace's duration for a server; one-shot programs are traced until they exit, within
/// [`ONE_SHOT_LIMIT`].
pub const SERVER_TRACE: Duration = Duration::from_secs(12);
pub const ONE_SHOT_LIMIT: Duration = Duration::from_secs(240);

impl Target {
    pub fn one_shot(&self) -> bool {
        self.driver.is_none()
    }

    /// Stops the driver and the program; returns what the workload did, or why it failed.
    pub fn stop(mut self) -> std::result::Result<String, String> {
        let driven = self.driver.take().map(Driver::stop);
        let exited = if driven.is_none() {
            // One-shot: it ends by itself, and its exit status is the workload's.
            wait_until(&mut self.child, ONE_SHOT_LIMIT)
        } else {
            None
        };
        if self.group {
            kill_group(self.child.id());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        match (driven, exited) {
            (Some(result), _) => result,
            (None, Some(status)) if status.success() => Ok(self.what.clone()),
            (None, Some(status)) => Err(format!(
                "it failed ({status}); its log {}:\n{}",
                self.log.display(),
                tail(&self.log)
            )),
            (None, None) => Err(format!(
                "it did not finish within {} s",
                ONE_SHOT_LIMIT.as_secs()
            )),
        }
    }
}

/// Starts `program` (from `exe`) in `work`, a fresh directory of its own, and returns once its
/// workload runs.
pub fn start(program: &Program, exe: &Path, inputs: &Inputs, work: &Path) -> Result<Target> {
    let log = work.join("program.log");
    let logged = |cmd: &mut Command| -> Result<Child> {
        let out = File::create(&log)?;
        // A pipe held open (the Child keeps its end): esbuild's serve mode stops when its
        // stdin closes, and the others ignore it.
        cmd.current_dir(work)
            .stdin(Stdio::piped())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("could not start {}", crate::show(cmd)))
    };
    let loopback = |port: u16| format!("127.0.0.1:{port}");
    match program.workload {
        Workload::NodeExporter => {
            let port = free_port()?;
            let child =
                logged(Command::new(exe).arg(format!("--web.listen-address={}", loopback(port))))?;
            let addr = addr(port);
            server(child, port, log, move |_| {
                let (status, body) = http(addr, "GET", "/metrics", &[], b"")?;
                ok(status, &body, "node_")
            })
        }
        Workload::Caddy => {
            let tree = inputs.tree()?;
            let port = free_port()?;
            let child = logged(
                Command::new(exe)
                    .args(["file-server", "--browse", "--listen", &loopback(port)])
                    .arg("--root")
                    .arg(&tree)
                    // Caddy keeps its state under XDG_DATA_HOME and XDG_CONFIG_HOME.
                    .env("XDG_DATA_HOME", work)
                    .env("XDG_CONFIG_HOME", work),
            )?;
            let addr = addr(port);
            server(child, port, log, move |rng| {
                let (d, s) = (rng.below(data::TREE_DIRS), rng.below(data::TREE_SUBDIRS));
                if rng.below(4) == 0 {
                    let (status, body) = http(addr, "GET", &format!("/d{d:02}/s{s}/"), &[], b"")?;
                    ok(status, &body, "f0249.dat")
                } else {
                    let path = data::tree_file(d, s, rng.below(data::TREE_FILES));
                    let (status, body) = http(addr, "GET", &format!("/{path}"), &[], b"")?;
                    ok(status, &body, "")
                }
            })
        }
        Workload::Rclone => {
            let tree = inputs.tree()?;
            let port = free_port()?;
            let child = logged(
                Command::new(exe)
                    .args(["serve", "webdav", "--read-only", "--addr", &loopback(port)])
                    .arg(&tree)
                    // No configuration is needed for a local directory; keep rclone's own
                    // file (and its "not found" notice) inside the work directory.
                    .arg("--config")
                    .arg(work.join("rclone.conf")),
            )?;
            let addr = addr(port);
            server(child, port, log, move |rng| {
                let (d, s) = (rng.below(data::TREE_DIRS), rng.below(data::TREE_SUBDIRS));
                if rng.below(3) == 0 {
                    let (status, body) = http(
                        addr,
                        "PROPFIND",
                        &format!("/d{d:02}/s{s}/"),
                        &[("Depth", "1")],
                        b"",
                    )?;
                    ok(status, &body, "f0249.dat")
                } else {
                    let path = data::tree_file(d, s, rng.below(data::TREE_FILES));
                    let (status, body) = http(addr, "GET", &format!("/{path}"), &[], b"")?;
                    ok(status, &body, "")
                }
            })
        }
        Workload::Etcd => {
            let (client, peer) = (free_port()?, free_port()?);
            let client_url = format!("http://{}", loopback(client));
            let peer_url = format!("http://{}", loopback(peer));
            let child = logged(
                Command::new(exe)
                    .args(["--name", "corpus", "--data-dir"])
                    .arg(work.join("etcd"))
                    .args(["--listen-client-urls", &client_url])
                    .args(["--advertise-client-urls", &client_url])
                    .args(["--listen-peer-urls", &peer_url])
                    .args(["--initial-advertise-peer-urls", &peer_url])
                    .args(["--initial-cluster", &format!("corpus={peer_url}")]),
            )?;
            let addr = addr(client);
            server(child, client, log, move |rng| {
                // The v3 API through its JSON gateway: keys and values are base64.
                let key = format!("key/{:05}", rng.below(20_000));
                let (path, body) = match rng.below(10) {
                    0 => (
                        "/v3/kv/range",
                        format!(
                            r#"{{"key":"{}","range_end":"{}","limit":200}}"#,
                            base64(key.as_bytes()),
                            base64(b"key0")
                        ),
                    ),
                    1 => (
                        "/v3/kv/deleterange",
                        format!(r#"{{"key":"{}"}}"#, base64(key.as_bytes())),
                    ),
                    _ => {
                        let value: Vec<u8> = (0..64 + rng.below(512))
                            .map(|_| b'a' + rng.below(26) as u8)
                            .collect();
                        (
                            "/v3/kv/put",
                            format!(
                                r#"{{"key":"{}","value":"{}"}}"#,
                                base64(key.as_bytes()),
                                base64(&value)
                            ),
                        )
                    }
                };
                let (status, body) = http(addr, "POST", path, &[], body.as_bytes())?;
                ok(status, &body, "revision")
            })
        }
        Workload::Restic => {
            let tree = inputs.tree()?;
            let repo = work.join("repo");
            let restic = |cmd: &mut Command| {
                cmd.arg("--repo")
                    .arg(&repo)
                    .env("RESTIC_PASSWORD", "corpus")
                    .env("RESTIC_CACHE_DIR", work.join("cache"));
            };
            let mut init = Command::new(exe);
            init.args(["init", "--quiet"]);
            restic(&mut init);
            crate::run_logged(&mut init, &work.join("init.log"))?;
            let mut backup = Command::new(exe);
            backup.args(["backup", "--quiet"]).arg(&tree);
            restic(&mut backup);
            let files = data::TREE_DIRS * data::TREE_SUBDIRS * data::TREE_FILES;
            one_shot(
                logged(&mut backup)?,
                format!("backed up {files} files into a new repository"),
                log,
            )
        }
        Workload::Hugo => {
            let site = data::site(&inputs.root)?;
            let child = logged(
                Command::new(exe)
                    .args(["--quiet", "--source"])
                    .arg(&site)
                    .arg("--destination")
                    .arg(work.join("public"))
                    .arg("--cacheDir")
                    .arg(work.join("cache")),
            )?;
            one_shot(
                child,
                format!("built a site of {} pages", data::SITE_PAGES),
                log,
            )
        }
        Workload::Esbuild => {
            let project = data::js(&inputs.root)?;
            let src = work.join("src");
            copy_dir(&project.join("src"), &src)?;
            let port = free_port()?;
            let child = logged(
                Command::new(exe)
                    .args(["src/index.js", "--bundle", "--format=esm", "--outdir=www"])
                    .arg(format!("--serve={}", loopback(port))),
            )?;
            let addr = addr(port);
            let mut edit = 0;
            server(child, port, log, move |rng| {
                // A module rewritten now and then, so that requests see rebuilt bundles.
                if rng.below(4) == 0 {
                    edit += 1;
                    let m = rng.below(data::JS_MODULES);
                    fs::write(src.join(format!("m{m}.js")), data::js_module(m, edit))?;
                }
                let (status, body) = http(addr, "GET", "/index.js", &[], b"")?;
                ok(status, &body, "run399")
            })
        }
        Workload::Compile => {
            let Some(version) = program.name.strip_prefix("compile-") else {
                bail!("{} names no Go version", program.name);
            };
            let mut cmd = go_command(version);
            cmd.args(["build", "-a", COMPILED_PACKAGE])
                .env("GOCACHE", work.join("gocache"))
                .env("GOFLAGS", "")
                // Killed whole at the end, compilers included.
                .process_group(0);
            let go = logged(&mut cmd)?;
            compile(go, log, version)
        }
    }
}

/// A server: waits until `port` accepts and the first request succeeds, then keeps `request`
/// running on a thread until the target is stopped.
fn server(
    mut child: Child,
    port: u16,
    log: PathBuf,
    request: impl FnMut(&mut Rng) -> Result<()> + Send + 'static,
) -> Result<Target> {
    let started = Instant::now();
    let mut request = request;
    let mut rng = Rng::new(u64::from(port));
    let mut last_error = String::new();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "it exited ({status}) before serving; its log {}:\n{}",
                log.display(),
                tail(&log)
            );
        }
        if TcpStream::connect_timeout(&addr(port), Duration::from_millis(200)).is_ok() {
            // Accepting is not serving yet (a store may still be electing its leader).
            match request(&mut rng) {
                Ok(()) => break,
                Err(err) => last_error = format!("{err:#}"),
            }
        }
        if started.elapsed() > READY_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "it did not serve on port {port} within {} s ({last_error}); its log {}:\n{}",
                READY_TIMEOUT.as_secs(),
                log.display(),
                tail(&log)
            );
        }
        // Between attempts to connect: the process gives no other sign that it is ready.
        thread::sleep(Duration::from_millis(20));
    }
    Ok(Target {
        pid: child.id(),
        child,
        group: false,
        driver: Some(Driver::spawn(rng, request)),
        what: String::new(),
        log,
    })
}

fn one_shot(child: Child, what: String, log: PathBuf) -> Result<Target> {
    Ok(Target {
        pid: child.id(),
        child,
        group: false,
        driver: None,
        what,
        log,
    })
}

/// Waits for `go build` to start the compiler on [`COMPILED_PACKAGE`] and returns it as the
/// target (the `go` command stays the process to stop).
fn compile(mut go: Child, log: PathBuf, version: &str) -> Result<Target> {
    let started = Instant::now();
    let wanted = format!("\0-p\0{COMPILED_PACKAGE}\0");
    loop {
        for pid in children(go.id()) {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let is_compile = cmdline
                .split(|&b| b == 0)
                .next()
                .is_some_and(|arg0| arg0.ends_with(b"/compile"));
            if is_compile && contains(&cmdline, wanted.as_bytes()) {
                return Ok(Target {
                    pid,
                    child: go,
                    group: true,
                    driver: None,
                    what: format!("go{version} compiled {COMPILED_PACKAGE} and its dependencies"),
                    log,
                });
            }
        }
        if let Some(status) = go.try_wait()? {
            bail!(
                "`go build` exited ({status}) before compiling {COMPILED_PACKAGE}; its log {}:\n{}",
                log.display(),
                tail(&log)
            );
        }
        if started.elapsed() > COMPILE_TIMEOUT {
            kill_group(go.id());
            let _ = go.wait();
            bail!(
                "`go build` did not compile {COMPILED_PACKAGE} within {} s",
                COMPILE_TIMEOUT.as_secs()
            );
        }
        // The compiler lives for seconds; a few milliseconds between looks catch it early.
        thread::sleep(Duration::from_millis(5));
    }
}

/// SIGKILL to the process group `pgid` (ours: started with `process_group(0)`); a group that
/// is already gone is no error.
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// The pids whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Waits for `child` to exit within `limit`.
fn wait_until(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if started.elapsed() > limit {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A server's client loop on a thread of its own.
struct Driver {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(u64, u64, String)>,
}

impl Driver {
    fn spawn(
        mut rng: Rng,
        mut request: impl FnMut(&mut Rng) -> Result<()> + Send + 'static,
    ) -> Driver {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let (mut done, mut failed, mut first_error) = (1u64, 0u64, String::new());
            while !flag.load(Ordering::Relaxed) {
                match request(&mut rng) {
                    Ok(()) => done += 1,
                    Err(err) => {
                        failed += 1;
                        if first_error.is_empty() {
                            first_error = format!("{err:#}");
                        }
                    }
                }
            }
            (done, failed, first_error)
        });
        Driver { stop, thread }
    }

    /// `Ok("N requests")` when at most 1 % failed.
    fn stop(self) -> std::result::Result<String, String> {
        self.stop.store(true, Ordering::Relaxed);
        let (done, failed, first_error) = self
            .thread
            .join()
            .map_err(|_| "the client loop panicked".to_owned())?;
        if failed * 100 > done {
            Err(format!(
                "{failed} of {} requests failed, the first: {first_error}",
                done + failed
            ))
        } else if failed > 0 {
            Ok(format!(
                "{done} requests ({failed} failed, the first: {first_error})"
            ))
        } else {
            Ok(format!("{done} requests"))
        }
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A port free on loopback now (the kernel picks it; the program binds it a moment later).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind(addr(0))?.local_addr()?.port())
}

/// One HTTP/1.1 request on a connection of its own: `(status, body with headers)`.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let status = response
        .split(|&b| b == b' ')
        .nth(1)
        .and_then(|code| std::str::from_utf8(code).ok()?.parse().ok())
        .ok_or_else(|| io::Error::other("no HTTP status line"))?;
    Ok((status, response))
}

/// A 2xx response holding `expect`.
fn ok(status: u16, body: &[u8], expect: &str) -> Result<()> {
    if !(200..300).contains(&status) {
        bail!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
    }
    if !expect.is_empty() && !contains(body, expect.as_bytes()) {
        bail!("HTTP {status} without {expect:?}");
    }
    Ok(())
}

/// Standard base64 with padding, as etcd's JSON gateway takes bytes.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
}

/// The last lines of a log, for error messages.
pub fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads_like_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"key/00042"), "a2V5LzAwMDQy");
    }

    #[test]
    fn http_reads_a_loopback_server() {
        let listener = TcpListener::bind(addr(0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let n = conn.read(&mut request).unwrap();
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                .unwrap();
            String::from_utf8_lossy(&request[..n]).into_owned()
        });
        let (status, body) = http(addr(port), "PROPFIND", "/d00/", &[("Depth", "1")], b"").unwrap();
        assert_eq!(status, 200);
        assert!(ok(status, &body, "hello").is_ok());
        assert!(ok(status, &body, "bye").is_err());
        assert!(ok(404, &body, "").is_err());
        let request = server.join().unwrap();
        assert!(
            request.starts_with("PROPFIND /d00/ HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nDepth: 1\r\n"), "{request}");
    }
}
