"""A small safetensors writer (no `safetensors` package in Debian 12).

Layout: [u64 little-endian header length][JSON header][raw little-endian data],
header {"<key>": {"dtype", "shape", "data_offsets": [begin, end)}, ...,
"__metadata__": {str: str}}, padded with spaces to 8 bytes, keys sorted so
equal inputs give equal bytes (as worker/models/safetensors.cc writes).
"""

import json
import struct

import torch

DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
    torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32",
    torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}


def tensor_bytes(t):
    t = t.detach().to("cpu").contiguous().reshape(-1)
    if t.numel() == 0:
        return b""
    return t.view(torch.uint8).numpy().tobytes()


def write(path, tensors, metadata=None):
    header = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    blobs = []
    offset = 0
    for key in sorted(tensors):
        t = tensors[key]
        if t.dtype not in DTYPES:
            raise ValueError("%s: dtype %s is not supported" % (key, t.dtype))
        data = tensor_bytes(t)
        header[key] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                       "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    return offset
