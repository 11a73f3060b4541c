#!/usr/bin/env python3
"""Self-checks of the independent Wan2.1 reference (tools/reference/wan_ref):
golden schedule timesteps, the umT5 bucket table, padded+masked umT5 equal to
trimmed, chunked VAE equal to one-shot (decode and encode, several lengths),
the DiT against the earlier independent wan_dit_reference.py, RoPE layout,
UniPC branches and convergence order, every case file's names/shapes/health,
and spm_golden.py on a SentencePiece model trained here.

  /usr/bin/python3 tools/reference/wan_reference_selftest.py [-k NAME]

Exit status 0 when every check passes.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import traceback

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import wan_reference as R  # noqa: E402
from wan_ref import (dit, safetensors_io, schedule, umt5, unipc,  # noqa: E402
                     vae)

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


# ---------------------------------------------------------------- schedule
@check
def golden_timesteps():
    t, s = schedule.wan_schedule(50, 5.0)
    assert t[:6].tolist() == [999, 995, 991, 987, 982, 978], t[:6]
    assert t[-4:].tolist() == [302, 241, 172, 92], t[-4:]
    assert abs(s[0].item() - 0.9997998) < 1e-7 and \
        abs(s[49].item() - 0.0925069) < 1e-7 and s[50].item() == 0.0, s
    t, _ = schedule.wan_schedule(50, 3.0)
    assert t[:6].tolist() == [999, 992, 985, 978, 971, 963], t[:6]
    assert t[-4:].tolist() == [206, 160, 111, 57], t[-4:]
    t, s = schedule.wan_schedule(4, 5.0)
    assert t.tolist() == [999, 937, 833, 624], t
    assert t.dtype == torch.int64 and s.dtype == torch.float64
    # the solver's sigmas are float32 values
    assert all(float(torch.tensor(v, dtype=torch.float32)) == v
               for v in s.tolist())
    assert schedule.SIGMA_MAX == 0.9990000128746033


# ---------------------------------------------------------------- umT5
@check
def t5_bucket_table():
    f = {}
    for lo, hi, b in [(8, 11, 8), (12, 15, 9), (16, 22, 10), (23, 31, 11),
                      (32, 45, 12), (46, 63, 13), (64, 90, 14),
                      (91, 400, 15)]:
        for n in range(lo, hi + 1):
            f[n] = b
    for n in range(8):
        f[n] = n
    rel_pos = torch.arange(-400, 401)
    got = umt5.relative_bucket(rel_pos, 32, 128).tolist()
    for r, g in zip(rel_pos.tolist(), got):
        want = (16 if r > 0 else 0) + f[abs(r)]
        assert g == want, f"rel {r}: bucket {g}, want {want}"
    assert umt5.relative_bucket(torch.arange(1, 8)).tolist() == \
        list(range(17, 24))
    assert umt5.relative_bucket(torch.tensor([0])).item() == 0


@check
def t5_padded_equals_trimmed():
    gen = torch.Generator().manual_seed(1)
    cfg = R.T5_CONFIG
    w = R.f64(R.random_weights(umt5.weight_shapes(cfg), gen))
    ids = [R.random_ids(gen, n, cfg["vocab"]) for n in (100, 5, 1, 128)]
    a = umt5.encode_context(w, cfg, ids, cfg["text_len"])
    b = umt5.encode_context_padded(w, cfg, ids, cfg["text_len"])
    assert rel(a, b) < 1e-12, rel(a, b)
    assert a[1, 5:].abs().max() == 0 and a[1, :5].abs().min() > 0


@check
def t5_no_attention_scale_and_bias_used():
    # Changing one layer's relative bias table changes the output: the bias
    # is per layer; scaling q by s and k by 1/s leaves it unchanged.
    gen = torch.Generator().manual_seed(2)
    cfg = R.T5_CONFIG
    w = R.f64(R.random_weights(umt5.weight_shapes(cfg), gen))
    ids = R.random_ids(gen, 20, cfg["vocab"])[None]
    base = umt5.encode(w, cfg, ids)
    w2 = dict(w)
    w2["blocks.1.pos_embedding.embedding.weight"] = \
        w["blocks.1.pos_embedding.embedding.weight"] + 1.0 * \
        torch.arange(32, dtype=torch.float64)[:, None]
    assert rel(umt5.encode(w2, cfg, ids), base) > 1e-3
    w3 = dict(w)
    w3["blocks.0.attn.q.weight"] = w["blocks.0.attn.q.weight"] * 2
    w3["blocks.0.attn.k.weight"] = w["blocks.0.attn.k.weight"] / 2
    assert rel(umt5.encode(w3, cfg, ids), base) < 1e-12


# ---------------------------------------------------------------- VAE
@check
def vae_structure():
    s = vae.weight_shapes(R.VAE_CONFIG)
    dims, plan = vae.decoder_plan(R.VAE_CONFIG)
    assert dims == [32, 32, 32, 16, 8], dims
    kinds = {i: k for i, k, _, _ in plan}
    assert [i for i, k in kinds.items() if k != "res"] == [3, 7, 11]
    assert kinds[3] == kinds[7] == "up3d" and kinds[11] == "up2d"
    assert s["decoder.upsamples.4.shortcut.weight"] == [32, 16, 1, 1, 1]
    assert s["decoder.upsamples.3.time_conv.weight"] == [64, 32, 3, 1, 1]
    assert s["decoder.upsamples.11.resample.1.weight"] == [8, 16, 3, 3]
    assert s["decoder.middle.1.norm.gamma"] == [32, 1, 1]
    assert s["decoder.head.2.weight"] == [3, 8, 3, 3, 3]
    _, eplan = vae.encoder_plan(R.VAE_CONFIG)
    assert [(i, k) for i, k, _, _ in eplan if k != "res"] == \
        [(2, "down2d"), (5, "down3d"), (8, "down3d")]
    assert s["encoder.head.2.weight"] == [32, 32, 3, 3, 3]
    assert len([k for k in s if k.startswith("decoder.")]) > 0
    # base 96 has Wan2.1_VAE.pth's 194 tensors
    full = vae.weight_shapes(dict(R.VAE_CONFIG, base_dim=96))
    assert len(full) == 194, len(full)
    assert full["decoder.conv1.weight"] == [384, 16, 3, 3, 3]
    n = sum(math.prod(v) for v in full.values())
    assert abs(n - 126.9e6) < 0.1e6, n


@check
def vae_chunked_equals_one_shot():
    gen = torch.Generator().manual_seed(3)
    cfg = R.VAE_CONFIG
    w = R.f64(R.random_weights(vae.weight_shapes(cfg), gen, R.vae_gain))
    for t in (1, 2, 3, 4, 5):
        z = torch.randn(1, 16, t, 2, 3, generator=gen).double()
        a = vae.decode(w, cfg, z, chunked=True)
        b = vae.decode(w, cfg, z, chunked=False)
        assert a.shape == (1, 3, 1 + 4 * (t - 1), 16, 24), a.shape
        assert rel(a, b) < 1e-12, (t, rel(a, b))
    for k in (0, 1, 2, 3):
        x = (torch.rand(1, 3, 1 + 4 * k, 16, 24, generator=gen) * 2 - 1)
        a = vae.encode(w, cfg, x.double(), chunked=True)
        b = vae.encode(w, cfg, x.double(), chunked=False)
        assert a.shape == (1, 16, 1 + k, 2, 3), a.shape
        assert rel(a, b) < 1e-12, (k, rel(a, b))


@check
def vae_rep_rule_matters():
    # Running time_conv on chunk 0 (instead of Wan's "Rep" skip) would give
    # 2 frames for the first latent frame; zero history in chunk 1 vs a
    # repeated frame would change frames 1..4. Pin both against the cache.
    gen = torch.Generator().manual_seed(4)
    cfg = R.VAE_CONFIG
    w = R.f64(R.random_weights(vae.weight_shapes(cfg), gen, R.vae_gain))
    z = torch.randn(1, 16, 3, 2, 3, generator=gen).double()
    x = torch.nn.functional.conv3d(z, w["conv2.weight"], w["conv2.bias"])
    cache = {}
    outs = [vae.decoder3d(w, cfg, x[:, :, i:i + 1], cache) for i in range(3)]
    assert [o.shape[2] for o in outs] == [1, 4, 4]
    assert cache["decoder.upsamples.3.time_conv"].shape[2] == 2
    # The real cache from chunk 1 on matters: chunk 2 decoded fresh differs.
    fresh = vae.decoder3d(w, cfg, x[:, :, 2:3], {})
    assert fresh.shape[2] == 1 and rel(fresh[:, :, 0], outs[2][:, :, 0]) > 1e-3


# ---------------------------------------------------------------- DiT
@check
def dit_matches_earlier_reference():
    import wan_dit_reference as old
    gen = torch.Generator().manual_seed(5)
    cfg = R.DIT_CONFIG
    w = R.random_weights(dit.weight_shapes(cfg), gen)
    x = torch.randn(1, 16, 3, 6, 8, generator=gen)
    t = torch.tensor([937])
    ctx = R.padded_context(gen, 9, cfg)
    new = dit.forward(R.f64(w), cfg, x.double(), t, ctx.double())
    ocfg = {"num_heads": cfg["heads"], "dim": cfg["dim"], "eps": 1e-6,
            "patch": cfg["patch"], "coordinate_planes": False,
            "freq_dim": cfg["freq_dim"], "num_layers": cfg["layers"],
            "out_channels": cfg["out_dim"]}
    ref = old.WanDiT(ocfg, w, torch.device("cpu"), torch.float32).forward(
        x, t, ctx)
    assert rel(ref, new) < 1e-5, rel(ref, new)
    assert len([k for k in w if k.startswith("blocks.0.")]) == 27


@check
def dit_rope_layout():
    ang = dit.rope_angles((3, 3, 4), 16)  # widths 8 / 4 / 4
    f, h, wi = 2, 1, 3
    row = ang[(f * 3 + h) * 4 + wi]
    want = [f / 10000 ** (2 * i / 8) for i in range(4)] + \
        [h / 10000 ** (2 * i / 4) for i in range(2)] + \
        [wi / 10000 ** (2 * i / 4) for i in range(2)]
    assert torch.allclose(row, torch.tensor(want, dtype=torch.float64))
    x = torch.zeros(1, 36, 1, 16, dtype=torch.float64)
    x[..., 0] = 1.0  # pair 0 = (1, 0) -> (cos a, sin a)
    y = dit.apply_rope(x, ang)
    assert torch.allclose(y[0, :, 0, 0], torch.cos(ang[:, 0]))
    assert torch.allclose(y[0, :, 0, 1], torch.sin(ang[:, 0]))


# ---------------------------------------------------------------- samplers
def _gaussian_toy(n, shift, solver):
    """Max error at sigma = 0 on x0 ~ N(mu, s^2), whose flow ODE is exact."""
    mu, s = 0.7, 0.5
    ts, sg = schedule.wan_schedule(n, shift)
    sig = [float(v) for v in sg]

    def a(v):
        return math.sqrt((1 - v) ** 2 * s * s + v * v)
    calls = [0]

    def velocity(x, t):
        v = sig[calls[0]]
        calls[0] += 1
        z = (x - (1 - v) * mu) / a(v)
        return -mu + (-(1 - v) * s * s + v) / a(v) * z
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)
    exact = mu + s * (x - (1 - sig[0]) * mu) / a(sig[0])
    out = (unipc.unipc(velocity, x, ts, sg) if solver == "unipc"
           else schedule.euler(velocity, x, ts, sg))
    assert calls[0] == n
    return (out - exact).abs().max().item()


@check
def sampler_convergence_order():
    for solver, lo, hi in (("unipc", 1.8, 2.4), ("euler", 0.9, 1.1)):
        e = [_gaussian_toy(n, 1.0, solver) for n in (100, 200, 400)]
        orders = [math.log2(e[i] / e[i + 1]) for i in range(2)]
        assert all(lo <= o <= hi for o in orders), (solver, e, orders)


@check
def unipc_branches():
    trace = []
    calls = []

    def velocity(x, t):
        calls.append(int(t))
        return torch.zeros_like(x)
    ts, sg = schedule.wan_schedule(4, 5.0)
    x = torch.ones(3, dtype=torch.float64)
    out = unipc.unipc(velocity, x, ts, sg, trace)
    # (step, corrector order, predictor order); the last step lands on 0
    assert trace == [(0, 0, 1), (1, 1, 2), (2, 2, 2), (3, 2, 1)], trace
    assert calls == [999, 937, 833, 624]
    # v = 0 means x0 = x everywhere: every branch must keep x fixed.
    assert rel(out, x) < 1e-12
    trace = []
    unipc.unipc(velocity, x, *schedule.wan_schedule(1, 5.0), trace)
    assert trace == [(0, 0, 1)]


@check
def unipc_one_step_is_x0():
    # N = 1: x_1 = m_0 = x - sigma_0 v.
    ts, sg = schedule.wan_schedule(1, 5.0)
    x = torch.randn(5, dtype=torch.float64)
    v = torch.randn(5, dtype=torch.float64)
    out = unipc.unipc(lambda y, t: v, x, ts, sg)
    assert rel(out, x - float(sg[0]) * v) < 1e-15


# ---------------------------------------------------------------- cases
CONTRACT = {
    "t5": {"input.ids.0": ("I64", [100]), "input.ids.1": ("I64", [5]),
           "expected.context": ("F32", [2, 128, 32])},
    "vae": {"input.latents": ("F32", [1, 16, 4, 4, 6]),
            "input.video": ("F32", [1, 3, 13, 32, 48]),
            "expected.video": ("F32", [1, 3, 13, 32, 48]),
            "expected.latents": ("F32", [1, 16, 4, 4, 6])},
    "dit": {"input.latents": ("F32", [1, 16, 3, 6, 8]),
            "input.timestep": ("I64", [1]),
            "input.context": ("F32", [1, 128, 32]),
            "expected.velocity": ("F32", [1, 16, 3, 6, 8])},
    "unipc": {"input.noise": ("F32", [1, 16, 3, 6, 8]),
              "input.cond_context": ("F32", [1, 128, 32]),
              "input.uncond_context": ("F32", [1, 128, 32]),
              "expected.timesteps": ("I64", [4]),
              "expected.sigmas": ("F64", [5]),
              "expected.latents": ("F32", [1, 16, 3, 6, 8])},
    "pipeline": {"input.cond_ids": ("I64", None),
                 "input.uncond_ids": ("I64", None),
                 "expected.timesteps": ("I64", [4]),
                 "expected.video": ("F32", [9, 32, 48, 3])},
}
CONTRACT["unipc_euler"] = CONTRACT["unipc"]
_DT = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}


@check
def case_files():
    with tempfile.TemporaryDirectory() as d:
        results = {}
        for case in R.CASES:
            path = os.path.join(d, case + ".safetensors")
            subprocess.run([sys.executable, os.path.join(HERE,
                                                         "wan_reference.py"),
                            case, "--out", path, "--seed", "7"],
                           check=True, stdout=subprocess.DEVNULL)
            tensors, meta = safetensors_io.read(path)
            results[case] = tensors
            cfg = json.loads(meta["config"])
            assert meta["case"] == case and meta["seed"] == "7"
            io = {k: v for k, v in tensors.items()
                  if k.startswith(("input.", "expected."))}
            assert set(io) == set(CONTRACT[case]), (case, sorted(io))
            for k, (dt, shape) in CONTRACT[case].items():
                assert _DT[io[k].dtype] == dt, (case, k, io[k].dtype)
                assert shape is None or list(io[k].shape) == shape, (case, k)
            weights = {k: v for k, v in tensors.items() if k not in io}
            assert all(v.dtype == torch.float32 for v in weights.values())
            for k, v in weights.items():  # every weight randomised
                assert v.std() > 0 and not torch.all(v == 1), (case, k)
            for k, v in io.items():
                if k.startswith("expected.") and v.is_floating_point():
                    assert torch.isfinite(v).all() and v.abs().max() > 0.1, k
            if case == "t5":
                assert cfg == R.T5_CONFIG
                ctx = io["expected.context"]
                assert ctx[1, 5:].abs().max() == 0 and \
                    ctx[0, 100:].abs().max() == 0
                assert all(io[f"input.ids.{i}"][-1] == 1 for i in (0, 1))
            if case == "vae":
                v = io["expected.video"]
                inside = (v.abs() < 1).float().mean().item()
                assert inside > 0.8, inside
            if case in ("unipc", "unipc_euler"):
                assert cfg["dit"] == R.DIT_CONFIG and cfg["num_steps"] == 4
                assert io["expected.timesteps"].tolist() == [999, 937, 833,
                                                             624]
                assert (io["input.cond_context"][0, 11:] == 0).all() and \
                    (io["input.cond_context"][0, 10] != 0).all()
                assert (io["input.uncond_context"][0, 7:] == 0).all()
            if case == "pipeline":
                assert cfg["t5"] == R.T5_CONFIG and cfg["vae"] == R.VAE_CONFIG
                assert cfg["seed"] == 42 and cfg["frames"] == 9
                assert {k.split(".")[0] for k in weights} == {"t5", "dit",
                                                              "vae"}
                v = io["expected.video"]
                inside = ((v > 0) & (v < 1)).float().mean().item()
                assert inside > 0.8 and v.std() > 0.05, (inside, v.std())
                assert len(io["input.cond_ids"]) != len(io["input.uncond_ids"])
        # UniPC and Euler are different solvers on the same problem.
        a = results["unipc"]["expected.latents"]
        b = results["unipc_euler"]["expected.latents"]
        assert rel(a, b) > 1e-3, rel(a, b)


@check
def safetensors_round_trip():
    t = {"a": torch.arange(6, dtype=torch.int64).view(2, 3),
         "b": torch.randn(3, dtype=torch.float64),
         "c": torch.randn(2, 2).to(torch.bfloat16),
         "d": torch.randn(5).half(), "e": torch.tensor([1, -2],
                                                       dtype=torch.int32)}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.safetensors")
        safetensors_io.write(path, t, {"k": "v"})
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
        assert n % 8 == 0
        back, meta = safetensors_io.read(path)
    assert meta == {"k": "v"}
    for k in t:
        assert back[k].dtype == t[k].dtype and torch.equal(back[k], t[k]), k


# ---------------------------------------------------------------- tokenizer
@check
def spm_golden_script():
    import sentencepiece as spm
    text = ("a little cat walks on the grass under a bright blue sky\n"
            "two dogs play with a red ball in the park at sunset\n"
            "the camera slowly pans across a quiet city street at night\n"
            ) * 40
    with tempfile.TemporaryDirectory() as d:
        corpus = os.path.join(d, "corpus.txt")
        with open(corpus, "w") as f:
            f.write(text)
        prefix = os.path.join(d, "m")
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=prefix, vocab_size=40,
            model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
            minloglevel=2)
        prompts = os.path.join(d, "prompts.txt")
        lines = ["a cat plays in the park", "", "  two   dogs  ",
                 "sky " * 100]
        with open(prompts, "w") as f:
            f.write("\n".join(lines) + "\n")
        out = subprocess.run(
            [sys.executable, os.path.join(HERE, "spm_golden.py"), "--model",
             prefix + ".model", "--prompts", prompts, "--max_length", "16"],
            check=True, capture_output=True, text=True).stdout.splitlines()
        sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    assert len(out) == len(lines), out
    for line, got in zip(lines, out):
        ids = [int(i) for i in got.split()]
        assert ids[-1] == 1 and len(ids) <= 16, got
        assert ids[:-1] == sp.encode(line)[:15], (line, got)
    assert out[1] == "1"  # empty prompt -> just </s>
    assert len(out[3].split()) == 16  # truncated to max_length incl. </s>


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", default="", help="run checks whose name contains")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    failed = 0
    for fn in CHECKS:
        if args.k not in fn.__name__:
            continue
        try:
            with torch.no_grad():
                fn()
            print(f"PASS {fn.__name__}")
        except Exception:  # noqa: BLE001 - report every failing check
            failed += 1
            print(f"FAIL {fn.__name__}")
            traceback.print_exc()
    print("all checks passed" if not failed else f"{failed} check(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
