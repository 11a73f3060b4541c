#!/usr/bin/env python3
"""The Wan2.1 DiT in plain PyTorch, written from the architecture facts
(/work/shared/reference/wan21.md), independent of worker/models/dit.cc: it
patchifies with conv3d, builds RoPE as complex polar numbers, and runs the
classifier-free-guided step as two separate forwards, as the Wan reference
does.

It reads what bench:dit_reference_io wrote into --dir (model.safetensors,
io.safetensors, reference.json), recomputes one forward and one CFG step,
and prints max|d|/max|ref| for each and the Python/C++ step-time ratio. Exit
status 1 if either relative error exceeds --tol.

  python3 wan_dit_reference.py --dir=/tmp/ref --tol=1e-4            # CPU fp32
  python3 wan_dit_reference.py --dir=/tmp/ref --tol=3e-2 --device=cuda

Works with PyTorch 1.13 (Debian, CPU) and 2.x (fused SDPA on CUDA).
"""

import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

_DTYPES = {
    "F64": (np.float64, None), "F32": (np.float32, None),
    "F16": (np.float16, None), "BF16": (np.int16, torch.bfloat16),
    "I64": (np.int64, None), "I32": (np.int32, None),
    "I16": (np.int16, None), "I8": (np.int8, None),
    "U8": (np.uint8, None), "BOOL": (np.bool_, None),
}


def read_safetensors(path):
    """{name: CPU tensor} of a safetensors file (format: u64 header length,
    JSON header, raw little-endian data)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        np_dtype, view = _DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data, dtype=np_dtype, count=(end - begin) //
                            np.dtype(np_dtype).itemsize, offset=base + begin)
        t = torch.from_numpy(arr.copy()).reshape(info["shape"])
        out[name] = t.view(view) if view is not None else t
    return out


class WanDiT:
    """Functional Wan2.1 DiT over a dict of checkpoint tensors."""

    def __init__(self, cfg, weights, device, dtype):
        self.cfg = cfg
        self.dtype = dtype
        self.device = device
        self.w = {}
        for k, v in weights.items():
            # Matmul weights in the compute dtype; norms and modulation fp32.
            keep_fp32 = ("modulation" in k or "norm" in k)
            self.w[k] = v.to(device=device,
                             dtype=torch.float32 if keep_fp32 else dtype)
        self.heads = cfg["num_heads"]
        self.head_dim = cfg["dim"] // self.heads
        self.eps = cfg["eps"]

    def lin(self, x, name):
        y = F.linear(x.to(self.dtype), self.w[name + ".weight"],
                     self.w[name + ".bias"])
        return y.float()

    def rms(self, x, name):
        x = x.float()
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * \
            self.w[name]

    def ln(self, x):
        return F.layer_norm(x.float(), (x.shape[-1],), eps=self.eps)

    def rope(self, f, h, w):
        d = self.head_dim
        sixth = d // 6
        widths = [d - 4 * sixth, 2 * sixth, 2 * sixth]
        axes = []
        for n, da in zip((f, h, w), widths):
            inv = 1.0 / torch.pow(
                torch.tensor(10000.0, dtype=torch.float64),
                torch.arange(0, da, 2, dtype=torch.float64) / da)
            ang = torch.outer(torch.arange(n, dtype=torch.float64), inv)
            axes.append(torch.polar(torch.ones_like(ang), ang))
        grid = torch.cat([
            axes[0][:, None, None, :].expand(f, h, w, -1),
            axes[1][None, :, None, :].expand(f, h, w, -1),
            axes[2][None, None, :, :].expand(f, h, w, -1)], dim=-1)
        return grid.reshape(f * h * w, 1, d // 2).to(self.device)  # complex128

    def apply_rope(self, x, freqs):
        b, s, n, d = x.shape
        xc = torch.view_as_complex(x.double().reshape(b, s, n, d // 2, 2))
        return torch.view_as_real(xc * freqs).flatten(3).float()

    def attention(self, q, k, v):
        # (B, S, N, D) -> (B, N, S, D)
        q, k, v = (t.to(self.dtype).transpose(1, 2) for t in (q, k, v))
        if hasattr(F, "scaled_dot_product_attention") and q.is_cuda:
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            s = torch.matmul(q.float(), k.float().transpose(-1, -2)) / \
                math.sqrt(q.shape[-1])
            o = torch.matmul(torch.softmax(s, dim=-1), v.float())
        return o.transpose(1, 2).flatten(2)

    def forward(self, x, t, ctx):
        c, w = self.cfg, self.w
        pt, ph, pw = c["patch"]
        if c["coordinate_planes"]:
            b_, _, f_, h_, w_ = x.shape
            ys = (torch.arange(h_, device=x.device) + 0.5) * (2.0 / h_) - 1
            xs = (torch.arange(w_, device=x.device) + 0.5) * (2.0 / w_) - 1
            x = torch.cat([x, ys.view(1, 1, 1, h_, 1).expand(b_, 1, f_, h_, w_),
                           xs.view(1, 1, 1, 1, w_).expand(b_, 1, f_, h_, w_)],
                          dim=1)
        y = F.conv3d(x.to(self.dtype), w["patch_embedding.weight"],
                     w["patch_embedding.bias"], stride=(pt, ph, pw))
        b, dim, f, h, ww = y.shape
        x = y.flatten(2).transpose(1, 2).float()  # [B, S, D] residual, fp32
        half = c["freq_dim"] // 2
        freqs = torch.pow(torch.tensor(10000.0, dtype=torch.float64),
                          -torch.arange(half, dtype=torch.float64) / half)
        args = t.double().cpu()[:, None] * freqs[None]
        sinus = torch.cat([torch.cos(args), torch.sin(args)], 1).float()
        sinus = sinus.to(self.device)
        e = self.lin(F.silu(self.lin(sinus, "time_embedding.0")),
                     "time_embedding.2")
        e0 = self.lin(F.silu(e), "time_projection.1").view(b, 6, dim)
        context = self.lin(F.gelu(self.lin(ctx, "text_embedding.0"),
                                  approximate="tanh"), "text_embedding.2")
        freqs_rope = self.rope(f, h, ww)
        nh, hd = self.heads, self.head_dim
        for i in range(c["num_layers"]):
            p = f"blocks.{i}."
            m = (w[p + "modulation"] + e0).chunk(6, dim=1)
            # self-attention
            hs = self.ln(x) * (1 + m[1]) + m[0]
            q = self.rms(self.lin(hs, p + "self_attn.q"),
                         p + "self_attn.norm_q.weight").view(b, -1, nh, hd)
            k = self.rms(self.lin(hs, p + "self_attn.k"),
                         p + "self_attn.norm_k.weight").view(b, -1, nh, hd)
            v = self.lin(hs, p + "self_attn.v").view(b, -1, nh, hd)
            o = self.attention(self.apply_rope(q, freqs_rope),
                               self.apply_rope(k, freqs_rope), v)
            x = x + self.lin(o, p + "self_attn.o") * m[2]
            # cross-attention
            hc = F.layer_norm(x, (dim,), w[p + "norm3.weight"],
                              w[p + "norm3.bias"], eps=self.eps)
            q = self.rms(self.lin(hc, p + "cross_attn.q"),
                         p + "cross_attn.norm_q.weight").view(b, -1, nh, hd)
            k = self.rms(self.lin(context, p + "cross_attn.k"),
                         p + "cross_attn.norm_k.weight").view(b, -1, nh, hd)
            v = self.lin(context, p + "cross_attn.v").view(b, -1, nh, hd)
            x = x + self.lin(self.attention(q, k, v), p + "cross_attn.o")
            # FFN
            hf = self.ln(x) * (1 + m[4]) + m[3]
            x = x + self.lin(F.gelu(self.lin(hf, p + "ffn.0"),
                                    approximate="tanh"), p + "ffn.2") * m[5]
        hm = (w["head.modulation"] + e[:, None]).chunk(2, dim=1)
        out = self.lin(self.ln(x) * (1 + hm[1]) + hm[0], "head.head")
        co = c["out_channels"]
        out = out.view(b, f, h, ww, pt, ph, pw, co)
        out = torch.einsum("bfhwpqrc->bcfphqwr", out)
        return out.reshape(b, co, f * pt, h * ph, ww * pw)

    def step(self, x, t, cond, uncond, g, sigma, sigma_next):
        v_c = self.forward(x, t, cond)
        v_u = self.forward(x, t, uncond)
        v = v_u + g * (v_c - v_u)
        return x + v * (sigma_next - sigma)


def rel_err(out, ref):
    out, ref = out.double().cpu(), ref.double().cpu()
    return ((out - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--tol", type=float, default=1e-4,
                    help="max allowed max|d|/max|ref| (fp32: 1e-4)")
    ap.add_argument("--device", default=None,
                    help="cpu or cuda (default: the C++ run's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # fp32 means fp32: no TF32 in cuDNN's conv3d (PyTorch enables it by
    # default) or cuBLAS, as in the C++ side.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    with open(os.path.join(args.dir, "reference.json")) as f:
        cfg = json.load(f)
    device = torch.device(args.device or cfg["device"])
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[cfg["dtype"]]
    io = read_safetensors(os.path.join(args.dir, "io.safetensors"))
    model = WanDiT(cfg, read_safetensors(
        os.path.join(args.dir, "model.safetensors")), device, dtype)
    x = io["x"].to(device)
    t = io["timesteps"].to(device)
    cond = io["cond"].to(device)
    uncond = io["uncond"].to(device)
    with torch.no_grad():
        fwd = model.forward(x, t, cond)
        e_fwd = rel_err(fwd, io["forward"])
        args_step = (x, t, cond, uncond, cfg["guidance"], cfg["sigma"],
                     cfg["sigma_next"])
        out = model.step(*args_step)  # also the warm-up
        e_step = rel_err(out, io["step"])
        times = []
        for _ in range(args.repeats or cfg["repeats"]):
            sync(device)
            start = time.perf_counter()
            out = model.step(*args_step)
            sync(device)
            times.append(time.perf_counter() - start)
    times.sort()
    py = times[len(times) // 2]
    cpp = cfg["cpp_step_seconds"]
    print(f"model={cfg['model']} device={device} dtype={cfg['dtype']} "
          f"layers={cfg['num_layers']} torch={torch.__version__}")
    print(f"forward: max|d|/max|ref| = {e_fwd:.3e}")
    print(f"step:    max|d|/max|ref| = {e_step:.3e}  (tolerance {args.tol:g})")
    print(f"step time: python {py:.4f} s, C++ {cpp:.4f} s, "
          f"python/C++ = {py / cpp:.2f}x")
    ok = e_fwd <= args.tol and e_step <= args.tol
    if not ok:
        print("FAIL: the C++ DiT and the reference disagree beyond the "
              "tolerance", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
