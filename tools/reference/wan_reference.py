#!/usr/bin/env python3
"""Writes one Wan2.1 reference case as a safetensors file for the C++ checkers.

  /usr/bin/python3 tools/reference/wan_reference.py CASE --out FILE.safetensors [--seed N]

CASE is one of t5, vae, dit, unipc, unipc_euler, pipeline (the contract in
/work/notes/wan_contract.md; configs from wan21_pipeline.md §5). The file holds
- the component's random weights under the original Wan names (float32, every
  weight randomised: norm gains, the VAE attention `proj`, DiT `head.head`),
  scaled so activations stay O(1);
- inputs as `input.<name>`, reference outputs as `expected.<name>`;
- `__metadata__`: {"config": JSON string of the case config, "case": CASE,
  "seed": N, "note": what the expected tensors are};
- with --debug only: intermediates as `debug.<name>` (float32) to find where
  a C++ run departs (unipc/unipc_euler: debug.sample.i = x after step i;
  pipeline: debug.context [2, text_len, dim] (cond, uncond), debug.noise,
  debug.sample.i, debug.latents).
The reference (tools/reference/wan_ref, written from the reference documents,
not from the C++) computes in float64 from the float32 weights and inputs as
stored; expected outputs are rounded to float32 once at the end (timesteps
int64, sigmas float64), so its own rounding (~6e-8) is negligible next to the
1e-4 tolerance of the float32 C++ checks.
"""

import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wan_ref import dit, pipeline, safetensors_io, schedule, umt5, unipc, vae  # noqa: E402,E501

T5_CONFIG = {"vocab": 300, "dim": 32, "heads": 4, "head_dim": 8,
             "ffn_dim": 48, "layers": 2, "num_buckets": 32,
             "max_distance": 128, "text_len": 128}
VAE_CONFIG = {"base_dim": 8, "z_dim": 16, "dim_mult": [1, 2, 4, 4],
              "num_res_blocks": 2,
              "temporal_downsample": [False, True, True]}
DIT_CONFIG = {"dim": 64, "heads": 4, "ffn_dim": 128, "layers": 2,
              "freq_dim": 256, "text_dim": 32, "text_len": 128, "in_dim": 16,
              "out_dim": 16, "patch": [1, 2, 2]}
SAMPLER_CONFIG = {"num_steps": 4, "shift": 5.0, "guidance": 5.0}
PIPELINE_EXTRA = {"num_steps": 4, "shift": 5.0, "guidance": 5.0, "seed": 42,
                  "frames": 9, "height": 32, "width": 48}


def random_weights(shapes, gen, gain_of=None):
    """float32 weights: gains (norm weights, gamma) U(0.5, 1.5); other 1-D
    tensors (biases) N(0, 0.1^2); embeddings N(0, 1); matrices and conv
    kernels N(0, gain^2 / fan_in) with gain_of(name) (default 1)."""
    out = {}
    for name in sorted(shapes):
        shape = shapes[name]
        leaf = name.rsplit(".", 1)[-1]
        is_gain = leaf == "gamma" or (leaf == "weight" and "norm" in name)
        if is_gain:
            t = 0.5 + torch.rand(shape, generator=gen)
        elif name.endswith("token_embedding.weight") or "pos_embedding" in name:
            t = torch.randn(shape, generator=gen)
        elif leaf == "bias" or len(shape) == 1:
            t = 0.1 * torch.randn(shape, generator=gen)
        else:
            fan_in = math.prod(shape[1:])
            g = gain_of(name) if gain_of else 1.0
            t = torch.randn(shape, generator=gen) * (g / math.sqrt(fan_in))
        out[name] = t.float()
    return out


def f64(weights):
    return {k: v.double() for k, v in weights.items()}


def random_ids(gen, n, vocab):
    """n token ids, the last </s> = 1, the others in [2, vocab)."""
    ids = torch.randint(2, vocab, (n,), generator=gen, dtype=torch.int64)
    ids[-1] = 1
    return ids


# ---------------------------------------------------------------- cases
def case_t5(seed, debug=False):
    gen = torch.Generator().manual_seed(seed)
    cfg = T5_CONFIG
    w = random_weights(umt5.weight_shapes(cfg), gen)
    ids = [random_ids(gen, 100, cfg["vocab"]), random_ids(gen, 5, cfg["vocab"])]
    ctx = umt5.encode_context(f64(w), cfg, ids, cfg["text_len"])
    tensors = dict(w)
    tensors["input.ids.0"], tensors["input.ids.1"] = ids
    tensors["expected.context"] = ctx.float()
    note = ("expected.context[i] = umT5(input.ids.i) on its real tokens, "
            "trimmed to its length, zero-padded to text_len")
    return cfg, tensors, note


def vae_gain(name):
    # The output convs of the residual branches and the attention projection
    # at 0.5 keep the residual stream from growing stage after stage.
    if name.endswith("residual.6.weight") or name.endswith("proj.weight"):
        return 0.5
    return 1.0


def case_vae(seed, debug=False, vae_base_dim=None):
    gen = torch.Generator().manual_seed(seed)
    cfg = dict(VAE_CONFIG)
    if vae_base_dim:  # benchmarks only: Wan's real VAE has base_dim 96
        cfg["base_dim"] = vae_base_dim
    w = random_weights(vae.weight_shapes(cfg), gen, vae_gain)
    latents = torch.randn(1, 16, 4, 4, 6, generator=gen)
    video = torch.rand(1, 3, 13, 32, 48, generator=gen) * 2 - 1
    w64 = f64(w)
    tensors = dict(w)
    tensors["input.latents"] = latents
    tensors["input.video"] = video
    tensors["expected.video"] = vae.decode(w64, cfg, latents.double()).float()
    tensors["expected.latents"] = vae.encode(w64, cfg, video.double()).float()
    note = ("expected.video = clamp(decode(input.latents*std+mean), -1, 1), "
            "chunked decode; expected.latents = (mu(input.video)-mean)/std")
    return cfg, tensors, note


def padded_context(gen, n, cfg):
    """[1, text_len, text_dim]: n rows N(0, 1) (like umT5 outputs), the
    rest zero (Wan's zero padding)."""
    ctx = torch.zeros(1, cfg["text_len"], cfg["text_dim"])
    ctx[0, :n] = torch.randn(n, cfg["text_dim"], generator=gen)
    return ctx


def case_dit(seed, debug=False):
    gen = torch.Generator().manual_seed(seed)
    cfg = DIT_CONFIG
    w = random_weights(dit.weight_shapes(cfg), gen)
    latents = torch.randn(1, 16, 3, 6, 8, generator=gen)
    timestep = torch.tensor([833], dtype=torch.int64)
    context = padded_context(gen, 13, cfg)
    tensors = dict(w)
    tensors["input.latents"] = latents
    tensors["input.timestep"] = timestep
    tensors["input.context"] = context
    tensors["expected.velocity"] = dit.forward(
        f64(w), cfg, latents.double(), timestep, context.double()).float()
    note = ("expected.velocity = DiT(input.latents, input.timestep, "
            "input.context); context has 13 real rows, the rest zero")
    return cfg, tensors, note


def _sampler_case(seed, solver, debug):
    gen = torch.Generator().manual_seed(seed)
    cfg = dict(SAMPLER_CONFIG)
    cfg.update(DIT_CONFIG)  # flat, and nested under "dit" as in pipeline
    cfg["dit"] = dict(DIT_CONFIG)
    cfg["solver"] = solver
    w = random_weights(dit.weight_shapes(DIT_CONFIG), gen)
    noise = torch.randn(1, 16, 3, 6, 8, generator=gen)
    cond = padded_context(gen, 11, DIT_CONFIG)
    uncond = padded_context(gen, 7, DIT_CONFIG)
    trace = []
    samples = []
    timesteps, sigmas, latents = pipeline.sample(
        f64(w), DIT_CONFIG, noise.double(), cond.double(), uncond.double(),
        cfg["num_steps"], cfg["shift"], cfg["guidance"], solver, trace,
        samples)
    tensors = dict(w)
    tensors["input.noise"] = noise
    tensors["input.cond_context"] = cond
    tensors["input.uncond_context"] = uncond
    tensors["expected.timesteps"] = timesteps
    tensors["expected.sigmas"] = sigmas
    tensors["expected.latents"] = latents.float()
    if debug:
        for i, x in enumerate(samples):
            tensors[f"debug.sample.{i}"] = x.float()
    note = (f"expected.latents = {solver} over Wan's schedule (N=4, shift 5) "
            "from x = input.noise with v = v_u + g (v_c - v_u); "
            "expected.sigmas = the float32 sigmas the solver uses (sigma_N = "
            "0), widened to float64; expected.timesteps = int64(1000 sigma)")
    if trace:
        note += "; steps (i, corrector order, predictor order): " + \
            ", ".join(str(t) for t in trace)
    return cfg, tensors, note


def case_unipc(seed, debug=False):
    return _sampler_case(seed, "unipc", debug)


def case_unipc_euler(seed, debug=False):
    return _sampler_case(seed, "euler", debug)


def case_pipeline(seed, debug=False):
    gen = torch.Generator().manual_seed(seed)
    cfg = {"t5": dict(T5_CONFIG), "dit": dict(DIT_CONFIG),
           "vae": dict(VAE_CONFIG), "solver": "unipc"}
    cfg.update(PIPELINE_EXTRA)
    tw = random_weights(umt5.weight_shapes(T5_CONFIG), gen)
    dw = random_weights(dit.weight_shapes(DIT_CONFIG), gen)
    vw = random_weights(vae.weight_shapes(VAE_CONFIG), gen, vae_gain)
    cond_ids = random_ids(gen, 11, T5_CONFIG["vocab"])
    uncond_ids = random_ids(gen, 7, T5_CONFIG["vocab"])
    inter = {} if debug else None
    timesteps, video, _ = pipeline.generate(
        f64(tw), T5_CONFIG, f64(dw), DIT_CONFIG, f64(vw), VAE_CONFIG,
        cond_ids, uncond_ids, cfg["num_steps"], cfg["shift"], cfg["guidance"],
        cfg["seed"], cfg["frames"], cfg["height"], cfg["width"], debug=inter)
    tensors = {}
    for prefix, w in (("t5.", tw), ("dit.", dw), ("vae.", vw)):
        tensors.update({prefix + k: v for k, v in w.items()})
    tensors["input.cond_ids"] = cond_ids
    tensors["input.uncond_ids"] = uncond_ids
    tensors["expected.timesteps"] = timesteps
    tensors["expected.video"] = video.float()
    for k, v in (inter or {}).items():
        tensors["debug." + k] = v.float()
    note = ("expected.video [F, H, W, 3] = (clamp(VAE(UniPC(DiT+CFG, noise, "
            "umT5(cond), umT5(uncond))), -1, 1) + 1) / 2, noise = "
            "torch.randn([16, T, H/8, W/8], generator=torch.Generator()"
            ".manual_seed(seed)) float32")
    return cfg, tensors, note


CASES = {"t5": case_t5, "vae": case_vae, "dit": case_dit,
         "unipc": case_unipc, "unipc_euler": case_unipc_euler,
         "pipeline": case_pipeline}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--out", required=True, help="output .safetensors path")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the weights and inputs (default 0)")
    ap.add_argument("--debug", action="store_true",
                    help="also write intermediates as debug.* tensors")
    ap.add_argument("--vae_base_dim", type=int, default=None,
                    help="vae case only, for benchmarks: the VAE's base "
                    "width (contract: 8; Wan2.1's VAE: 96)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    with torch.no_grad():
        kwargs = {}
        if args.vae_base_dim is not None:
            if args.case != "vae" or args.vae_base_dim < 1:
                ap.error("--vae_base_dim: vae case only, >= 1")
            kwargs["vae_base_dim"] = args.vae_base_dim
        cfg, tensors, note = CASES[args.case](args.seed, args.debug, **kwargs)
    meta = {"config": json.dumps(cfg, sort_keys=True), "case": args.case,
            "seed": str(args.seed), "note": note}
    safetensors_io.write(args.out, tensors, meta)
    for name in sorted(tensors):
        if name.startswith("expected."):
            t = tensors[name]
            print(f"{name} {t.dtype} {list(t.shape)}")
    print(f"wrote {args.out}: case {args.case}, seed {args.seed}, "
          f"{len(tensors)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
