//! Whose code a frame is: the program's own (what its authors can edit), the Go runtime's, or
//! someone else's (the standard library, or another module the program uses). A finding names
//! the first frame of the program's own code, with the frames it went through below as context.

/// How frames are told apart.
#[derive(Clone, Debug, Default)]
pub struct Ownership {
    /// The main module (`mod` in the build information): its packages are the program's own.
    /// Without it, any code outside the standard library is.
    pub main_module: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The map implementation and the rest of the runtime: never a call site.
    Runtime,
    /// The standard library, or another module: context, not a line to edit.
    Other,
    /// The program's own code.
    Own,
}

impl Ownership {
    /// From the build information: its `mod` line, or for a program built outside module mode
    /// (Debian builds in a GOPATH, with no `mod` line) the module its main package's path
    /// implies.
    pub fn for_build(build: &crate::inspect::BuildInfo) -> Self {
        Self {
            main_module: build
                .main_module
                .clone()
                .or_else(|| build.path.as_deref().and_then(module_of_main)),
        }
    }

    pub fn owner(&self, function: &str, file: &str) -> Owner {
        if is_runtime(function, file) {
            return Owner::Runtime;
        }
        let package = package_path(function);
        let own = package == "main"
            || match &self.main_module {
                Some(module) => {
                    package == module
                        || package
                            .strip_prefix(module.as_str())
                            .is_some_and(|rest| rest.starts_with('/'))
                }
                None => !is_standard(package),
            };
        if own { Owner::Own } else { Owner::Other }
    }
}

/// The module a main package's path most likely belongs to: the path up to a `/cmd/` element
/// (`github.com/restic/restic/cmd/restic`), cut on the code hosts whose module paths are
/// `host/owner/repo` (plus a `/vN` major version) to that; `cmd` for the Go distribution's own
/// commands (`cmd/compile`). A path that is no import path (`command-line-arguments`, a `go run`
/// of files) gives none.
fn module_of_main(path: &str) -> Option<String> {
    // The Go distribution's own commands are module `cmd`.
    if path.starts_with("cmd/") {
        return Some("cmd".to_owned());
    }
    if !path.split('/').next()?.contains('.') {
        return None;
    }
    let path = match path.find("/cmd/") {
        Some(i) => &path[..i],
        None => path.strip_suffix("/cmd").unwrap_or(path),
    };
    const HOSTS: [&str; 4] = ["github.com", "gitlab.com", "bitbucket.org", "codeberg.org"];
    let parts: Vec<&str> = path.split('/').collect();
    if HOSTS.contains(&parts[0]) && parts.len() > 3 {
        let major = parts[3]
            .strip_prefix('v')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        return Some(parts[..if major { 4 } else { 3 }].join("/"));
    }
    Some(path.to_owned())
}

/// The runtime, including the functions it defines for other packages under their names
/// (`reflect.makemap`, `sync.runtime_Semacquire` …), which live in its source files.
fn is_runtime(function: &str, file: &str) -> bool {
    function.starts_with("runtime.")
        || function.starts_with("internal/runtime/")
        || file.starts_with("runtime/")
        || file.contains("/src/runtime/")
        || file.contains("/src/internal/runtime/")
}

/// The package of a Go symbol: `path/to/pkg.Func`, `path/to/pkg.(*T).M` and `pkg.F[…]` all
/// end their package at the first dot after the last slash.
pub fn package_path(function: &str) -> &str {
    let name_start = function.rfind('/').map_or(0, |i| i + 1);
    match function[name_start..].find('.') {
        Some(dot) => &function[..name_start + dot],
        None => function,
    }
}

/// Standard packages have no dot in their first path element (`net/http`, `encoding/json`,
/// `vendor/golang.org/x/net/…` included); every other module's path starts with a domain.
fn is_standard(package: &str) -> bool {
    let first = package.split('/').next().unwrap_or(package);
    !first.contains('.') && package != "main"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_are_read_from_symbols() {
        assert_eq!(package_path("main.main"), "main");
        assert_eq!(package_path("net/http.(*Transport).roundTrip"), "net/http");
        assert_eq!(
            package_path("github.com/gohugoio/hugo/hugolib.(*StackRef).render"),
            "github.com/gohugoio/hugo/hugolib"
        );
        assert_eq!(package_path("main.fill[go.shape.int]"), "main");
        assert_eq!(package_path("sync.(*Map).Store"), "sync");
    }

    #[test]
    fn the_main_module_is_the_programs_own_code() {
        let o = Ownership {
            main_module: Some("github.com/restic/restic".into()),
        };
        let at = |f: &str| o.owner(f, "/x.go");
        assert_eq!(
            at("github.com/restic/restic/internal/repository.(*Repository).LoadIndex"),
            Owner::Own
        );
        assert_eq!(at("main.runBackup"), Owner::Own);
        // Another module that shares a prefix is not the program's.
        assert_eq!(at("github.com/restic/restic-extra/x.F"), Owner::Other);
        assert_eq!(
            at("github.com/minio/minio-go/v7.(*Client).Put"),
            Owner::Other
        );
        assert_eq!(at("encoding/json.(*decodeState).object"), Owner::Other);
        assert_eq!(at("runtime.mapassign_faststr"), Owner::Runtime);
        assert_eq!(o.owner("reflect.makemap", "runtime/map.go"), Owner::Runtime);
        assert_eq!(
            o.owner("reflect.mapassign", "/usr/lib/go-1.19/src/runtime/map.go"),
            Owner::Runtime
        );
    }

    #[test]
    fn without_a_mod_line_the_main_packages_path_names_the_module() {
        for (path, module) in [
            (
                "github.com/prometheus/node_exporter",
                Some("github.com/prometheus/node_exporter"),
            ),
            (
                "github.com/caddyserver/caddy/v2/cmd/caddy",
                Some("github.com/caddyserver/caddy/v2"),
            ),
            (
                "github.com/restic/restic/cmd/restic",
                Some("github.com/restic/restic"),
            ),
            ("github.com/rclone/rclone", Some("github.com/rclone/rclone")),
            (
                "github.com/gohugoio/hugo/internal/x",
                Some("github.com/gohugoio/hugo"),
            ),
            ("go.etcd.io/etcd", Some("go.etcd.io/etcd")),
            (
                "go.etcd.io/etcd/server/v3/cmd",
                Some("go.etcd.io/etcd/server/v3"),
            ),
            ("cmd/compile", Some("cmd")),
            ("command-line-arguments", None),
            ("demo", None),
        ] {
            assert_eq!(module_of_main(path).as_deref(), module, "{path}");
        }
        let build = crate::inspect::BuildInfo {
            path: Some("github.com/prometheus/node_exporter".into()),
            ..Default::default()
        };
        let o = Ownership::for_build(&build);
        assert_eq!(
            o.owner(
                "github.com/prometheus/client_golang/prometheus.checkMetricConsistency",
                "x.go"
            ),
            Owner::Other
        );
        assert_eq!(o.owner("main.(*handler).ServeHTTP", "x.go"), Owner::Own);
        assert_eq!(
            o.owner(
                "github.com/prometheus/node_exporter/collector.parseNetStats",
                "x.go"
            ),
            Owner::Own
        );
    }

    #[test]
    fn without_build_information_everything_outside_the_standard_library_is_own() {
        let o = Ownership::default();
        let at = |f: &str| o.owner(f, "/x.go");
        assert_eq!(
            at("github.com/evanw/esbuild/internal/js_parser.Parse"),
            Owner::Own
        );
        assert_eq!(at("main.main"), Owner::Own);
        assert_eq!(at("net/http.Header.Add"), Owner::Other);
        assert_eq!(
            at("vendor/golang.org/x/net/http2/hpack.(*Decoder).Write"),
            Owner::Other
        );
        assert_eq!(at("internal/sync.(*HashTrieMap).Load"), Owner::Other);
    }
}
