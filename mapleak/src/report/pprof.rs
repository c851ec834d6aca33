//! The growth profile as a pprof profile (`profile.proto`, gzipped), the format `go tool
//! pprof`, Pyroscope, Parca and speedscope read: sample types `grow_events`/count and
//! `grow_space`/bytes (the default), and `assist_time`/nanoseconds (mark assists, on the stacks
//! of the allocations that paid them), one sample per distinct stack, inlined frames as the lines
//! of one location, innermost first, as Go's own profiles have them.

mod proto;

use std::{collections::HashMap, io::Write};

use prost::Message;

use super::profile::{GrowthProfile, locations};

/// The binary the stacks belong to.
#[derive(Clone, Debug, Default)]
pub struct Binary {
    pub path: String,
    /// The Go build ID (`.note.go.buildid`), when the binary has one.
    pub build_id: Option<String>,
    /// Its executable segment, link-time addresses, and where it starts in the file.
    pub text_start: u64,
    pub text_end: u64,
    pub text_offset: u64,
}

/// Interns strings into the profile's string table.
#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        let mut s = Self::default();
        s.get("");
        s
    }

    fn get(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

/// Builds the profile message.
fn profile(p: &GrowthProfile, binary: &Binary) -> proto::Profile {
    let mut strings = Strings::new();
    let value_type = |strings: &mut Strings, t: &str, u: &str| proto::ValueType {
        r#type: strings.get(t),
        unit: strings.get(u),
    };
    let sample_type = vec![
        value_type(&mut strings, "grow_events", "count"),
        value_type(&mut strings, "grow_space", "bytes"),
        value_type(&mut strings, "assist_time", "nanoseconds"),
    ];
    let mapping = proto::Mapping {
        id: 1,
        memory_start: binary.text_start,
        memory_limit: binary.text_end,
        file_offset: binary.text_offset,
        filename: strings.get(&binary.path),
        build_id: strings.get(binary.build_id.as_deref().unwrap_or("")),
        has_functions: true,
        has_filenames: true,
        has_line_numbers: true,
        has_inline_frames: true,
    };
    let mut functions: HashMap<(String, String), u64> = HashMap::new();
    let mut function_list = Vec::new();
    let mut location_ids: HashMap<u64, u64> = HashMap::new();
    let mut location_list = Vec::new();
    let mut samples = Vec::new();
    for s in &p.samples {
        let mut ids = Vec::new();
        for group in locations(&s.frames) {
            let address =
                u64::from_str_radix(group[0].pc.trim_start_matches("0x"), 16).unwrap_or(0);
            let next_id = location_list.len() as u64 + 1;
            let id = *location_ids.entry(address).or_insert(next_id);
            if id == next_id {
                let line = group
                    .iter()
                    .map(|f| {
                        let key = (f.function.clone(), f.file.clone());
                        let next = function_list.len() as u64 + 1;
                        let function_id = *functions.entry(key).or_insert(next);
                        if function_id == next {
                            let name = strings.get(&f.function);
                            function_list.push(proto::Function {
                                id: function_id,
                                name,
                                system_name: name,
                                filename: strings.get(&f.file),
                                start_line: 0,
                            });
                        }
                        proto::Line {
                            function_id,
                            line: i64::from(f.line),
                        }
                    })
                    .collect();
                location_list.push(proto::Location {
                    id,
                    mapping_id: 1,
                    address,
                    line,
                });
            }
            ids.push(id);
        }
        samples.push(proto::Sample {
            location_id: ids,
            value: vec![
                i64::try_from(s.grow_events).unwrap_or(i64::MAX),
                i64::try_from(s.grow_bytes).unwrap_or(i64::MAX),
                i64::try_from(s.assist_ns).unwrap_or(i64::MAX),
            ],
        });
    }
    let comment = p.sampled.iter().map(|c| strings.get(c)).collect::<Vec<_>>();
    let default_sample_type = strings.get("grow_space");
    let period_type = Some(value_type(&mut strings, "grow_space", "bytes"));
    proto::Profile {
        sample_type,
        sample: samples,
        mapping: vec![mapping],
        location: location_list,
        function: function_list,
        string_table: strings.table,
        time_nanos: i64::try_from(p.time_unix_ns).unwrap_or(0),
        duration_nanos: i64::try_from(p.duration_ns).unwrap_or(i64::MAX),
        period_type,
        period: 1,
        comment,
        default_sample_type,
    }
}

/// Writes the profile, gzipped, to `out`.
pub fn write(out: &mut dyn Write, p: &GrowthProfile, binary: &Binary) -> std::io::Result<()> {
    let bytes = profile(p, binary).encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    gz.write_all(&bytes)?;
    gz.finish()?.flush()
}

#[cfg(test)]
mod tests;
