//! Go toolchains for the unit tests that check inspection against real binaries. Test-only.
//!
//! A plain `cargo test` skips a missing toolchain's checks with a note. `cargo xtask test`
//! sets [`REQUIRE_ENV`], and then a missing toolchain fails the test that wanted it: a check
//! that did not run must not pass.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
};

use mapleak_common::go_versions::tested;

use super::MapImpl;

/// Every tested toolchain (go-versions.txt), oldest first.
pub fn versions() -> Vec<&'static str> {
    tested().map(|g| g.version).collect()
}

/// A build of the matrix: (version, its map implementation, a tag for the fixture's name, the
/// environment that selects it) — the default of every version, and the classic twin of those
/// that carry both implementations.
pub type Build = (
    &'static str,
    MapImpl,
    &'static str,
    &'static [(&'static str, &'static str)],
);

pub fn builds() -> Vec<Build> {
    let mut builds = Vec::new();
    for g in tested() {
        let default = if g.minor() >= 24 {
            MapImpl::Swiss
        } else {
            MapImpl::Classic
        };
        builds.push((g.version, default, "", &[][..]));
        if g.noswissmap {
            builds.push((
                g.version,
                MapImpl::Classic,
                "-noswiss",
                &[("GOEXPERIMENT", "noswissmap")][..],
            ));
        }
    }
    builds
}

/// Set to `1` by `cargo xtask test`: every toolchain of [`versions`] must be installed.
pub const REQUIRE_ENV: &str = "MAPLEAK_REQUIRE_TOOLCHAINS";

fn required() -> bool {
    std::env::var_os(REQUIRE_ENV).is_some_and(|v| v == "1")
}

/// A check that cannot run here: a failure when toolchains are required, else a note.
pub fn unavailable(why: &str) {
    assert!(
        !required(),
        "{why}, and {REQUIRE_ENV}=1 requires it (`cargo xtask setup` installs every toolchain)"
    );
    eprintln!("note: {why}; not checked");
}

/// Where `cargo xtask setup` puts `version`: `$MAPLEAK_GO_CACHE/<version>`, else
/// `${XDG_CACHE_HOME:-$HOME/.cache}/mapleak/go/<version>`, as xtask picks it.
pub fn go_bin(version: &str) -> PathBuf {
    if version == "1.19" {
        return PathBuf::from("/usr/lib/go-1.19/bin/go");
    }
    let set = |name: &str| std::env::var_os(name).filter(|d| !d.is_empty());
    let root = set("MAPLEAK_GO_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            set("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(&set("HOME").unwrap_or_default()).join(".cache"))
                .join("mapleak/go")
        });
    root.join(version).join("bin/go")
}

/// `(version, go binary)` for every installed toolchain; see [`unavailable`] for the others.
pub fn toolchains() -> Vec<(String, PathBuf)> {
    versions()
        .into_iter()
        .filter_map(|v| {
            let go = go_bin(v);
            if go.exists() {
                Some((v.to_string(), go))
            } else {
                unavailable(&format!("Go {v} is not installed at {}", go.display()));
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

/// Builds the map program with `version` (cached by name under `target/`), or `None` when that
/// Go is not installed and toolchains are not required (see [`unavailable`]). `tag` names the
/// variant that `flags` and `env` make.
pub fn fixture(version: &str, tag: &str, flags: &[&str], env: &[(&str, &str)]) -> Option<PathBuf> {
    program(MAP_PROGRAM, version, tag, flags, env)
}

/// The map program built by `version` as is and stripped (`-ldflags=-s -w`: no symbols, no
/// DWARF), or `None` as for [`fixture`].
pub fn full_and_stripped(version: &str) -> Option<(PathBuf, PathBuf)> {
    let full = fixture(version, "", &[], &[])?;
    let stripped = fixture(version, "-stripped", &["-ldflags=-s -w"], &[])?;
    Some((full, stripped))
}

/// `address` as (section name, offset in it): how a full and a stripped build of one program
/// are compared, since their sections may sit at different addresses.
pub fn placed(elf: &super::GoElf, address: u64) -> Option<(String, u64)> {
    use object::{Object, ObjectSection};
    elf.object()
        .sections()
        .find(|s| (s.address()..s.address() + s.size()).contains(&address))
        .map(|s| (s.name().unwrap_or("?").to_owned(), address - s.address()))
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
        unavailable(&format!(
            "Go {version} is not installed at {}",
            go.display()
        ));
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
