#!/usr/bin/env python3
"""Writes small, valid synthetic .gopclntab tables to corpus/pclntab (or the directory given).

Real tables are hundreds of KB, which keeps libFuzzer at a few hundred runs a second; these few
hundred bytes exercise the same paths (both layouts, wrappers, pcsp sizes) much faster.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def uvarint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def table(magic, funcs, end, text_start=0x401000, ptr=8):
    """funcs: (name, entry, size or None, funcID)."""
    id_off, rec = (36, 40) if magic == 0xFFFFFFF0 else (40, 44)
    names, name_offs = bytearray(), []
    for name, *_ in funcs:
        name_offs.append(len(names))
        names += name.encode() + b"\0"
    pctab, pcsp = bytearray(b"\0"), []
    for _, _, size, _ in funcs:
        if size is None:
            pcsp.append(0)
            continue
        pcsp.append(len(pctab))
        pctab += b"\x02" + uvarint(size // 2) + b"\x10" + uvarint(size - size // 2) + b"\0"
    n = len(funcs)
    ftab_len = n * 8 + 4
    pcln = bytearray()
    for i, (_, entry, _, _) in enumerate(funcs):
        pcln += struct.pack("<II", entry, ftab_len + i * rec)
    pcln += struct.pack("<I", end)
    for i, (_, entry, _, fid) in enumerate(funcs):
        r = bytearray(rec)
        struct.pack_into("<IiI", r, 0, entry, name_offs[i], 0)
        struct.pack_into("<I", r, 16, pcsp[i])
        r[id_off] = fid
        pcln += r
    hdr_len = 8 + 8 * ptr
    fn_off = hdr_len
    cu_off = fn_off + len(names)
    file_off = cu_off + 4
    pc_off = file_off + 1
    ln_off = pc_off + len(pctab)
    words = [n, 1, text_start, fn_off, cu_off, file_off, pc_off, ln_off]
    fmt = "<" + ("Q" if ptr == 8 else "I") * 8
    hdr = struct.pack("<IBBBB", magic, 0, 0, 1, ptr) + struct.pack(fmt, *words)
    return hdr + bytes(names) + b"\0" * 4 + b"\0" + bytes(pctab) + bytes(pcln)


FUNCS = [
    ("runtime.hashGrow", 0, 30, 0),
    ("runtime.newstack", 32, 20, 23),
    ("main.c", 64, None, 0),
    ("runtime.newstack", 96, 300, 0),
    ("main.main", 400, 100, 0),
]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus", "pclntab")
    os.makedirs(out, exist_ok=True)
    seeds = {
        "synth-go120": table(0xFFFFFFF1, FUNCS, 500),
        "synth-go118": table(0xFFFFFFF0, FUNCS, 500),
        "synth-go126": table(0xFFFFFFF1, FUNCS, 500, text_start=0),
        "synth-32bit": table(0xFFFFFFF1, FUNCS, 500, ptr=4),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(name, len(data))


if __name__ == "__main__":
    main()
