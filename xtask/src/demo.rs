//! `cargo xtask demo`: trace a small leaky Go program (tests/fixtures/demo) for a few seconds.

use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result};

use crate::{cargo, go, setup, target_dir, workspace_root};

/// The Go that builds the demo.
const GO_VERSION: &str = "1.21.13";

pub fn run() -> Result<ExitCode> {
    setup::ensure()?;
    crate::run(cargo().args(["build", "--release", "-p", "mapleak"]))?;

    let demo = target_dir().join("demo").join("demo");
    crate::run(
        go::go(GO_VERSION)
            .current_dir(workspace_root().join("tests/fixtures/demo"))
            .args(["build", "-o"])
            .arg(&demo)
            .arg("."),
    )?;

    let mut child = Command::new(&demo)
        .spawn()
        .with_context(|| format!("could not start {}", demo.display()))?;
    let mut trace = Command::new(target_dir().join("release").join("mapleak"));
    // A 5 % budget: at the default 1 % a six-second trace of a program this busy attaches the
    // growth probes for a window or two and sees little of its later phases.
    trace.args([
        "trace",
        "--pid",
        &child.id().to_string(),
        "--duration",
        "6s",
        "--max-overhead",
        "5",
    ]);
    let status = trace.status();
    let _ = child.kill();
    let _ = child.wait();

    let status = status.with_context(|| format!("could not start `{}`", crate::show(&trace)))?;
    Ok(status
        .code()
        .and_then(|code| u8::try_from(code).ok())
        .map_or(ExitCode::FAILURE, ExitCode::from))
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_go_is_one_setup_installs() {
        assert!(crate::go::pypi_versions().contains(&super::GO_VERSION));
    }
}
