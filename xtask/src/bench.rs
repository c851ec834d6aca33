//! `cargo xtask bench`: what tracing costs the target, and how fast the aggregator is.
//!
//! 1. tests/fixtures/bench (a map-insert-heavy Go loop) runs alternately untraced and traced by
//!    `mapleak trace`; the medians of its ns/op are compared. Alternating spreads drift (other
//!    load, thermal, page cache) evenly over both sides.
//! 2. `cargo bench -p mapleak --bench aggregator` measures events/s on synthetic events.

use std::{
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
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
    ns_per_op: f64,
    /// Summed probe hits from mapleak's JSON summary (traced runs only).
    hits: Option<u64>,
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

    let mut untraced = Vec::new();
    let mut traced = Vec::new();
    let mut hits = Vec::new();
    for i in 0..args.runs {
        let u = run_workload(&workload, None)?;
        let t = run_workload(
            &workload,
            Some((&mapleak, &dir.join(format!("trace-{i}.jsonl")))),
        )?;
        let h = t.hits.unwrap_or_default();
        println!(
            "bench: run {}/{}: untraced {:.2} ns/op, traced {:.2} ns/op ({h} probe hits)",
            i + 1,
            args.runs,
            u.ns_per_op,
            t.ns_per_op
        );
        untraced.push(u.ns_per_op);
        traced.push(t.ns_per_op);
        hits.push(h);
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
    let events_per_sec = parse_events_per_sec(&text)
        .context("the aggregator benchmark printed no `million events/s` line")?;

    let (u, t) = (median(&mut untraced), median(&mut traced));
    let hits = median_u64(&mut hits);
    println!(
        "\n{}",
        table(args.runs, u, t, hits, events_per_sec, &machine())
    );
    Ok(())
}

/// Starts the workload, optionally attaches mapleak, lets it run, and returns its ns/op.
fn run_workload(workload: &Path, tracer: Option<(&Path, &PathBuf)>) -> Result<Run> {
    let mut child = Command::new(workload)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {}", workload.display()))?;
    let result = drive(&mut child, tracer);
    // On an error the workload may still wait for its start line.
    if result.is_err() {
        let _ = child.kill();
    }
    let status = child.wait()?;
    let run = result?;
    if !status.success() {
        bail!("{} failed ({status})", workload.display());
    }
    Ok(run)
}

fn drive(child: &mut Child, tracer: Option<(&Path, &PathBuf)>) -> Result<Run> {
    let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
    let pid = read_line(&mut stdout)?
        .strip_prefix("ready ")
        .map(|pid| pid.trim().to_owned())
        .context("the workload did not print `ready PID`")?;
    let mut trace = match tracer {
        Some((mapleak, output)) => Some((attach(mapleak, &pid, output)?, output)),
        None => None,
    };

    let ns_per_op = start_and_measure(child, &mut stdout);
    let Some((mut mapleak, output)) = trace.take() else {
        return Ok(Run {
            ns_per_op: ns_per_op?,
            hits: None,
        });
    };
    if ns_per_op.is_err() {
        let _ = mapleak.kill();
    }
    // mapleak stops by itself when the target exits.
    let status = mapleak.wait()?;
    let ns_per_op = ns_per_op?;
    if !status.success() {
        bail!("mapleak failed ({status})");
    }
    Ok(Run {
        ns_per_op,
        hits: Some(summary_hits(output)?),
    })
}

/// Sends the start line and reads the workload's `ns/op X inserts N`.
fn start_and_measure(child: &mut Child, stdout: &mut BufReader<ChildStdout>) -> Result<f64> {
    child.stdin.take().context("no stdin")?.write_all(b"go\n")?;
    let line = read_line(stdout)?;
    line.strip_prefix("ns/op ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .with_context(|| format!("the workload printed {line:?}, not `ns/op X`"))
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

/// Total probe hits in the summary (the JSON Lines report's last line).
fn summary_hits(output: &Path) -> Result<u64> {
    let text =
        fs::read_to_string(output).with_context(|| format!("reading {}", output.display()))?;
    let last = text.lines().last().context("mapleak wrote no report")?;
    let summary: serde_json::Value = serde_json::from_str(last)?;
    let probes = summary["probes"]
        .as_array()
        .context("the summary has no `probes`")?;
    Ok(probes.iter().filter_map(|p| p["hits"].as_u64()).sum())
}

fn parse_events_per_sec(text: &str) -> Option<f64> {
    let line = text.lines().rfind(|l| l.ends_with("million events/s"))?;
    let millions = line.rsplit('=').next()?.split_whitespace().next()?;
    Some(millions.parse::<f64>().ok()? * 1e6)
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[mid]
    } else {
        (xs[mid - 1] + xs[mid]) / 2.0
    }
}

fn median_u64(xs: &mut [u64]) -> u64 {
    xs.sort_unstable();
    xs[xs.len() / 2]
}

/// `2 × AMD EPYC, kernel 6.x` for the report.
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

/// The results as a markdown table, ready for the README.
fn table(
    runs: u32,
    untraced: f64,
    traced: f64,
    hits: u64,
    events_per_sec: f64,
    machine: &str,
) -> String {
    let overhead = (traced / untraced - 1.0) * 100.0;
    format!(
        "| workload | untraced ns/op | traced ns/op | overhead | probe hits per run |\n\
         |---|---|---|---|---|\n\
         | tests/fixtures/bench (Go {GO_VERSION}), median of {runs} alternating runs | {untraced:.2} | {traced:.2} | {overhead:+.1} % | {hits} |\n\
         \n\
         | aggregator (one thread, synthetic classic-map growth) | events/s |\n\
         |---|---|\n\
         | `cargo bench -p mapleak --bench aggregator` | {:.1} million |\n\
         \n\
         Machine: {machine}. Command: `cargo xtask bench --runs {runs}` (as root).",
        events_per_sec / 1e6
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
    }

    #[test]
    fn reads_the_aggregator_line() {
        let text =
            "aggregator: 1 maps seen\naggregator: 10 events in 0.5 s = 12.34 million events/s\n";
        assert_eq!(parse_events_per_sec(text), Some(12.34e6));
    }

    #[test]
    fn bench_go_is_one_setup_installs() {
        assert!(go::GO_VERSIONS.contains(&GO_VERSION));
    }
}
