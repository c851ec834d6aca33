//! `.go.buildinfo`: the Go version and build settings every Go 1.18+ binary records, stripped or not.

use super::InspectError;

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const FLAG_INLINE_STRINGS: u8 = 0x02;
const FLAG_BIG_ENDIAN: u8 = 0x01;
/// modinfo is framed by two 16-byte sentinels.
const MODINFO_SENTINEL: usize = 16;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildInfo {
    /// e.g. `go1.21.13`.
    pub go_version: String,
    /// Main package path (`path` line), if recorded.
    pub path: Option<String>,
    /// Main module path (`mod` line), if recorded: the code the program's authors can edit.
    pub main_module: Option<String>,
    /// `build` lines: `-buildmode`, `CGO_ENABLED`, `GOEXPERIMENT`, …
    pub settings: Vec<(String, String)>,
}

impl BuildInfo {
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `GOEXPERIMENT` names `experiment` (e.g. `noswissmap`).
    pub fn has_experiment(&self, experiment: &str) -> bool {
        self.setting("GOEXPERIMENT")
            .is_some_and(|list| list.split(',').any(|e| e == experiment))
    }
}

/// Parses the bytes of a `.go.buildinfo` section (or the tail of a segment starting at its magic).
pub fn parse(data: &[u8]) -> Result<BuildInfo, InspectError> {
    let corrupt = |why: &str| InspectError::CorruptBuildInfo(why.to_owned());
    if data.len() < 32 || &data[..14] != MAGIC {
        return Err(corrupt("missing magic"));
    }
    let flags = data[15];
    if flags & FLAG_INLINE_STRINGS == 0 {
        // Pointer-based layout: written by Go 1.17 and older only.
        return Err(InspectError::UnsupportedGo(
            "go1.17 or older (pre-1.18 build info)".into(),
        ));
    }
    if flags & FLAG_BIG_ENDIAN != 0 {
        return Err(corrupt("big-endian binaries are not supported"));
    }
    let mut rest = &data[32..];
    let version = read_string(&mut rest).ok_or_else(|| corrupt("truncated version"))?;
    let modinfo = read_string(&mut rest).unwrap_or_default();
    let mut info = BuildInfo {
        go_version: String::from_utf8(version.to_vec())
            .map_err(|_| corrupt("version is not UTF-8"))?,
        ..Default::default()
    };
    if info.go_version.is_empty() {
        return Err(corrupt("empty version"));
    }
    let modinfo = if modinfo.len() >= 2 * MODINFO_SENTINEL {
        &modinfo[MODINFO_SENTINEL..modinfo.len() - MODINFO_SENTINEL]
    } else {
        &[][..]
    };
    for line in String::from_utf8_lossy(modinfo).lines() {
        let mut fields = line.splitn(2, '\t');
        match (fields.next(), fields.next()) {
            (Some("path"), Some(path)) => info.path = Some(path.to_owned()),
            (Some("mod"), Some(module)) => {
                info.main_module = module.split('\t').next().map(str::to_owned);
            }
            (Some("build"), Some(kv)) => {
                if let Some((k, v)) = kv.split_once('=') {
                    info.settings.push((k.to_owned(), v.to_owned()));
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

/// Reads a uvarint-length-prefixed string and advances `data` past it.
fn read_string<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let mut len: u64 = 0;
    let mut shift = 0;
    let mut used = 0usize;
    for &byte in data.iter() {
        used += 1;
        len |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    let len = usize::try_from(len).ok()?;
    let end = used.checked_add(len)?;
    let s = data.get(used..end)?;
    *data = &data[end..];
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(version: &str, modinfo: &str) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[8, FLAG_INLINE_STRINGS]);
        v.resize(32, 0);
        v.push(version.len() as u8);
        v.extend_from_slice(version.as_bytes());
        let framed = format!("{}{modinfo}{}", "S".repeat(16), "E".repeat(16));
        v.push(framed.len() as u8);
        v.extend_from_slice(framed.as_bytes());
        v
    }

    #[test]
    fn reads_version_and_settings() {
        let data = section(
            "go1.24.11",
            "path\tdemo\nmod\tdemo\t(devel)\t\nbuild\t-buildmode=exe\nbuild\tGOEXPERIMENT=noswissmap,foo\n",
        );
        let info = parse(&data).unwrap();
        assert_eq!(info.go_version, "go1.24.11");
        assert_eq!(info.path.as_deref(), Some("demo"));
        assert_eq!(info.main_module.as_deref(), Some("demo"));
        assert_eq!(info.setting("-buildmode"), Some("exe"));
        assert!(info.has_experiment("noswissmap"));
        assert!(!info.has_experiment("swissmap"));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        let good = section("go1.21.13", "");
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
        }
        assert!(parse(&good[..33]).is_err());
        let mut bad = good.clone();
        bad[32] = 0xff; // varint that never ends within the buffer
        assert!(parse(&bad).is_err());
        let mut old = good;
        old[15] = 0;
        assert!(matches!(parse(&old), Err(InspectError::UnsupportedGo(_))));
    }
}
