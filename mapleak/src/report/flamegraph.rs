//! The growth profile as an interactive SVG flame graph (inferno): one box per frame, as wide
//! as the bytes map growth allocated below it, inlined frames as boxes of their own.

use std::io::Write;

use super::profile::GrowthProfile;

/// Writes the flame graph of bytes grown to `out`.
pub fn write(out: &mut dyn Write, p: &GrowthProfile, title: &str) -> std::io::Result<()> {
    // Collapsed stacks: root first, frames joined by ';', then the value.
    let lines: Vec<String> = p
        .samples
        .iter()
        .filter(|s| s.grow_bytes > 0)
        .map(|s| {
            let frames: Vec<String> = if s.frames.is_empty() {
                vec!["[unsymbolized]".to_owned()]
            } else {
                s.frames
                    .iter()
                    .rev()
                    .map(|f| f.function.replace(';', ":"))
                    .collect()
            };
            format!("{} {}", frames.join(";"), s.grow_bytes)
        })
        .collect();
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_owned();
    options.count_name = "bytes".to_owned();
    options.subtitle = p.sampled.clone();
    if lines.is_empty() {
        // inferno refuses an empty graph: an SVG that says so instead.
        let title = title
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        return write!(
            out,
            r#"<?xml version="1.0" standalone="no"?><svg version="1.1" width="600" height="40" xmlns="http://www.w3.org/2000/svg"><text x="10" y="25">{title}: no map growth was seen</text></svg>"#
        );
    }
    inferno::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)
        .map_err(std::io::Error::other)
}
