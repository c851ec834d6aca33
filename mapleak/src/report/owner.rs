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
            package_path("github.com/gohugoio/hugo/hugolib.(*Site).render"),
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
