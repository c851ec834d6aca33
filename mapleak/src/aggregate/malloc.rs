//! Go's allocator rounding (`runtime.roundupsize`), identical size classes in Go 1.19–1.27.

/// `runtime.class_to_size` (sizeclasses.go, unchanged since Go 1.15).
const CLASS_TO_SIZE: [u16; 68] = [
    0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320,
    352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792,
    2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728,
    10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672,
    32768,
];
const MAX_SMALL_SIZE: u64 = 32768;
const PAGE_SIZE: u64 = 8192;
const MALLOC_HEADER_SIZE: u64 = 8;
/// Objects with pointers above this size carry an 8-byte malloc header (Go 1.22+).
const MIN_SIZE_FOR_MALLOC_HEADER: u64 = 512;

/// Smallest size class that holds `size` bytes (`size` ≤ 32 KiB).
fn size_class(size: u64) -> u64 {
    CLASS_TO_SIZE
        .iter()
        .map(|&c| u64::from(c))
        .find(|&c| c >= size)
        .unwrap_or(MAX_SMALL_SIZE)
}

/// `runtime.roundupsize(size, noscan)`: the usable size malloc returns for a request.
///
/// `malloc_headers` is Go ≥ 1.22, where pointerful objects over 512 B lose 8 bytes to a header.
pub fn roundupsize(size: u64, noscan: bool, malloc_headers: bool) -> u64 {
    let small = if malloc_headers {
        size <= MAX_SMALL_SIZE - MALLOC_HEADER_SIZE
    } else {
        size < MAX_SMALL_SIZE
    };
    if !small {
        return size.checked_next_multiple_of(PAGE_SIZE).unwrap_or(size);
    }
    let header = if malloc_headers && !noscan && size > MIN_SIZE_FOR_MALLOC_HEADER {
        MALLOC_HEADER_SIZE
    } else {
        0
    };
    size_class(size + header) - header
}

/// What an allocation of `size` bytes takes from the heap, as `totalAlloc` counts it: its size
/// class's whole slot (malloc header included), or its pages.
pub fn slot_size(size: u64, noscan: bool, malloc_headers: bool) -> u64 {
    let usable = roundupsize(size, noscan, malloc_headers);
    let small = usable <= MAX_SMALL_SIZE;
    if small && malloc_headers && !noscan && size > MIN_SIZE_FOR_MALLOC_HEADER {
        usable + MALLOC_HEADER_SIZE
    } else {
        usable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_holds_the_header_too() {
        assert_eq!(slot_size(17_408, false, true), 18_432);
        assert_eq!(slot_size(17_408, true, true), 18_432);
        assert_eq!(slot_size(600, false, false), 640);
        assert_eq!(slot_size(40_000, false, true), 40_960);
    }

    #[test]
    fn rounds_to_size_classes_and_pages() {
        assert_eq!(roundupsize(2448, true, true), 2688);
        assert_eq!(roundupsize(288, true, false), 288);
        assert_eq!(roundupsize(289, true, false), 320);
        assert_eq!(roundupsize(32768, true, false), 32768);
        assert_eq!(roundupsize(32769, true, false), 40960);
        assert_eq!(roundupsize(2_506_752, true, true), 2_506_752);
        assert_eq!(roundupsize(2_506_753, true, true), 2_514_944);
    }

    #[test]
    fn malloc_header_applies_to_large_pointerful_objects_from_go_1_22() {
        // 2048 + 8 needs the 2304 class; 8 bytes of it are the header.
        assert_eq!(roundupsize(2048, false, true), 2296);
        assert_eq!(roundupsize(2048, false, false), 2048);
        assert_eq!(roundupsize(2048, true, true), 2048);
        // At or below 512 B the heap bitmap lives in the span: no header.
        assert_eq!(roundupsize(512, false, true), 512);
    }
}
