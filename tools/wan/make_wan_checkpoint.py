#!/usr/bin/python3
"""Writes a random-weight Wan2.1 text-to-video checkpoint in either layout.

Run with Debian's interpreter (python3-torch 1.13; nothing else):

  /usr/bin/python3 tools/wan/make_wan_checkpoint.py --out=DIR \
      --layout=wan|diffusers|both --preset=tiny|1.3b [--seed=0] \
      [--dtype=bf16|fp16|fp32] [--shard_mb=N] --spiece=PATH/spiece.model \
      [--dit_dim=.. --dit_heads=.. --dit_ffn=.. --dit_layers=.. --text_len=..]
      [--t5_vocab=.. --t5_dim=.. --t5_heads=.. --t5_head_dim=.. --t5_ffn=..
       --t5_layers=..] [--vae_base=..]

--layout=both writes DIR/wan and DIR/diffusers from the SAME weights.

Layouts (what LoadWanCheckpoint in worker/models/checkpoint reads):
  wan:       config.json (_class_name WanModel), diffusion_pytorch_model.
             safetensors (or -0000k-of-0000n shards + .index.json),
             models_t5_umt5-xxl-enc-bf16.pth and Wan2.1_VAE.pth (real
             torch.save of an OrderedDict), google/umt5-xxl/spiece.model
  diffusers: model_index.json, transformer/ (config.json + diffusion_pytorch_
             model*.safetensors), text_encoder/ (UMT5EncoderModel config.json +
             model*.safetensors), tokenizer/spiece.model, vae/ (config.json +
             diffusion_pytorch_model.safetensors), scheduler/scheduler_config.json

Every weight is random (norm gains, DiT head.head and the VAE attention proj
included, which Wan zero-initialises). The .pth name says bf16 whatever
--dtype is, as Wan's loader expects that file name.

Sizes: --preset=tiny is the contract's `pipeline` config (T5 vocab 300, dim
32, 4x8 heads, ffn 48, 2 layers; DiT dim 64, 4 heads, ffn 128, 2 layers,
text_dim 32, text_len 128; VAE base 8). --preset=1.3b is Wan2.1-T2V-1.3B
(DiT 1.42 B params, umT5-XXL, VAE base 96); the real umT5-XXL is 11 GB in
bf16, so --t5_layers (and --t5_vocab) shrink ONLY the text encoder for a
real-size DiT/VAE check; such a checkpoint has a real-size DiT and VAE but not
a real text encoder.
text_len is not part of diffusers' transformer config (WanPipeline's
max_sequence_length is 512); when it differs from 512 this tool adds
"text_len" to transformer/config.json, which dserve reads.
"""

import argparse
import collections
import json
import math
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_writer  # noqa: E402

VAE_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517,
            1.5508, 0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497,
            0.2503, -0.2921]
VAE_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
           3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]

PRESETS = {
    "tiny": dict(dit_dim=64, dit_heads=4, dit_ffn=128, dit_layers=2,
                 text_len=128, t5_vocab=300, t5_dim=32, t5_heads=4,
                 t5_head_dim=8, t5_ffn=48, t5_layers=2, vae_base=8),
    "1.3b": dict(dit_dim=1536, dit_heads=12, dit_ffn=8960, dit_layers=30,
                 text_len=512, t5_vocab=256384, t5_dim=4096, t5_heads=64,
                 t5_head_dim=64, t5_ffn=10240, t5_layers=24, vae_base=96),
}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


# ---- Wan names and shapes (wan21.md, wan21_pipeline.md §1-§3) -------------

def dit_shapes(c):
    d, t = c.dit_dim, c.t5_dim
    s = collections.OrderedDict()

    def linear(name, out, inp):
        s[name + ".weight"] = [out, inp]
        s[name + ".bias"] = [out]
    s["patch_embedding.weight"] = [d, 16, 1, 2, 2]
    s["patch_embedding.bias"] = [d]
    linear("text_embedding.0", d, t)
    linear("text_embedding.2", d, d)
    linear("time_embedding.0", d, 256)
    linear("time_embedding.2", d, d)
    linear("time_projection.1", 6 * d, d)
    for i in range(c.dit_layers):
        p = "blocks.%d." % i
        s[p + "modulation"] = [1, 6, d]
        for attn in ("self_attn", "cross_attn"):
            for proj in "qkvo":
                linear(p + attn + "." + proj, d, d)
            s[p + attn + ".norm_q.weight"] = [d]
            s[p + attn + ".norm_k.weight"] = [d]
        s[p + "norm3.weight"] = [d]
        s[p + "norm3.bias"] = [d]
        linear(p + "ffn.0", c.dit_ffn, d)
        linear(p + "ffn.2", d, c.dit_ffn)
    s["head.modulation"] = [1, 2, d]
    linear("head.head", 16 * 4, d)
    return s


def t5_shapes(c):
    d, inner = c.t5_dim, c.t5_heads * c.t5_head_dim
    s = collections.OrderedDict()
    s["token_embedding.weight"] = [c.t5_vocab, d]
    for i in range(c.t5_layers):
        p = "blocks.%d." % i
        s[p + "norm1.weight"] = [d]
        for proj in "qkv":
            s[p + "attn.%s.weight" % proj] = [inner, d]
        s[p + "attn.o.weight"] = [d, inner]
        s[p + "norm2.weight"] = [d]
        s[p + "ffn.gate.0.weight"] = [c.t5_ffn, d]
        s[p + "ffn.fc1.weight"] = [c.t5_ffn, d]
        s[p + "ffn.fc2.weight"] = [d, c.t5_ffn]
        s[p + "pos_embedding.embedding.weight"] = [32, c.t5_heads]
    s["norm.weight"] = [d]
    return s


def vae_shapes(base, z=16, dim_mult=(1, 2, 4, 4), num_res_blocks=2,
               temporal_down=(False, True, True)):
    s = collections.OrderedDict()

    def conv3d(name, out, inp, k):
        s[name + ".weight"] = [out, inp] + list(k)
        s[name + ".bias"] = [out]

    def rb(p, inp, out):
        s[p + "residual.0.gamma"] = [inp, 1, 1, 1]
        conv3d(p + "residual.2", out, inp, (3, 3, 3))
        s[p + "residual.3.gamma"] = [out, 1, 1, 1]
        conv3d(p + "residual.6", out, out, (3, 3, 3))
        if inp != out:
            conv3d(p + "shortcut", out, inp, (1, 1, 1))

    def attn(p, dim):
        s[p + "norm.gamma"] = [dim, 1, 1]
        conv3d(p + "to_qkv", 3 * dim, dim, (1, 1))
        conv3d(p + "proj", dim, dim, (1, 1))

    def resample(p, dim, mode):
        if mode.startswith("up"):
            conv3d(p + "resample.1", dim // 2, dim, (3, 3))
            if mode == "upsample3d":
                conv3d(p + "time_conv", 2 * dim, dim, (3, 1, 1))
        else:
            conv3d(p + "resample.1", dim, dim, (3, 3))
            if mode == "downsample3d":
                conv3d(p + "time_conv", dim, dim, (3, 1, 1))

    # Encoder3d
    dims = [base * u for u in [1] + list(dim_mult)]
    conv3d("encoder.conv1", dims[0], 3, (3, 3, 3))
    n = 0
    for i, (inp, out) in enumerate(zip(dims[:-1], dims[1:])):
        for _ in range(num_res_blocks):
            rb("encoder.downsamples.%d." % n, inp, out)
            inp = out
            n += 1
        if i != len(dim_mult) - 1:
            resample("encoder.downsamples.%d." % n, out,
                     "downsample3d" if temporal_down[i] else "downsample2d")
            n += 1
    rb("encoder.middle.0.", out, out)
    attn("encoder.middle.1.", out)
    rb("encoder.middle.2.", out, out)
    s["encoder.head.0.gamma"] = [out, 1, 1, 1]
    conv3d("encoder.head.2", 2 * z, out, (3, 3, 3))
    conv3d("conv1", 2 * z, 2 * z, (1, 1, 1))
    conv3d("conv2", z, z, (1, 1, 1))
    # Decoder3d
    temporal_up = list(temporal_down)[::-1]
    dims = [base * u for u in [dim_mult[-1]] + list(dim_mult)[::-1]]
    conv3d("decoder.conv1", dims[0], z, (3, 3, 3))
    rb("decoder.middle.0.", dims[0], dims[0])
    attn("decoder.middle.1.", dims[0])
    rb("decoder.middle.2.", dims[0], dims[0])
    n = 0
    for i, (inp, out) in enumerate(zip(dims[:-1], dims[1:])):
        if i in (1, 2, 3):
            inp = inp // 2
        for _ in range(num_res_blocks + 1):
            rb("decoder.upsamples.%d." % n, inp, out)
            inp = out
            n += 1
        if i != len(dim_mult) - 1:
            resample("decoder.upsamples.%d." % n, out,
                     "upsample3d" if temporal_up[i] else "upsample2d")
            n += 1
    s["decoder.head.0.gamma"] = [out, 1, 1, 1]
    conv3d("decoder.head.2", 3, out, (3, 3, 3))
    return s


def randomise(shapes, gen, dtype):
    """Every tensor random: gains ~ 1 + 0.1 N, biases ~ 0.02 N, matrices and
    kernels ~ N / sqrt(fan_in), embeddings ~ N."""
    out = collections.OrderedDict()
    for key, shape in shapes.items():
        last = key.rsplit(".", 1)[-1]
        if last == "gamma" or key.endswith("norm_q.weight") or \
                key.endswith("norm_k.weight") or \
                (("norm" in key) and len(shape) == 1 and last == "weight"):
            t = 1 + 0.1 * torch.randn(shape, generator=gen)
        elif last == "bias":
            t = 0.02 * torch.randn(shape, generator=gen)
        elif "embedding.weight" in key and "patch" not in key and \
                "text_embedding" not in key and "time_embedding" not in key:
            t = torch.randn(shape, generator=gen)
        elif key.endswith("modulation"):
            t = 0.1 * torch.randn(shape, generator=gen)
        else:
            fan_in = max(1, math.prod(shape[1:]))
            t = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
        out[key] = t.to(dtype)
    return out


# ---- Wan -> diffusers names (wan21_pipeline.md §1-§3) ---------------------

DIT_RENAMES = [
    ("text_embedding.0.", "condition_embedder.text_embedder.linear_1."),
    ("text_embedding.2.", "condition_embedder.text_embedder.linear_2."),
    ("time_embedding.0.", "condition_embedder.time_embedder.linear_1."),
    ("time_embedding.2.", "condition_embedder.time_embedder.linear_2."),
    ("time_projection.1.", "condition_embedder.time_proj."),
    ("head.head.", "proj_out."),
]
DIT_BLOCK_RENAMES = [
    ("self_attn.o.", "attn1.to_out.0."), ("cross_attn.o.", "attn2.to_out.0."),
    ("self_attn.norm_", "attn1.norm_"), ("cross_attn.norm_", "attn2.norm_"),
    ("self_attn.", "attn1.to_"), ("cross_attn.", "attn2.to_"),
    ("norm3.", "norm2."), ("ffn.0.", "ffn.net.0.proj."), ("ffn.2.", "ffn.net.2."),
    ("modulation", "scale_shift_table"),
]


def dit_to_diffusers(key):
    if key == "head.modulation":
        return "scale_shift_table"
    for a, b in DIT_RENAMES:
        if key.startswith(a):
            return b + key[len(a):]
    if key.startswith("blocks."):
        _, i, rest = key.split(".", 2)
        for a, b in DIT_BLOCK_RENAMES:
            if rest.startswith(a):
                return "blocks.%s.%s" % (i, b + rest[len(a):])
    return key  # patch_embedding.*


T5_BLOCK_RENAMES = {
    "norm1.weight": "layer.0.layer_norm.weight",
    "attn.q.weight": "layer.0.SelfAttention.q.weight",
    "attn.k.weight": "layer.0.SelfAttention.k.weight",
    "attn.v.weight": "layer.0.SelfAttention.v.weight",
    "attn.o.weight": "layer.0.SelfAttention.o.weight",
    "pos_embedding.embedding.weight":
        "layer.0.SelfAttention.relative_attention_bias.weight",
    "norm2.weight": "layer.1.layer_norm.weight",
    "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",
    "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",
    "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
}


def t5_to_diffusers(key):
    if key == "token_embedding.weight":
        return "shared.weight"
    if key == "norm.weight":
        return "encoder.final_layer_norm.weight"
    _, i, rest = key.split(".", 2)
    return "encoder.block.%s.%s" % (i, T5_BLOCK_RENAMES[rest])


RESIDUAL = {"residual.0": "norm1", "residual.2": "conv1", "residual.3": "norm2",
            "residual.6": "conv2", "shortcut": "conv_shortcut"}


def vae_residual(rest):
    for a, b in RESIDUAL.items():
        if rest.startswith(a + "."):
            return b + rest[len(a):]
    return rest  # resample.1.*, time_conv.*, norm.gamma, to_qkv.*, proj.*


def vae_to_diffusers(key):
    top = {"conv1.": "quant_conv.", "conv2.": "post_quant_conv."}
    for a, b in top.items():
        if key.startswith(a):
            return b + key[len(a):]
    coder, rest = key.split(".", 1)
    for a, b in (("conv1.", "conv_in."), ("head.0.", "norm_out."),
                 ("head.2.", "conv_out.")):
        if rest.startswith(a):
            return "%s.%s%s" % (coder, b, rest[len(a):])
    part, idx, inner = rest.split(".", 2)
    idx = int(idx)
    if part == "middle":
        if idx == 1:
            return "%s.mid_block.attentions.0.%s" % (coder, inner)
        return "%s.mid_block.resnets.%d.%s" % (coder, idx // 2,
                                               vae_residual(inner))
    if part == "downsamples":
        return "encoder.down_blocks.%d.%s" % (idx, vae_residual(inner))
    assert part == "upsamples", key
    if idx % 4 == 3:
        return "decoder.up_blocks.%d.upsamplers.0.%s" % (idx // 4, inner)
    return "decoder.up_blocks.%d.resnets.%d.%s" % (idx // 4, idx % 4,
                                                  vae_residual(inner))


def renamed(weights, fn):
    out = collections.OrderedDict()
    for k, v in weights.items():
        nk = fn(k)
        assert nk not in out, (k, nk)
        out[nk] = v
    return out


# ---- writers --------------------------------------------------------------

def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def write_weights(directory, stem, index_name, weights, shard_mb):
    """stem.safetensors, or stem-0000k-of-0000n.safetensors + index_name."""
    os.makedirs(directory, exist_ok=True)
    if not shard_mb:
        safetensors_writer.write(os.path.join(directory, stem + ".safetensors"),
                                 weights, {"format": "pt"})
        return
    limit = int(shard_mb * (1 << 20))
    shards, current, size = [], collections.OrderedDict(), 0
    for k in sorted(weights):
        b = weights[k].numel() * weights[k].element_size()
        if current and size + b > limit:
            shards.append(current)
            current, size = collections.OrderedDict(), 0
        current[k] = weights[k]
        size += b
    shards.append(current)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        name = "%s-%05d-of-%05d.safetensors" % (stem, i + 1, len(shards))
        total += safetensors_writer.write(os.path.join(directory, name), shard,
                                          {"format": "pt"})
        for k in shard:
            weight_map[k] = name
    write_json(os.path.join(directory, index_name),
               {"metadata": {"total_size": total}, "weight_map": weight_map})


def torch_save_state_dict(path, weights):
    sd = collections.OrderedDict(weights)
    sd._metadata = collections.OrderedDict([("", {"version": 1})])
    torch.save(sd, path)


def dit_wan_config(c):
    cfg = {"_class_name": "WanModel", "_diffusers_version": "0.30.0",
           "dim": c.dit_dim, "eps": 1e-06, "ffn_dim": c.dit_ffn,
           "freq_dim": 256, "in_dim": 16, "model_type": "t2v",
           "num_heads": c.dit_heads, "num_layers": c.dit_layers,
           "out_dim": 16, "text_len": c.text_len}
    return cfg


def write_wan(out, c, dit, t5, vae, spiece):
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "config.json"), dit_wan_config(c))
    write_weights(out, "diffusion_pytorch_model",
                  "diffusion_pytorch_model.safetensors.index.json", dit,
                  c.shard_mb)
    torch_save_state_dict(os.path.join(out, "models_t5_umt5-xxl-enc-bf16.pth"),
                          t5)
    torch_save_state_dict(os.path.join(out, "Wan2.1_VAE.pth"), vae)
    tok = os.path.join(out, "google", "umt5-xxl")
    os.makedirs(tok, exist_ok=True)
    shutil.copyfile(spiece, os.path.join(tok, "spiece.model"))


def write_diffusers(out, c, dit, t5, vae, spiece):
    write_json(os.path.join(out, "model_index.json"), {
        "_class_name": "WanPipeline", "_diffusers_version": "0.33.0.dev0",
        "scheduler": ["diffusers", "UniPCMultistepScheduler"],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "T5TokenizerFast"],
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLWan"]})
    tcfg = {"_class_name": "WanTransformer3DModel",
            "_diffusers_version": "0.33.0.dev0", "added_kv_proj_dim": None,
            "attention_head_dim": c.dit_dim // c.dit_heads,
            "cross_attn_norm": True, "eps": 1e-06, "ffn_dim": c.dit_ffn,
            "freq_dim": 256, "image_dim": None, "in_channels": 16,
            "num_attention_heads": c.dit_heads, "num_layers": c.dit_layers,
            "out_channels": 16, "patch_size": [1, 2, 2],
            "pos_embed_seq_len": None, "qk_norm": "rms_norm_across_heads",
            "rope_max_seq_len": 1024, "text_dim": c.t5_dim}
    if c.text_len != 512:
        tcfg["text_len"] = c.text_len  # dserve extension, see the docstring
    write_json(os.path.join(out, "transformer", "config.json"), tcfg)
    write_weights(os.path.join(out, "transformer"), "diffusion_pytorch_model",
                  "diffusion_pytorch_model.safetensors.index.json",
                  renamed(dit, dit_to_diffusers), c.shard_mb)
    write_json(os.path.join(out, "text_encoder", "config.json"), {
        "architectures": ["UMT5EncoderModel"], "classifier_dropout": 0.0,
        "d_ff": c.t5_ffn, "d_kv": c.t5_head_dim, "d_model": c.t5_dim,
        "decoder_start_token_id": 0, "dense_act_fn": "gelu_new",
        "dropout_rate": 0.1, "eos_token_id": 1,
        "feed_forward_proj": "gated-gelu", "initializer_factor": 1.0,
        "is_encoder_decoder": True, "is_gated_act": True,
        "layer_norm_epsilon": 1e-06, "model_type": "umt5",
        "num_decoder_layers": c.t5_layers, "num_heads": c.t5_heads,
        "num_layers": c.t5_layers, "output_past": True, "pad_token_id": 0,
        "relative_attention_max_distance": 128,
        "relative_attention_num_buckets": 32, "scalable_attention": True,
        "tie_word_embeddings": False, "torch_dtype": str(c.torch_dtype)[6:],
        "transformers_version": "4.49.0", "use_cache": True,
        "vocab_size": c.t5_vocab})
    write_weights(os.path.join(out, "text_encoder"), "model",
                  "model.safetensors.index.json",
                  renamed(t5, t5_to_diffusers), c.shard_mb)
    tok = os.path.join(out, "tokenizer")
    os.makedirs(tok, exist_ok=True)
    shutil.copyfile(spiece, os.path.join(tok, "spiece.model"))
    write_json(os.path.join(tok, "special_tokens_map.json"), {
        "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"})
    write_json(os.path.join(tok, "tokenizer_config.json"), {
        "tokenizer_class": "T5Tokenizer", "model_max_length": 512,
        "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
        "extra_ids": 300})
    write_json(os.path.join(out, "vae", "config.json"), {
        "_class_name": "AutoencoderKLWan", "_diffusers_version": "0.33.0.dev0",
        "attn_scales": [], "base_dim": c.vae_base, "dim_mult": [1, 2, 4, 4],
        "dropout": 0.0, "latents_mean": VAE_MEAN, "latents_std": VAE_STD,
        "num_res_blocks": 2, "temperal_downsample": [False, True, True],
        "z_dim": 16})
    write_weights(os.path.join(out, "vae"), "diffusion_pytorch_model",
                  "diffusion_pytorch_model.safetensors.index.json",
                  renamed(vae, vae_to_diffusers), 0)
    write_json(os.path.join(out, "scheduler", "scheduler_config.json"), {
        "_class_name": "UniPCMultistepScheduler",
        "_diffusers_version": "0.33.0.dev0", "beta_end": 0.02,
        "beta_schedule": "linear", "beta_start": 0.0001,
        "disable_corrector": [], "dynamic_thresholding_ratio": 0.995,
        "final_sigmas_type": "zero", "flow_shift": c.flow_shift,
        "lower_order_final": True, "num_train_timesteps": 1000,
        "predict_x0": True, "prediction_type": "flow_prediction",
        "rescale_betas_zero_snr": False, "sample_max_value": 1.0,
        "solver_order": 2, "solver_p": None, "solver_type": "bh2",
        "steps_offset": 0, "thresholding": False,
        "timestep_spacing": "linspace", "trained_betas": None,
        "use_beta_sigmas": False, "use_exponential_sigmas": False,
        "use_flow_sigmas": True, "use_karras_sigmas": False})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--layout", choices=["wan", "diffusers", "both"],
                    default="both")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--shard_mb", type=float, default=0,
                    help="split the DiT and T5 safetensors into shards of at "
                         "most this many MiB, with an .index.json (0 = one file)")
    ap.add_argument("--spiece", required=True,
                    help="SentencePiece model to copy as spiece.model")
    ap.add_argument("--flow_shift", type=float, default=3.0,
                    help="diffusers scheduler_config.json flow_shift")
    for name in PRESETS["tiny"]:
        ap.add_argument("--" + name, type=int, default=None)
    c = ap.parse_args(argv)
    for name, value in PRESETS[c.preset].items():
        if getattr(c, name) is None:
            setattr(c, name, value)
    if c.dit_dim % c.dit_heads:
        ap.error("--dit_dim must be a multiple of --dit_heads")
    c.torch_dtype = DTYPES[c.dtype]
    gen = torch.Generator().manual_seed(c.seed)
    dit = randomise(dit_shapes(c), gen, c.torch_dtype)
    t5 = randomise(t5_shapes(c), gen, c.torch_dtype)
    vae = randomise(vae_shapes(c.vae_base), gen, c.torch_dtype)
    if c.layout in ("wan", "both"):
        write_wan(os.path.join(c.out, "wan") if c.layout == "both" else c.out,
                  c, dit, t5, vae, c.spiece)
    if c.layout in ("diffusers", "both"):
        write_diffusers(
            os.path.join(c.out, "diffusers") if c.layout == "both" else c.out,
            c, dit, t5, vae, c.spiece)
    n = lambda w: sum(t.numel() for t in w.values())  # noqa: E731
    print("wrote %s (%s): DiT %d params, umT5 %d, VAE %d" %
          (c.out, c.layout, n(dit), n(t5), n(vae)))


if __name__ == "__main__":
    main()
