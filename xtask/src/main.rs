//! `cargo xtask`: set-up, tests, demo, benchmarks and the real-world corpus for mapleak.
//!
//! Dependency-light on purpose: every step is a plain `std::process::Command`.

mod bench;
mod demo;
mod go;
mod offsets;
mod realworld;
mod setup;
mod test;

use std::{
    env,
    ffi::OsStr,
    fs::OpenOptions,
    io::{self, Write as _},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

/// The workspace manifest, which pins the toolchains in `[workspace.metadata.toolchains]`.
const WORKSPACE_MANIFEST: &str = include_str!("../../Cargo.toml");

/// The user-space Rust toolchain: every project cargo command runs on it.
pub fn stable() -> &'static str {
    pinned_toolchain("stable")
}

/// The eBPF Rust toolchain (its LLVM must match bpf-linker's).
pub fn nightly() -> &'static str {
    pinned_toolchain("nightly")
}

fn pinned_toolchain(key: &str) -> &'static str {
    manifest_value(WORKSPACE_MANIFEST, "workspace.metadata.toolchains", key)
        .unwrap_or_else(|| panic!("Cargo.toml has no [workspace.metadata.toolchains] {key}"))
}

/// A `key = "value"` string of `[table]` in a TOML file, read line by line: enough for the
/// flat table it is used for, without a TOML parser in a crate that must build on old toolchains.
fn manifest_value(manifest: &'static str, table: &str, key: &str) -> Option<&'static str> {
    let header = format!("[{table}]");
    let mut lines = manifest.lines().map(str::trim);
    lines.find(|line| *line == header)?;
    lines
        .take_while(|line| !line.starts_with('['))
        .find_map(|line| {
            let (name, value) = line.split_once('=')?;
            if name.trim() != key {
                return None;
            }
            value.trim().strip_prefix('"')?.strip_suffix('"')
        })
}

/// `1.95.0` → `(1, 95, 0)`; a `rust-version` may omit the patch, and rustc's `-nightly` suffix is
/// dropped.
pub fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let release = text.split(['-', '+']).next()?;
    let mut parts = release.split('.').map(str::parse::<u32>);
    let major = parts.next()?.ok()?;
    let minor = parts.next()?.ok()?;
    let patch = parts.next().unwrap_or(Ok(0)).ok()?;
    Some((major, minor, patch))
}

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Development tasks for mapleak")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building and testing mapleak needs (Rust toolchains, LLVM, bpf-linker,
    /// tracefs, Go toolchains), skipping whatever is already there.
    Setup,
    /// Lint, unit-test and (as root) integration-test the workspace.
    Test(test::Args),
    /// Build a small leaky Go program and trace it with mapleak for a few seconds (needs root).
    Demo,
    /// Measure the tracer's overhead on a map-insert-heavy Go program and the aggregator's
    /// throughput, and print a table for the README (needs root).
    Bench(bench::Args),
    /// Trace real Go programs from the package registries under real workloads and judge
    /// mapleak's findings on them (needs root).
    Realworld(realworld::Args),
    /// Regenerate the per-release table of the Go runtime's struct offsets from the DWARF of
    /// every installed Go toolchain.
    Offsets,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Setup => setup::run().map(|()| ExitCode::SUCCESS),
        Cmd::Test(args) => test::run(&args).map(|()| ExitCode::SUCCESS),
        Cmd::Demo => demo::run(),
        Cmd::Bench(args) => bench::run(&args).map(|()| ExitCode::SUCCESS),
        Cmd::Realworld(args) => realworld::run(&args),
        Cmd::Offsets => offsets::regenerate().map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|err| {
        eprintln!("xtask: error: {err:#}");
        ExitCode::FAILURE
    })
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// `cargo +<stable>`: see [`cargo_on`].
pub fn cargo() -> Command {
    cargo_on(stable())
}

/// `cargo +<toolchain>` (the rustup proxy on `PATH`), run from the workspace root. The toolchain
/// is always named, because xtask itself runs on whatever the machine's default is.
pub fn cargo_on(toolchain: &str) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace_root())
        .arg(format!("+{toolchain}"));
    cmd
}

/// `rustup`, without an inherited `RUSTUP_TOOLCHAIN`.
pub fn rustup() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.env_remove("RUSTUP_TOOLCHAIN");
    cmd
}

/// Runs `cmd` with inherited stdio and fails if it does not succeed.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", show(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", show(cmd));
    }
    Ok(())
}

/// Runs `cmd` with stdout and stderr appended to `log`; on failure the error carries the log's tail.
pub fn run_logged(cmd: &mut Command, log: &Path) -> Result<()> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("could not start `{}`", show(cmd)))?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        bail!(
            "`{}` failed ({status}); full log in {}:\n{tail}",
            show(cmd),
            log.display()
        );
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its stdout if it succeeded.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The command line of `cmd`, for messages.
pub fn show(cmd: &Command) -> String {
    let args = cmd.get_args().map(OsStr::to_string_lossy);
    std::iter::once(cmd.get_program().to_string_lossy())
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() == "0")
}

/// Prints `text` without a newline, so that a result can follow on the same line.
pub fn progress(text: &str) {
    print!("{text}");
    let _ = io::stdout().flush();
}

/// `1m05s` / `4.2s`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toolchains_are_pinned_in_the_workspace_manifest() {
        assert!(parse_version(stable()).is_some(), "stable: {}", stable());
        assert!(
            nightly().starts_with("nightly-20"),
            "nightly: {}",
            nightly()
        );
        assert_eq!(
            manifest_value(
                "[a]\nx = \"1\"\n[b]\n# x = \"2\"\nxy = \"3\"\nx = \"4\"\n",
                "b",
                "x"
            ),
            Some("4")
        );
        assert_eq!(manifest_value("[a]\n[b]\nx = \"1\"\n", "a", "x"), None);
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("1.95.0"), Some((1, 95, 0)));
        assert_eq!(parse_version("1.85"), Some((1, 85, 0)));
        assert_eq!(parse_version("1.99.0-nightly"), Some((1, 99, 0)));
        assert_eq!(parse_version("nightly"), None);
    }

    /// `cargo xtask` is built by the machine's default toolchain before it can install the
    /// pinned ones, so nothing it builds may need a newer rustc than its own `rust-version`.
    #[test]
    fn xtask_builds_on_its_rust_version() {
        let out = Command::new(env!("CARGO"))
            .current_dir(workspace_root())
            .args(["metadata", "--format-version", "1", "--locked"])
            .output()
            .expect("cargo metadata");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let packages = metadata["packages"].as_array().expect("packages");
        let rust_version = |id: &str| {
            let package = packages.iter().find(|p| p["id"] == id).expect("package");
            let name = package["name"].as_str().unwrap_or_default().to_owned();
            (
                name,
                package["rust_version"].as_str().and_then(parse_version),
            )
        };
        let nodes = metadata["resolve"]["nodes"].as_array().expect("resolve");
        let xtask = packages
            .iter()
            .find(|p| p["name"] == "xtask")
            .and_then(|p| p["id"].as_str())
            .expect("xtask");
        let (_, Some(floor)) = rust_version(xtask) else {
            panic!("xtask has no rust-version");
        };

        let mut seen = vec![xtask.to_owned()];
        let mut queue = vec![xtask.to_owned()];
        while let Some(id) = queue.pop() {
            let node = nodes.iter().find(|n| n["id"] == id.as_str()).expect("node");
            for dep in node["deps"].as_array().into_iter().flatten() {
                // Dev-dependencies are built by `cargo test`, on the pinned toolchain.
                let built = dep["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|kind| kind["kind"] != "dev");
                let dep_id = dep["pkg"].as_str().expect("pkg").to_owned();
                if built && !seen.contains(&dep_id) {
                    seen.push(dep_id.clone());
                    queue.push(dep_id);
                }
            }
        }
        for id in &seen {
            let (name, needs) = rust_version(id);
            assert!(
                needs.is_none_or(|needs| needs <= floor),
                "xtask's dependency {name} needs rustc {needs:?}, newer than xtask's rust-version {floor:?}: \
                 pin an older {name} in Cargo.lock (`cargo update {name} --precise …`)"
            );
        }
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_millis(4200)), "4.2s");
        assert_eq!(human(Duration::from_secs(65)), "1m05s");
    }
}
