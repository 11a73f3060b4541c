#!/usr/bin/env python3
"""Times the independent Python Wan2.1 reference on the reference case files
(the same weights and inputs the C++ benchmark uses): umT5 encode of the t5
case's two prompts, one DiT forward and one CFG step (cond + uncond forwards,
v_u + g (v_c - v_u), an Euler update) on the dit case, and the chunked VAE
decode of the vae case's latents. float32 (or --dtype float64), --threads
intra-op threads, median of --repeats after one warm-up. Prints one JSON
object {"t5_encode_s", "dit_forward_s", "dit_cfg_step_s", "vae_decode_s",
"threads", "dtype", "torch"} and, with --check, the max|d|/max|ref| of each
result against the case's expected tensor (a float32 run of the reference
against its own float64 answer: the floor a C++ float32 run can reach).

  /usr/bin/python3 tools/reference/wan_bench.py --t5_case T5.safetensors \\
      --dit_case DIT.safetensors --vae_case VAE.safetensors [--threads 1]
"""

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wan_ref import dit, safetensors_io, umt5, vae  # noqa: E402


def _load(path, dtype):
    tensors, meta = safetensors_io.read(path)
    cfg = json.loads(meta["config"])
    w = {k: v.to(dtype) for k, v in tensors.items()
         if not k.startswith(("input.", "expected."))}
    io = {k: v for k, v in tensors.items()
          if k.startswith(("input.", "expected."))}
    return cfg, w, io


def _median_time(fn, repeats):
    out = fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2], out


def _rel(out, ref):
    out, ref = out.double(), ref.double()
    return ((out - ref).abs().max() / ref.abs().max()).item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--t5_case", required=True)
    ap.add_argument("--dit_case", required=True)
    ap.add_argument("--vae_case", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtype", choices=["float32", "float64"],
                    default="float32")
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--check", action="store_true",
                    help="also print each result's error vs expected.*")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    result = {"threads": args.threads, "dtype": args.dtype,
              "torch": torch.__version__, "repeats": args.repeats}
    errors = {}
    with torch.no_grad():
        cfg, w, io = _load(args.t5_case, dtype)
        ids = [io["input.ids.0"], io["input.ids.1"]]
        result["t5_encode_s"], ctx = _median_time(
            lambda: umt5.encode_context(w, cfg, ids, cfg["text_len"]),
            args.repeats)
        errors["t5"] = _rel(ctx, io["expected.context"])

        cfg, w, io = _load(args.dit_case, dtype)
        x = io["input.latents"].to(dtype)
        t = io["input.timestep"]
        cond = io["input.context"].to(dtype)
        uncond = torch.zeros_like(cond)
        result["dit_forward_s"], v = _median_time(
            lambda: dit.forward(w, cfg, x, t, cond), args.repeats)
        errors["dit"] = _rel(v, io["expected.velocity"])

        def cfg_step():
            v_c = dit.forward(w, cfg, x, t, cond)
            v_u = dit.forward(w, cfg, x, t, uncond)
            return x + (0.9 - 0.95) * (v_u + args.guidance * (v_c - v_u))
        result["dit_cfg_step_s"], _ = _median_time(cfg_step, args.repeats)

        cfg, w, io = _load(args.vae_case, dtype)
        result["vae_base_dim"] = cfg["base_dim"]
        z = io["input.latents"].to(dtype)
        result["vae_decode_s"], video = _median_time(
            lambda: vae.decode(w, cfg, z), args.repeats)
        errors["vae"] = _rel(video, io["expected.video"])
    if args.check:
        result["max_rel_err_vs_expected"] = errors
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
