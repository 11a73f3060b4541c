#!/usr/bin/python3
"""Writes torch.save archives that exercise worker/models/checkpoint/pth_reader.

Run with Debian's interpreter (/usr/bin/python3, python3-torch):
  make_pth_cases.py OUT_DIR
Writes into OUT_DIR:
  state.pth            torch.save(OrderedDict with _metadata): bf16/fp16/fp32/
                       f64/int64/int8/uint8/bool, a transposed (non-contiguous)
                       view, two slices of one storage, a 0-dim and an empty
                       tensor
  expected.safetensors the same tensors, contiguous (the values to compare)
  state_zip64.pth      state.pth with a ZIP64 central directory (every size and
                       offset in the 64-bit extra field), as archives > 4 GiB are
  plain_dict.pth       torch.save(dict) of two tensors (also a state dict)
  compressed.pth       state.pth re-zipped with deflate (must be refused)
  not_a_dict.pth       torch.save(list of tensors) (must be refused)
  parameters.pth       an OrderedDict holding an nn.Parameter
  foreign_global.pth   a state dict holding a non-tensor object (its class is a
                       global the reader must refuse by name)
  storage_overflow.pth a storage of 2**62 floats (bytes wrap past 2**64) and
                       a view beyond its record (must be refused)
  self_list.pth        a state dict whose entry is a list holding itself
  self_dict.pth        a dict holding itself (both must be refused, and the
                       reference cycle freed)
  deep_nesting.pth     a hand-written pickle of a list nested 1,000,000 deep
                       (must be refused without exhausting the stack)
"""

import collections
import io
import os
import struct
import sys
import zipfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_writer  # noqa: E402


class NotATensor:
    pass


def state_dict():
    g = torch.Generator().manual_seed(1234)
    base = torch.randn(6, 10, generator=g)
    sd = collections.OrderedDict()
    sd["blocks.0.attn.q.weight"] = base.to(torch.bfloat16)
    sd["blocks.0.attn.k.weight"] = torch.randn(4, 3, 2, generator=g).half()
    shared = torch.randn(5, 8, generator=g)
    sd["shared.full"] = shared
    sd["shared.transposed"] = shared.t()             # same storage, strides (1, 8)
    sd["shared.rows"] = shared[1:4]                  # same storage, offset 8
    sd["shared.cols"] = shared[:, 2:7:2]             # offset 2, strides (8, 2)
    sd["norm.gamma"] = torch.randn(7, 1, 1, 1, generator=g).double()
    sd["ids"] = torch.arange(-3, 9)
    sd["i8"] = torch.tensor([-128, -1, 0, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 7, 255], dtype=torch.uint8)
    sd["mask"] = torch.tensor([True, False, True])
    sd["scalar"] = torch.tensor(2.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["bf16.view"] = sd["blocks.0.attn.q.weight"][2:, 1::3]
    sd._metadata = collections.OrderedDict()
    sd._metadata[""] = {"version": 1}
    sd._metadata["blocks.0"] = {"version": 2, "scale": 0.5, "flag": True,
                                "none": None, "big": 1 << 40, "neg": -70000}
    return sd


def rewrite_zip64(src, dst):
    """Re-emits src's central directory in ZIP64 form (local records kept)."""
    with open(src, "rb") as f:
        data = f.read()
    z = zipfile.ZipFile(src)
    infos = z.infolist()
    eocd = data.rfind(b"PK\x05\x06")
    cd_offset = struct.unpack("<I", data[eocd + 16:eocd + 20])[0]
    out = bytearray(data[:cd_offset])
    cd = bytearray()
    for i in infos:
        name = i.filename.encode()
        extra = struct.pack("<HHQQQ", 1, 24, i.file_size, i.compress_size,
                            i.header_offset)
        cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 45, 45, 0,
                          i.compress_type, 0, 0, i.CRC, 0xFFFFFFFF,
                          0xFFFFFFFF, len(name), len(extra), 0, 0, 0, 0,
                          0xFFFFFFFF)
        cd += name + extra
    new_cd_offset = len(out)
    out += cd
    z64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064b50, 44, 45, 45, 0, 0,
                       len(infos), len(infos), len(cd), new_cd_offset)
    out += struct.pack("<IIQI", 0x07064b50, 0, z64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, 0xFFFF, 0xFFFF,
                       0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(dst, "wb") as f:
        f.write(out)


def rewrite_deflated(src, dst):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(
            dst, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for i in zin.infolist():
            zout.writestr(i.filename, zin.read(i.filename))


def write_storage_overflow(dst):
    """A 1000-float state dict whose pickle claims a storage of 2**62 floats
    (2**64 bytes: wraps to 0 in 64-bit arithmetic) and a view of 2**20 of
    them: the reader must refuse it, not map past the 4000-byte record."""
    buf = io.BytesIO()
    torch.save(collections.OrderedDict(w=torch.ones(1000)), buf)
    z = zipfile.ZipFile(buf)
    pkl = [n for n in z.namelist() if n.endswith("data.pkl")][0]
    data = z.read(pkl)
    numel = b"M" + struct.pack("<H", 1000)   # BININT2 1000, twice
    assert data.count(numel) == 2, data
    first = data.index(numel)
    second = data.index(numel, first + 3)
    data = (data[:first] + b"\x8a\x08" + struct.pack("<q", 1 << 62) +
            data[first + 3:second] + b"J" + struct.pack("<i", 1 << 20) +
            data[second + 3:])
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as w:
        for n in z.namelist():
            w.writestr(n, data if n == pkl else z.read(n))


def write_pickle_archive(dst, pickle_bytes):
    """A torch.save-shaped zip (archive/data.pkl, archive/byteorder) around a
    pickle written by hand."""
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as w:
        w.writestr("archive/data.pkl", pickle_bytes)
        w.writestr("archive/byteorder", "little")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    sd = state_dict()
    torch.save(sd, os.path.join(out, "state.pth"))
    safetensors_writer.write(os.path.join(out, "expected.safetensors"),
                             {k: v.contiguous() for k, v in sd.items()})
    rewrite_zip64(os.path.join(out, "state.pth"),
                  os.path.join(out, "state_zip64.pth"))
    torch.save({"a": torch.ones(2, 2), "b": torch.arange(3).int()},
               os.path.join(out, "plain_dict.pth"))
    rewrite_deflated(os.path.join(out, "state.pth"),
                     os.path.join(out, "compressed.pth"))
    torch.save([torch.ones(2)], os.path.join(out, "not_a_dict.pth"))
    params = collections.OrderedDict(
        p=torch.nn.Parameter(torch.arange(4.0)), t=torch.ones(1))
    torch.save(params, os.path.join(out, "parameters.pth"))
    torch.save(collections.OrderedDict(w=torch.ones(2), obj=NotATensor()),
               os.path.join(out, "foreign_global.pth"))
    write_storage_overflow(os.path.join(out, "storage_overflow.pth"))
    looped = []
    looped.append(looped)
    torch.save({"w": torch.ones(1), "loop": looped},
               os.path.join(out, "self_list.pth"))
    itself = {"w": torch.ones(1)}
    itself["self"] = itself
    torch.save(itself, os.path.join(out, "self_dict.pth"))
    # PROTO 2, a million EMPTY_LISTs, each APPENDed to the one below, STOP.
    depth = 1000000
    write_pickle_archive(os.path.join(out, "deep_nesting.pth"),
                         b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) +
                         b".")


if __name__ == "__main__":
    main()
