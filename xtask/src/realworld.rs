//! `cargo xtask realworld`: mapleak on real Go programs nobody here wrote (issue 12's corpus).
//!
//! Each program of the [`corpus`] is installed from a package registry (idempotently), started
//! in a work directory of its own, driven by a real workload on loopback, and traced by the
//! release mapleak (`trace --pid P --format json`, default governor) while the workload runs.
//! Its summary is then [`judge`]d: attached and exited 0, nothing lost, no impossible number in
//! a finding, every finding at a line of the program's own code, at most 12 findings. The run
//! prints every program's findings and checks, then a table, and fails if any check failed.

mod binary;
mod corpus;
mod data;
mod drive;
mod judge;
mod trace;

use std::{fs, path::Path, time::Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use crate::{cargo, go, setup, target_dir};
use corpus::{Program, Workload};
use judge::{Context, Judgement};

#[derive(clap::Args)]
pub struct Args {
    /// Only the quick subset (a go1.19 stripped Debian server and a go1.27 cgo Swiss-map site
    /// generator from PyPI; under two minutes once installed), for `cargo xtask test`.
    #[arg(long)]
    fast: bool,
    /// Only these programs (repeatable; see --list).
    #[arg(long = "program", value_name = "NAME")]
    programs: Vec<String>,
    /// List the corpus and exit.
    #[arg(long)]
    list: bool,
}

impl Workload {
    /// For the report.
    fn about(self) -> &'static str {
        match self {
            Workload::NodeExporter => "serves its metrics on loopback, scraped in a loop",
            Workload::Caddy => {
                "`file-server --browse` of a generated tree of 60 000 files; listings and files fetched"
            }
            Workload::Rclone => {
                "`serve webdav --read-only` of the generated tree; PROPFIND listings and files fetched"
            }
            Workload::Etcd => {
                "a one-member store; keys put (80 %), ranged and deleted through its v3 JSON gateway"
            }
            Workload::Restic => {
                "the first backup of the generated tree into a new local repository"
            }
            Workload::Hugo => "builds a generated site of 10 000 pages with tags and categories",
            Workload::Esbuild => {
                "`--serve` of a generated project of 400 modules; the bundle fetched while modules change"
            }
            Workload::Compile => {
                "the compiler compiling go/types inside `go build -a go/types` with an empty build cache"
            }
        }
    }
}

/// One program's outcome, for the table.
struct Row {
    name: String,
    origin: String,
    version: String,
    about: &'static str,
    go_version: String,
    map_impl: String,
    stripped: Option<bool>,
    cgo: Option<bool>,
    /// xtask's own reading of the process's memory while it was traced.
    memory: Option<trace::ProcMemory>,
    judgement: Judgement,
}

pub fn run(args: &Args) -> Result<std::process::ExitCode> {
    let all = corpus::corpus();
    if args.list {
        for p in &all {
            let fast = if p.fast { " (--fast)" } else { "" };
            println!(
                "{:<14} {}{fast}: {}",
                p.name,
                p.source.origin(),
                p.workload.about()
            );
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    for name in &args.programs {
        if !all.iter().any(|p| &p.name == name) {
            bail!("no program {name:?} in the corpus (see `cargo xtask realworld --list`)");
        }
    }
    let chosen: Vec<&Program> = all
        .iter()
        .filter(|p| !args.fast || p.fast)
        .filter(|p| args.programs.is_empty() || args.programs.contains(&p.name))
        .collect();
    if !crate::is_root() {
        bail!(
            "`cargo xtask realworld` must run as root: it installs packages and attaches uprobes"
        );
    }
    let started = Instant::now();
    setup::ensure()?;
    let dir = target_dir().join("realworld");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    corpus::install(&chosen, &go::cache_dir().join("logs"))?;
    crate::run(cargo().args(["build", "--release", "-p", "mapleak"]))?;
    let mapleak = target_dir().join("release").join("mapleak");
    let inputs = drive::Inputs {
        root: dir.join("data"),
    };

    let mut rows = Vec::new();
    for program in &chosen {
        println!(
            "\n==> {} ({} {}): {}",
            program.name,
            program.source.origin(),
            program.source.version(),
            program.workload.about()
        );
        let row = run_one(program, &mapleak, &inputs, &dir.join(&program.name));
        print_details(&row);
        rows.push(row);
    }

    println!("\n{}", table(&rows));
    let results = dir.join("results.json");
    fs::write(
        &results,
        serde_json::to_string_pretty(&results_json(&rows))?,
    )
    .with_context(|| format!("writing {}", results.display()))?;
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.judgement.passed())
        .map(|r| r.name.as_str())
        .collect();
    println!(
        "realworld: {} passed, {} failed in {} (reports and logs in {}; results in {})",
        rows.len() - failed.len(),
        failed.len(),
        crate::human(started.elapsed()),
        dir.display(),
        results.display()
    );
    Ok(if failed.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// Starts, drives, traces and judges one program; every failure ends in its row.
fn run_one(program: &Program, mapleak: &Path, inputs: &drive::Inputs, work: &Path) -> Row {
    let mut row = Row {
        name: program.name.clone(),
        origin: program.source.origin(),
        version: program.source.version(),
        about: program.workload.about(),
        go_version: "?".to_owned(),
        map_impl: "?".to_owned(),
        stripped: None,
        cgo: None,
        memory: None,
        judgement: judge::not_traced(String::new()),
    };
    let exe = match program.source.exe() {
        Ok(exe) => exe,
        Err(err) => {
            row.judgement = judge::not_traced(format!("{err:#}"));
            return row;
        }
    };
    let info = build_info(&exe);
    row.go_version = info.go_version.clone();
    row.cgo = info.cgo;
    row.stripped = binary::stripped(&exe);

    let prepared = fs::remove_dir_all(work)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        })
        .and_then(|()| fs::create_dir_all(work));
    if let Err(err) = prepared {
        row.judgement = judge::not_traced(format!("preparing {}: {err}", work.display()));
        return row;
    }
    let target = match drive::start(program, &exe, inputs, work) {
        Ok(target) => target,
        Err(err) => {
            row.judgement = judge::not_traced(format!("{err:#}"));
            return row;
        }
    };
    let duration = if target.one_shot() {
        drive::ONE_SHOT_LIMIT
    } else {
        drive::SERVER_TRACE
    };
    let sampler = trace::Sampler::watch(target.pid);
    let traced = trace::trace(mapleak, target.pid, duration, &work.join("trace.jsonl"));
    row.memory = sampler.stop();
    let workload = target.stop();
    let traced = match traced {
        Ok(traced) => traced,
        Err(err) => {
            row.judgement = judge::not_traced(format!("{err:#}"));
            return row;
        }
    };
    if let Some(s) = &traced.summary {
        row.go_version = s["go_version"].as_str().unwrap_or("?").to_owned();
        row.map_impl = s["map_impl"].as_str().unwrap_or("?").to_owned();
    }
    let stderr_tail = if traced.attached && traced.exit == Some(0) {
        String::new()
    } else {
        let lines: Vec<&str> = traced.stderr.lines().collect();
        lines[lines.len().saturating_sub(3)..].join(" | ")
    };
    let cx = Context {
        own_prefix: info.own_prefix(),
        committed: row.memory.map(|m| m.committed),
        resident: row.memory.map(|m| m.vm_hwm),
        exit: traced.exit,
        stderr: stderr_tail,
        workload,
    };
    row.judgement = judge::judge(traced.summary.as_ref(), &cx);
    row
}

/// `go version -m` by the newest toolchain (it reads every older binary's build info).
fn build_info(exe: &Path) -> binary::BuildInfo {
    let newest = go::newest();
    crate::output(go::go(newest).arg("version").arg("-m").arg(exe))
        .map(|text| binary::parse_build_info(&text))
        .unwrap_or_default()
}

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    }
}

fn print_details(row: &Row) {
    let j = &row.judgement;
    println!(
        "{} {}, {} maps, stripped {}, cgo {}: {} finding(s)",
        row.name,
        row.go_version,
        row.map_impl,
        yes_no(row.stripped),
        yes_no(row.cgo),
        j.findings.len()
    );
    if let Some(m) = row.memory {
        let b = |n: u64| judge::human_bytes(n as f64);
        println!(
            "  process (from /proc, for comparison): committed {}, VmPeak {}, VmHWM {}, last RssAnon {} + RssFile {}",
            b(m.committed),
            b(m.vm_peak),
            b(m.vm_hwm),
            b(m.rss_anon),
            b(m.rss_file)
        );
    }
    for f in &j.findings {
        let site = if f.site.is_empty() {
            "the whole process"
        } else {
            &f.site
        };
        println!("  - {} at {site} [{}]", f.kind, f.origin.label());
        println!("      {}", f.evidence);
        for p in &f.problems {
            println!("      ! {p}");
        }
    }
    for c in &j.checks {
        let mark = if c.passed { "ok  " } else { "FAIL" };
        println!("  [{mark}] {}: {}", c.name, c.detail);
    }
}

/// The closing table: one line per program, then one per finding.
fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| program | source | version | Go | maps | stripped | cgo | findings | checks |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let failed: Vec<&str> = r
            .judgement
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect();
        let verdict = if failed.is_empty() {
            "all passed".to_owned()
        } else {
            format!("FAILED: {}", failed.join(", "))
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.origin,
            r.version,
            r.go_version,
            r.map_impl,
            yes_no(r.stripped),
            yes_no(r.cgo),
            r.judgement.findings.len(),
            verdict
        ));
    }
    out.push_str("\n| program | finding | site | where | evidence |\n|---|---|---|---|---|\n");
    for r in rows {
        for f in &r.judgement.findings {
            let flag = if f.problems.is_empty() { "" } else { " ⚠" };
            out.push_str(&format!(
                "| {} | {}{flag} | {} | {} | {} |\n",
                r.name,
                f.kind,
                if f.site.is_empty() {
                    "(process)"
                } else {
                    &f.site
                },
                f.origin.label(),
                f.evidence
            ));
        }
    }
    out
}

fn results_json(rows: &[Row]) -> serde_json::Value {
    json!(
        rows.iter()
            .map(|r| json!({
                "program": r.name,
                "source": r.origin,
                "version": r.version,
                "workload": r.about,
                "go_version": r.go_version,
                "map_impl": r.map_impl,
                "stripped": r.stripped,
                "cgo": r.cgo,
                "process_memory": r.memory.map(|m| json!({
                    "committed": m.committed, "vm_peak": m.vm_peak, "vm_hwm": m.vm_hwm,
                    "rss_anon": m.rss_anon, "rss_file": m.rss_file,
                })),
                "passed": r.judgement.passed(),
                "checks": r.judgement.checks.iter().map(|c| json!({
                    "name": c.name, "passed": c.passed, "detail": c.detail,
                })).collect::<Vec<_>>(),
                "findings": r.judgement.findings.iter().map(|f| json!({
                    "kind": f.kind, "site": f.site, "origin": f.origin.label(),
                    "evidence": f.evidence, "problems": f.problems,
                })).collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_subset_is_small_and_spans_both_map_kinds() {
        let all = corpus::corpus();
        let fast: Vec<&Program> = all.iter().filter(|p| p.fast).collect();
        assert!((1..=2).contains(&fast.len()), "{}", fast.len());
        let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        // Every installed toolchain's compiler is in the corpus.
        for v in go::all_versions() {
            assert!(names.contains(&format!("compile-{v}").as_str()), "{v}");
        }
    }

    #[test]
    fn the_table_flags_failed_checks_and_findings() {
        let row = Row {
            name: "x".to_owned(),
            origin: "Debian's x".to_owned(),
            version: "1.0".to_owned(),
            about: "",
            go_version: "go1.19.8".to_owned(),
            map_impl: "classic".to_owned(),
            stripped: Some(true),
            cgo: None,
            memory: None,
            judgement: judge::not_traced("it did not start".to_owned()),
        };
        let text = table(&[row]);
        assert!(
            text.contains("| x | Debian's x | 1.0 | go1.19.8 | classic | yes | ? | 0 | FAILED: workload, attached |"),
            "{text}"
        );
    }
}
