//! Ring-buffer records to typed events: length-checked, unknown kinds rejected, no casts of
//! untrusted bytes.

use mapleak_common::{
    ClassicGrowEvent, CreateEvent, EvacuatedEvent, EventHeader, EventKind, MemEvent, StwEvent,
    SwissGrowEvent,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    ClassicGrow(ClassicGrowEvent),
    SwissGrow(SwissGrowEvent),
    Stw(StwEvent),
    Mem(MemEvent),
    Create(CreateEvent),
    Evacuated(EvacuatedEvent),
}

impl Event {
    pub fn header(&self) -> &EventHeader {
        match self {
            Event::ClassicGrow(e) => &e.header,
            Event::SwissGrow(e) => &e.header,
            Event::Stw(e) => &e.header,
            Event::Mem(e) => &e.header,
            Event::Create(e) => &e.header,
            Event::Evacuated(e) => &e.header,
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
    }
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
    use super::*;

    fn grow() -> ClassicGrowEvent {
        ClassicGrowEvent {
            header: EventHeader {
                kind: EventKind::ClassicGrow as u32,
                tid: 7,
                ts_ns: 99,
                goid: 1,
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
    fn rejects_unknown_kinds() {
        let mut event = grow();
        event.header.kind = 0xdead;
        assert_eq!(
            decode(&encode(&event)),
            Err(DecodeError::UnknownKind(0xdead))
        );
    }
}
