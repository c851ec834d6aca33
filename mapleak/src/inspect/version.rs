//! Go release versions and what mapleak supports.

use std::fmt;

/// A Go release, parsed from strings such as `go1.21.13`, `go1.22rc1` or `go1.24.11 X:nocoverageredesign`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// The string as the binary records it, e.g. `go1.21.13`.
    pub raw: String,
}

/// Oldest and newest Go minor releases (1.x) that mapleak traces: those every per-release
/// fact was verified on.
pub const SUPPORTED_MINORS: (u32, u32) = crate::gofacts::SUPPORTED;

impl GoVersion {
    pub fn parse(raw: &str) -> Option<Self> {
        let word = raw.split_whitespace().next()?;
        let rest = word.strip_prefix("go")?;
        let mut parts = rest.splitn(3, '.');
        let major = leading_number(parts.next()?)?;
        let minor = leading_number(parts.next()?)?;
        let patch = parts.next().and_then(leading_number).unwrap_or(0);
        Some(Self {
            major,
            minor,
            patch,
            raw: word.to_owned(),
        })
    }

    pub fn at_least(&self, minor: u32) -> bool {
        self.major > 1 || (self.major == 1 && self.minor >= minor)
    }

    pub fn is_supported(&self) -> bool {
        self.major == 1 && (SUPPORTED_MINORS.0..=SUPPORTED_MINORS.1).contains(&self.minor)
    }

    pub fn supported_range() -> String {
        format!("go1.{} to go1.{}", SUPPORTED_MINORS.0, SUPPORTED_MINORS.1)
    }
}

fn leading_number(s: &str) -> Option<u32> {
    let digits: &str = &s[..s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len())];
    digits.parse().ok()
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_candidate_and_experiment_suffixes() {
        let v = GoVersion::parse("go1.21.13").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 21, 13));
        let v = GoVersion::parse("go1.22rc1").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 22, 0));
        let v = GoVersion::parse("go1.24.11 X:noswissmap").unwrap();
        assert_eq!((v.minor, v.patch, v.raw.as_str()), (24, 11, "go1.24.11"));
        assert!(GoVersion::parse("devel +abc").is_none());
        assert!(GoVersion::parse("").is_none());
    }

    #[test]
    fn support_range_is_inclusive() {
        assert!(GoVersion::parse("go1.19.8").unwrap().is_supported());
        assert!(GoVersion::parse("go1.27.3").unwrap().is_supported());
        assert!(!GoVersion::parse("go1.18.10").unwrap().is_supported());
        assert!(!GoVersion::parse("go1.28.0").unwrap().is_supported());
        assert!(!GoVersion::parse("go1.17.13").unwrap().is_supported());
        assert!(!GoVersion::parse("go2.21.0").unwrap().is_supported());
    }
}
