//! `cargo xtask bench`: what tracing costs the target, and how fast the aggregator is.
//!
//! 1. tests/fixtures/bench (a map-insert-heavy Go loop) runs alternately untraced and traced by
//!    `mapleak trace`; the medians of its ns/op are compared. Alternating spreads drift (other
//!    load, thermal, page cache) evenly over both sides. Both wall-clock and CPU ns/op are
//!    reported: on a shared machine the CPU figure is the steadier one. mapleak's per-probe hit
//!    counts show that the probes fire per growth, not per insert.
//! 2. `cargo bench -p mapleak --bench aggregator` measures events/s on synthetic events.

use std::{
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Child, ChildStdout, Command, Stdio},
    thread,
};

use anyhow::{Context as _, Result, bail};

use crate::{cargo, go, setup, target_dir, workspace_root};

/// The Go that builds the workload.
const GO_VERSION: &str = "1.21.13";
/// What mapleak prints to stderr once its probes are attached.
const ATTACHED: &str = "mapleak: tracing pid";

#[derive(clap::Args)]
pub struct Args {
    /// Untraced/traced pairs to run; the report gives the median of each side.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
}

/// One run of the workload.
struct Run {
    /// Wall-clock and CPU (user + sys, all threads) ns per insert.
    wall: f64,
    cpu: f64,
    inserts: u64,
    /// `(symbol, hits)` from mapleak's JSON summary (empty for untraced runs): shows that the
    /// probes fire per growth, not per insert.
    hits: Vec<(String, u64)>,
}

pub fn run(args: &Args) -> Result<()> {
    if !crate::is_root() {
        bail!("`cargo xtask bench` must run as root, because its traced runs attach uprobes");
    }
    setup::ensure()?;
    crate::run(cargo().args(["build", "--release", "-p", "mapleak"]))?;
    let dir = target_dir().join("bench");
    let workload = dir.join("bench");
    crate::run(
        go::go(GO_VERSION)
            .current_dir(workspace_root().join("tests/fixtures/bench"))
            .args(["build", "-o"])
            .arg(&workload)
            .arg("."),
    )?;
    let mapleak = target_dir().join("release").join("mapleak");

    let mut report = Report {
        runs: args.runs,
        ..Report::default()
    };
    for i in 0..args.runs {
        let u = run_workload(&workload, None)?;
        let trace = dir.join(format!("trace-{i}.jsonl"));
        let t = run_workload(&workload, Some((&mapleak, &trace)))?;
        println!(
            "bench: run {}/{}: untraced {:.2} ns/op ({:.2} CPU), traced {:.2} ns/op ({:.2} CPU); \
             {} inserts, probe hits: {}",
            i + 1,
            args.runs,
            u.wall,
            u.cpu,
            t.wall,
            t.cpu,
            t.inserts,
            show_hits(&t.hits)
        );
        report.untraced.push(&u);
        report.traced.push(&t);
        report.inserts = t.inserts;
        report.hits.push(t.hits);
    }

    println!("\n==> aggregator: cargo bench -p mapleak --bench aggregator");
    let out = cargo()
        .args(["bench", "-p", "mapleak", "--bench", "aggregator"])
        .stderr(Stdio::inherit())
        .output()
        .context("could not start `cargo bench`")?;
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    if !out.status.success() {
        bail!(
            "`cargo bench -p mapleak --bench aggregator` failed ({})",
            out.status
        );
    }
    report.aggregator = parse_events_per_sec(&text);
    if report.aggregator.is_empty() {
        bail!("the aggregator benchmark printed no `million events/s` line");
    }
    report.inspect = inspect_timing(&mapleak, &dir)?;
    report.machine = machine();
    println!("\n{}", report.table());
    Ok(())
}

/// Median wall time of `mapleak inspect` on the largest Go program at hand — the newest Go
/// toolchain's own compiler — stripped, as a distribution ships it: `(MB, ms)`.
fn inspect_timing(mapleak: &Path, dir: &Path) -> Result<(f64, f64)> {
    let newest = go::GO_VERSIONS.last().expect("at least one Go version");
    let tooldir = crate::output(go::go(newest).args(["env", "GOTOOLDIR"]))
        .context("`go env GOTOOLDIR` failed")?;
    let stripped = dir.join("compile-stripped");
    crate::run(
        Command::new("strip")
            .arg("-o")
            .arg(&stripped)
            .arg(Path::new(tooldir.trim()).join("compile")),
    )?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = std::time::Instant::now();
        crate::run(
            Command::new(mapleak)
                .arg("inspect")
                .arg(&stripped)
                .stdout(Stdio::null()),
        )?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let mb = std::fs::metadata(&stripped)?.len() as f64 / 1e6;
    let ms = median(&mut times);
    println!("bench: inspect of a stripped {mb:.0} MB Go program: {ms:.1} ms (median of 5)");
    Ok((mb, ms))
}

/// Starts the workload, attaches mapleak if `tracer` is given (binary, report file), starts the
/// loop, and returns the workload's ns/op.
fn run_workload(workload: &Path, tracer: Option<(&Path, &Path)>) -> Result<Run> {
    let mut child = Command::new(workload)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {}", workload.display()))?;
    let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
    let mut mapleak = None;
    let measured = (|| {
        let line = read_line(&mut stdout)?;
        let pid = line
            .strip_prefix("ready ")
            .with_context(|| format!("the workload printed {line:?}, not `ready PID`"))?;
        if let Some((bin, trace)) = tracer {
            mapleak = Some(attach(bin, pid, trace)?);
        }
        start_and_measure(&mut child, &mut stdout)
    })();
    if measured.is_err() {
        // The workload may still wait for its start line, and mapleak for the workload.
        let _ = child.kill();
        if let Some(mapleak) = &mut mapleak {
            let _ = mapleak.kill();
        }
    }
    let status = child.wait()?;
    // mapleak stops by itself once the target has exited.
    let traced = mapleak.map(|mut m| m.wait()).transpose()?;
    let (wall, cpu, inserts) = measured?;
    if !status.success() {
        bail!("{} failed ({status})", workload.display());
    }
    let hits = match (traced, tracer) {
        (Some(status), _) if !status.success() => bail!("mapleak failed ({status})"),
        (Some(_), Some((_, trace))) => summary_hits(trace)?,
        _ => Vec::new(),
    };
    Ok(Run {
        wall,
        cpu,
        inserts,
        hits,
    })
}

/// Sends the start line and reads the workload's `ns/op X cpu-ns/op Y inserts N`.
fn start_and_measure(
    child: &mut Child,
    stdout: &mut BufReader<ChildStdout>,
) -> Result<(f64, f64, u64)> {
    child.stdin.take().context("no stdin")?.write_all(b"go\n")?;
    let line = read_line(stdout)?;
    match line.split_whitespace().collect::<Vec<_>>()[..] {
        ["ns/op", wall, "cpu-ns/op", cpu, "inserts", n] => {
            Ok((wall.parse()?, cpu.parse()?, n.parse()?))
        }
        _ => bail!("the workload printed {line:?}, not `ns/op X cpu-ns/op Y inserts N`"),
    }
}

/// Starts `mapleak trace` on `pid` and returns once its probes are attached (a blocking read of
/// its stderr: no sleeps, no races).
fn attach(mapleak: &Path, pid: &str, output: &Path) -> Result<Child> {
    let mut child = Command::new(mapleak)
        .args(["trace", "--pid", pid, "--format", "json", "--output"])
        .arg(output)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {}", mapleak.display()))?;
    let mut stderr = BufReader::new(child.stderr.take().context("no stderr")?);
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line)? == 0 {
            let status = child.wait()?;
            bail!("mapleak exited ({status}) before attaching:\n{seen}");
        }
        seen.push_str(&line);
        if line.contains(ATTACHED) {
            break;
        }
    }
    // Keep draining stderr so that mapleak never blocks on a full pipe.
    thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    Ok(child)
}

fn read_line(stdout: &mut BufReader<ChildStdout>) -> Result<String> {
    let mut line = String::new();
    if stdout.read_line(&mut line)? == 0 {
        bail!("the workload closed its stdout early");
    }
    Ok(line.trim_end().to_owned())
}

/// `(symbol, hits)` in the summary (the JSON Lines report's last line), summed per symbol: a
/// function can carry several probes (e.g. one per return instruction).
fn summary_hits(output: &Path) -> Result<Vec<(String, u64)>> {
    let text =
        fs::read_to_string(output).with_context(|| format!("reading {}", output.display()))?;
    let last = text.lines().last().context("mapleak wrote no report")?;
    let summary: serde_json::Value = serde_json::from_str(last)?;
    let probes = summary["probes"]
        .as_array()
        .context("the summary has no `probes`")?;
    let mut hits: Vec<(String, u64)> = Vec::new();
    for probe in probes {
        let (Some(symbol), Some(n)) = (probe["symbol"].as_str(), probe["hits"].as_u64()) else {
            bail!("a probe in the summary lacks `symbol` or `hits`: {probe}");
        };
        match hits.iter_mut().find(|(s, _)| s == symbol) {
            Some((_, total)) => *total += n,
            None => hits.push((symbol.to_owned(), n)),
        }
    }
    Ok(hits)
}

/// `(shape, events/s)` from the benchmark's `aggregator (SHAPE): N events in T s = X million events/s`.
fn parse_events_per_sec(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.ends_with("million events/s"))
        .filter_map(|l| {
            let shape = l.split_once('(')?.1.split_once(')')?.0;
            let millions = l.rsplit('=').next()?.split_whitespace().next()?;
            Some((shape.to_owned(), millions.parse::<f64>().ok()? * 1e6))
        })
        .collect()
}

/// The median; sorts `xs`.
fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[mid]
    } else {
        (xs[mid - 1] + xs[mid]) / 2.0
    }
}

/// Per probe, the median of its hits over `runs` (every traced run attaches the same probes).
fn median_hits(runs: &[Vec<(String, u64)>]) -> Vec<(String, u64)> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    first
        .iter()
        .map(|(symbol, _)| {
            let mut hits: Vec<u64> = runs
                .iter()
                .filter_map(|run| run.iter().find(|(s, _)| s == symbol).map(|(_, h)| *h))
                .collect();
            (symbol.clone(), median_u64(&mut hits))
        })
        .collect()
}

/// `512 runtime.hashGrow, 10 runtime.stopTheWorldWithSema`.
fn show_hits(hits: &[(String, u64)]) -> String {
    let shown: Vec<String> = hits.iter().map(|(s, h)| format!("{h} {s}")).collect();
    shown.join(", ")
}

fn median_u64(xs: &mut [u64]) -> u64 {
    xs.sort_unstable();
    xs[xs.len() / 2]
}

/// `2 × AMD EPYC, Linux 6.x` for the report.
fn machine() -> String {
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let kernel = crate::output(Command::new("uname").arg("-r")).unwrap_or_default();
    format!("{cpus} × {model}, Linux {}", kernel.trim())
}

/// ns/op of one side (untraced or traced), one entry per run.
#[derive(Default)]
struct Samples {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

impl Samples {
    fn push(&mut self, run: &Run) {
        self.wall.push(run.wall);
        self.cpu.push(run.cpu);
    }
}

#[derive(Default)]
struct Report {
    runs: u32,
    inserts: u64,
    untraced: Samples,
    traced: Samples,
    /// Per traced run.
    hits: Vec<Vec<(String, u64)>>,
    /// `(shape, events/s)`.
    aggregator: Vec<(String, f64)>,
    /// `(binary MB, median ms)` of `mapleak inspect` on a stripped Go program.
    inspect: (f64, f64),
    machine: String,
}

impl Report {
    /// The results as markdown, ready for the README.
    fn table(&mut self) -> String {
        let runs = self.runs;
        let wall = overhead_row("wall clock", &mut self.untraced.wall, &mut self.traced.wall);
        let cpu = overhead_row(
            "CPU time (user + sys, all threads)",
            &mut self.untraced.cpu,
            &mut self.traced.cpu,
        );
        let aggregator: String = self
            .aggregator
            .iter()
            .map(|(shape, rate)| format!("| {shape} | {:.2} million |\n", rate / 1e6))
            .collect();
        format!(
            "| tests/fixtures/bench (Go {GO_VERSION}, {:.1} M map inserts per run), median of {runs} alternating runs | untraced ns/op (range) | traced ns/op (range) | overhead |\n\
             |---|---|---|---|\n\
             {wall}{cpu}\
             \n\
             Probe hits per traced run (median): {}.\n\
             \n\
             | aggregator: one thread, 10 M synthetic growth events over 100 000 map addresses | events/s |\n\
             |---|---|\n\
             {aggregator}\
             \n\
             `mapleak inspect` of a stripped {:.0} MB Go program (the Go compiler): {:.1} ms.\n\
             \n\
             Machine: {}. Command: `cargo xtask bench --runs {runs}` (as root).",
            self.inserts as f64 / 1e6,
            show_hits(&median_hits(&self.hits)),
            self.inspect.0,
            self.inspect.1,
            self.machine,
        )
    }
}

/// `| name | median (min–max) | median (min–max) | overhead of the medians |`; the range shows
/// the run-to-run noise that the overhead has to be read against.
fn overhead_row(name: &str, untraced: &mut [f64], traced: &mut [f64]) -> String {
    let (u, t) = (median(untraced), median(traced));
    let cell = |xs: &[f64], m: f64| format!("{m:.2} ({:.2}–{:.2})", xs[0], xs[xs.len() - 1]);
    format!(
        "| {name} | {} | {} | {:+.1} % |\n",
        cell(untraced, u),
        cell(traced, t),
        (t / u - 1.0) * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median_u64(&mut [5, 1, 3]), 3);
        let run = |n| vec![("runtime.hashGrow".to_owned(), 512), ("gc".to_owned(), n)];
        let hits = median_hits(&[run(9), run(12), run(10)]);
        assert_eq!(show_hits(&hits), "512 runtime.hashGrow, 10 gc");
    }

    #[test]
    fn reads_the_aggregator_line() {
        let text = "aggregator (bursty): 1 maps seen at 1 addresses, 0 evicted\n\
                    aggregator (bursty): 10 events in 0.5 s = 12.50 million events/s\n";
        assert_eq!(
            parse_events_per_sec(text),
            vec![("bursty".to_owned(), 12.5e6)]
        );
    }

    #[test]
    fn the_table_compares_medians() {
        let row = overhead_row("wall", &mut [12.0, 10.0, 11.0], &mut [11.0, 11.22, 13.0]);
        assert_eq!(
            row,
            "| wall | 11.00 (10.00–12.00) | 11.22 (11.00–13.00) | +2.0 % |\n"
        );
    }

    #[test]
    fn sums_hits_per_symbol_from_the_summary() {
        let path = std::env::temp_dir().join(format!("xtask-bench-{}.jsonl", std::process::id()));
        let summary = r#"{"type":"summary","probes":[{"symbol":"a","hits":5},{"symbol":"b","hits":1},{"symbol":"b","hits":2}]}"#;
        fs::write(&path, format!("{{\"type\":\"interval\"}}\n{summary}\n")).unwrap();
        let hits = summary_hits(&path);
        let _ = fs::remove_file(&path);
        assert_eq!(
            hits.unwrap(),
            vec![("a".to_owned(), 5), ("b".to_owned(), 3)]
        );
    }

    #[test]
    fn bench_go_is_one_setup_installs() {
        assert!(go::GO_VERSIONS.contains(&GO_VERSION));
    }
}
