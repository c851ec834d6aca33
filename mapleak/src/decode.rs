//! Ring-buffer records to typed events: length-checked, unknown kinds rejected, no casts of
//! untrusted bytes.

use mapleak_common::{
    AssistEvent, ClassicGrowEvent, CreateEvent, EvacuatedEvent, EventHeader, EventKind, ExecEvent,
    MAX_FRAMES, MemEvent, StackRef, StwEvent, SwissGrowEvent,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    ClassicGrow(ClassicGrowEvent),
    SwissGrow(SwissGrowEvent),
    Stw(StwEvent),
    Mem(MemEvent),
    Create(CreateEvent),
    Evacuated(EvacuatedEvent),
    Exec(ExecEvent),
    Assist(AssistEvent),
}

impl Event {
    /// Where the event happened, for the events that carry a stack.
    pub fn site_mut(&mut self) -> Option<&mut StackRef> {
        match self {
            Event::ClassicGrow(e) => Some(&mut e.site),
            Event::SwissGrow(e) => Some(&mut e.site),
            Event::Create(e) => Some(&mut e.site),
            Event::Assist(e) => Some(&mut e.site),
            Event::Stw(_) | Event::Mem(_) | Event::Evacuated(_) | Event::Exec(_) => None,
        }
    }

    pub fn header(&self) -> &EventHeader {
        match self {
            Event::ClassicGrow(e) => &e.header,
            Event::SwissGrow(e) => &e.header,
            Event::Stw(e) => &e.header,
            Event::Mem(e) => &e.header,
            Event::Create(e) => &e.header,
            Event::Evacuated(e) => &e.header,
            Event::Exec(e) => &e.header,
            Event::Assist(e) => &e.header,
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than the {need}-byte {what}")]
    Short {
        what: &'static str,
        len: usize,
        need: usize,
    },
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
}

pub fn decode(record: &[u8]) -> Result<Event, DecodeError> {
    let header: EventHeader = read(record, "event header")?;
    match EventKind::try_from(header.kind).map_err(DecodeError::UnknownKind)? {
        EventKind::ClassicGrow => Ok(Event::ClassicGrow(read(record, "classic grow event")?)),
        EventKind::SwissGrow => Ok(Event::SwissGrow(read(record, "Swiss grow event")?)),
        EventKind::Stw => Ok(Event::Stw(read(record, "stop-the-world event")?)),
        EventKind::Mem => Ok(Event::Mem(read(record, "memory event")?)),
        EventKind::Create => Ok(Event::Create(read(record, "map creation event")?)),
        EventKind::Evacuated => Ok(Event::Evacuated(read(record, "evacuation event")?)),
        EventKind::Exec => Ok(Event::Exec(read(record, "exec event")?)),
        EventKind::Assist => Ok(Event::Assist(read(record, "assist event")?)),
    }
}

/// The pcs behind an event that carries a stack ([`mapleak_common::WithFrames`]), as
/// little-endian bytes; `None` when the record has no frames behind the event (as synthetic
/// records in tests and benchmarks do), or they are malformed.
pub fn frames<'r>(record: &'r [u8], event: &Event) -> Option<&'r [u8]> {
    let event_len = match event {
        Event::ClassicGrow(_) => size_of::<ClassicGrowEvent>(),
        Event::SwissGrow(_) => size_of::<SwissGrowEvent>(),
        Event::Create(_) => size_of::<CreateEvent>(),
        Event::Assist(_) => size_of::<AssistEvent>(),
        Event::Stw(_) | Event::Mem(_) | Event::Evacuated(_) | Event::Exec(_) => return None,
    };
    let tail = record.get(event_len..)?;
    let depth = u64::from_le_bytes(tail.get(..8)?.try_into().ok()?);
    let depth = usize::try_from(depth).ok().filter(|&d| d <= MAX_FRAMES)?;
    tail.get(8..8 + depth * 8)
}

/// Copies a `T` out of the front of `record` after checking its length.
///
/// Only instantiated with the `repr(C)` integer-only types of `mapleak_common`, for which every
/// bit pattern is a valid value.
fn read<T: Copy>(record: &[u8], what: &'static str) -> Result<T, DecodeError> {
    let need = size_of::<T>();
    if record.len() < need {
        return Err(DecodeError::Short {
            what,
            len: record.len(),
            need,
        });
    }
    // SAFETY: the length is checked above, `read_unaligned` tolerates any alignment, and T is a
    // plain-integer struct valid for every bit pattern.
    Ok(unsafe { std::ptr::read_unaligned(record.as_ptr().cast::<T>()) })
}

/// The raw bytes of an event, as the kernel writes them; used by tests and benchmarks.
pub fn encode<T: Copy>(event: &T) -> Vec<u8> {
    // SAFETY: T is one of the padding-explicit repr(C) event structs; viewing it as bytes is sound.
    unsafe { std::slice::from_raw_parts((event as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

#[cfg(test)]
mod tests {
    use mapleak_common::{Frames, WithFrames};

    use super::{frames as frames_of, *};

    fn grow() -> ClassicGrowEvent {
        ClassicGrowEvent {
            header: EventHeader {
                kind: EventKind::ClassicGrow as u32,
                tid: 7,
                ts_ns: 99,
            },
            map: 0xc000_1000,
            count: 13,
            b: 1,
            bucket_size: 144,
            ..Default::default()
        }
    }

    #[test]
    fn round_trips_a_grow_event() {
        assert_eq!(decode(&encode(&grow())), Ok(Event::ClassicGrow(grow())));
    }

    #[test]
    fn rejects_short_records_at_every_length() {
        let bytes = encode(&grow());
        for len in 0..bytes.len() {
            assert!(matches!(
                decode(&bytes[..len]),
                Err(DecodeError::Short { .. })
            ));
        }
    }

    #[test]
    fn reads_the_frames_behind_an_event() {
        let mut frames = Frames {
            depth: 2,
            pcs: [0; MAX_FRAMES],
        };
        frames.pcs[..3].copy_from_slice(&[0x10, 0x20, 0x30]);
        let record = encode(&WithFrames {
            event: grow(),
            frames,
        });
        let event = decode(&record).unwrap();
        let want: Vec<u8> = [0x10u64, 0x20]
            .iter()
            .flat_map(|p| p.to_le_bytes())
            .collect();
        assert_eq!(frames_of(&record, &event), Some(&want[..]));
        // A depth beyond the array, or frames cut short, is malformed; no tail is no stack.
        frames.depth = MAX_FRAMES as u64 + 1;
        let record = encode(&WithFrames {
            event: grow(),
            frames,
        });
        assert_eq!(frames_of(&record, &event), None);
        let short = &record[..size_of::<ClassicGrowEvent>() + 8 + 8];
        frames.depth = 2;
        let mut cut = encode(&WithFrames {
            event: grow(),
            frames,
        });
        cut.truncate(short.len());
        assert_eq!(frames_of(&cut, &event), None);
        assert_eq!(frames_of(&encode(&grow()), &event), None);
    }

    #[test]
    fn rejects_unknown_kinds() {
        let mut event = grow();
        event.header.kind = 0xdead;
        assert_eq!(
            decode(&encode(&event)),
            Err(DecodeError::UnknownKind(0xdead))
        );
    }
}
