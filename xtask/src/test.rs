//! `cargo xtask test`: lints, unit tests and (as root) integration tests and the quick subset
//! of the real-world corpus, failing fast.

use std::{process::Command, time::Instant};

use anyhow::{Result, bail};

use crate::{cargo, cargo_on, go, nightly, setup};

#[derive(clap::Args)]
pub struct Args {
    /// Stop after the unit tests (no root needed).
    #[arg(long)]
    unit: bool,
    /// Skip rustfmt and clippy.
    #[arg(long)]
    skip_lint: bool,
    /// Test-name filter passed to the integration tests (after `--`).
    #[arg(last = true)]
    filter: Vec<String>,
}

pub fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let result = stages(args);
    let verdict = if result.is_ok() { "passed" } else { "FAILED" };
    println!("test: {verdict} in {}", crate::human(started.elapsed()));
    result
}

fn stages(args: &Args) -> Result<()> {
    if args.unit && !args.filter.is_empty() {
        bail!("a test filter applies to the integration tests only: drop `--unit`");
    }
    if !args.unit && !crate::is_root() {
        bail!(
            "`cargo xtask test` must run as root for the integration tier (or use `--unit` for lints and unit tests only)"
        );
    }
    setup::ensure()?;

    let mut stages: Vec<(&str, Command)> = Vec::new();
    if !args.skip_lint {
        let mut fmt = cargo();
        fmt.args(["fmt", "--all", "--", "--check"]);
        stages.push(("rustfmt", fmt));

        let mut clippy = cargo();
        clippy.args([
            "clippy",
            "--workspace",
            "--exclude",
            "mapleak-ebpf",
            "--all-targets",
        ]);
        clippy.args(["--", "-D", "warnings"]);
        stages.push(("clippy (user space)", clippy));

        // The kernel crate is linted for its real target with the eBPF nightly.
        let mut clippy_ebpf = cargo_on(nightly());
        clippy_ebpf.args([
            "clippy",
            "-p",
            "mapleak-ebpf",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--",
            "-D",
            "warnings",
        ]);
        stages.push(("clippy (eBPF)", clippy_ebpf));
    }

    let mut unit = cargo();
    unit.args([
        "test",
        "--workspace",
        "--exclude",
        "mapleak-tests",
        "--exclude",
        "mapleak-ebpf",
    ]);
    stages.push(("unit tests", unit));

    if !args.unit {
        let mut build = cargo();
        build.args(["build", "--release", "-p", "mapleak"]);
        stages.push(("build mapleak (release)", build));

        let mut integration = cargo();
        integration
            .args([
                "test",
                "--release",
                "-p",
                "mapleak-tests",
                "--",
                "--test-threads=1",
            ])
            .args(&args.filter)
            .env(
                "MAPLEAK_BIN",
                crate::target_dir().join("release").join("mapleak"),
            )
            .env("MAPLEAK_GO_CACHE", go::go_root());
        go::go_env(&mut integration);
        stages.push(("integration tests (root)", integration));

        // Real programs from the package registries, judged as a user would judge what
        // mapleak says about them; skipped when a filter picks some tests.
        if args.filter.is_empty() {
            let mut realworld = Command::new(std::env::current_exe()?);
            realworld.args(["realworld", "--fast"]);
            stages.push(("real programs (realworld --fast)", realworld));
        }
    }

    let total = stages.len();
    for (i, (name, mut cmd)) in stages.into_iter().enumerate() {
        println!("\n==> [{}/{total}] {name}: {}", i + 1, crate::show(&cmd));
        let started = Instant::now();
        crate::run(&mut cmd)?;
        println!("==> {name}: ok ({})", crate::human(started.elapsed()));
    }
    Ok(())
}
