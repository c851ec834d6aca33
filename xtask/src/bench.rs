//! `cargo xtask bench`: what tracing costs the target, how fast the aggregator is, and how fast
//! `mapleak inspect` is.
//!
//! 1. tests/fixtures/bench runs five map workloads (pre-sized maps, churn of small unsized maps,
//!    a few large maps, churn of maps on the stack, churn on 8 goroutines) untraced, under `mapleak trace` (overhead governor on), under
//!    `mapleak trace --exact`, and under bpftrace with uprobes on the same growth probes (see
//!    [`bpftrace`]). Each round runs every workload once per tracer, in an order that rotates
//!    from round to round, so that drift (other load, thermal, page cache) spreads evenly; each
//!    traced run is divided by the same round's untraced run, and the report gives the median of
//!    those ratios. Probe hit counts show how often each tracer's growth probes fired.
//!    Then the budget sweep ([`sweep`]): the default mode under budgets of 0.1, 1 and 10 %.
//! 2. `cargo bench -p mapleak --bench aggregator` measures events/s on synthetic events.
//! 3. `mapleak inspect` of the largest Go program at hand.

mod bpftrace;
mod report;
mod sweep;
mod workload;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{cargo, go, setup, target_dir, workspace_root};
use report::{Report, median};
use workload::{Tools, Tracer, Workload};

/// The Go that builds the workload (classic maps: one growth probe, `runtime.hashGrow`).
const GO_VERSION: &str = "1.21.13";

#[derive(clap::Args)]
pub struct Args {
    /// Rounds to run; each runs every workload untraced and under each tracer. The report gives
    /// the median over rounds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Run only this workload (repeatable; default: all of them).
    #[arg(long, value_enum)]
    workload: Vec<Workload>,
    /// Skip the budget sweep (mapleak under `--max-overhead` 0.1, 1 and 10 %).
    #[arg(long)]
    no_sweep: bool,
}

pub fn run(args: &Args) -> Result<()> {
    if !crate::is_root() {
        bail!("`cargo xtask bench` must run as root, because its traced runs attach uprobes");
    }
    setup::ensure()?;
    let dir = target_dir().join("bench");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let bpftrace_version = bpftrace::ensure_installed(&dir.join("apt-bpftrace.log"))?;
    crate::run(cargo().args(["build", "--release", "-p", "mapleak"]))?;
    let workload_bin = dir.join("bench");
    crate::run(
        go::go(GO_VERSION)
            .current_dir(workspace_root().join("tests/fixtures/bench"))
            .args(["build", "-o"])
            .arg(&workload_bin)
            .arg("."),
    )?;
    let mapleak = target_dir().join("release").join("mapleak");

    let inspection = inspect_json(&mapleak, &workload_bin)?;
    let script = bpftrace::Script::new(&workload_bin, &inspection)?;
    let script_path = dir.join("growth.bt");
    fs::write(&script_path, &script.text)
        .with_context(|| format!("writing {}", script_path.display()))?;
    println!(
        "bench: bpftrace script {} ({}):\n{}",
        script_path.display(),
        bpftrace_version,
        script.text
    );
    let tools = Tools {
        workload: workload_bin,
        mapleak: mapleak.clone(),
        bpftrace_script: script_path,
        bpftrace_probes: script.probes.len(),
        dir: dir.clone(),
    };

    let workloads: Vec<Workload> = if args.workload.is_empty() {
        Workload::ALL.to_vec()
    } else {
        Workload::ALL
            .iter()
            .copied()
            .filter(|w| args.workload.contains(w))
            .collect()
    };
    let mut report = Report::new(args.runs, GO_VERSION, &workloads);
    report.bpftrace = format!("{bpftrace_version}: {}", script.describe());
    for round in 0..args.runs {
        for &w in &workloads {
            let mut line = format!("bench: round {}/{} {:<8}", round + 1, args.runs, w.name());
            for tracer in Tracer::rotated(round as usize) {
                let run = workload::run(&tools, w, tracer, round)?;
                line.push_str(&format!(" | {} {:.2} ns/op", tracer.short(), run.wall));
                if let Some(hits) = run.growth_hits {
                    line.push_str(&format!(" ({hits} grow hits)"));
                }
                report.push(w, tracer, run);
            }
            println!("{line}");
        }
    }
    report.check_hits()?;
    let sweep = if args.no_sweep {
        None
    } else {
        Some(sweep::run(&tools, &workloads, args.runs)?)
    };

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
    if let Some(sweep) = sweep.filter(|s| !s.is_empty()) {
        println!("\n{}", sweep.table());
    }
    Ok(())
}

/// `mapleak inspect BINARY --format json`: the probe plan the bpftrace script copies.
fn inspect_json(mapleak: &Path, binary: &Path) -> Result<serde_json::Value> {
    let out = Command::new(mapleak)
        .arg("inspect")
        .arg(binary)
        .args(["--format", "json"])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start {}", mapleak.display()))?;
    if !out.status.success() {
        bail!(
            "`mapleak inspect {}` failed ({})",
            binary.display(),
            out.status
        );
    }
    serde_json::from_slice(&out.stdout).context("`mapleak inspect --format json` printed no JSON")
}

/// Median wall time of `mapleak inspect` on the largest Go program at hand — the newest Go
/// toolchain's own compiler — stripped, as a distribution ships it: `(MB, ms)`.
fn inspect_timing(mapleak: &Path, dir: &Path) -> Result<(f64, f64)> {
    let newest = go::newest();
    let tooldir = crate::output(go::go(newest).args(["env", "GOTOOLDIR"]))
        .context("`go env GOTOOLDIR` failed")?;
    let stripped: PathBuf = dir.join("compile-stripped");
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
    let mb = fs::metadata(&stripped)?.len() as f64 / 1e6;
    let ms = median(&mut times);
    println!("bench: inspect of a stripped {mb:.0} MB Go program: {ms:.1} ms (median of 5)");
    Ok((mb, ms))
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

/// `2 × AMD EPYC, Linux 6.x` for the report.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn bench_go_is_one_setup_installs() {
        assert!(go::pypi_versions().contains(&GO_VERSION));
    }
}
