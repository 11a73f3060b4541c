"""Wan VAE 2.1 decoder and encoder, as wan21_pipeline.md §2 describes them.

Two formulations of the same maths:
- chunked, as Wan runs it: decode one latent frame per call, encode frames
  1, 4, 4, ...; every CausalConv3d keeps the last 2 frames of its input in a
  cache that replaces its front zero padding; every upsample3d stores "Rep" in
  chunk 0 (skipping time_conv), runs time_conv with zero history in chunk 1
  and with the real cache afterwards; every downsample3d passes frame 0 and
  then runs its stride-2 time_conv with the previous chunk's last frame;
- one-shot: every conv causal over the whole time axis; upsample3d passes
  frame 0 and runs time_conv over frames 1..T-1 as their own causal sequence;
  downsample3d passes frame 0 then convolves (stride 2, unpadded) over all.
`cache=None` selects one-shot, a dict selects chunked (keys = layer names).
"""

import torch
import torch.nn.functional as F

MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
        0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
       3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]
CACHE_T = 2
_REP = "Rep"


# ---------------------------------------------------------------- structure
def decoder_plan(cfg):
    """[(index, kind, in_ch, out_ch)] of decoder.upsamples; kind is "res",
    "up3d" or "up2d" (resamples output in_ch // 2 channels)."""
    mult = cfg["dim_mult"]
    base = cfg["base_dim"]
    dims = [base * mult[-1]] + [base * u for u in mult[::-1]]
    t_up = list(cfg["temporal_downsample"])[::-1]
    plan = []
    for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
        if i in (1, 2, 3):
            cin //= 2
        for _ in range(cfg["num_res_blocks"] + 1):
            plan.append((len(plan), "res", cin, cout))
            cin = cout
        if i != len(mult) - 1:
            plan.append((len(plan), "up3d" if t_up[i] else "up2d", cout,
                         cout // 2))
    return dims, plan


def encoder_plan(cfg):
    """[(index, kind, in_ch, out_ch)] of encoder.downsamples; kind "res",
    "down3d" or "down2d" (resamples keep the channel count)."""
    mult = cfg["dim_mult"]
    base = cfg["base_dim"]
    dims = [base * u for u in [1] + list(mult)]
    plan = []
    for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
        for _ in range(cfg["num_res_blocks"]):
            plan.append((len(plan), "res", cin, cout))
            cin = cout
        if i != len(mult) - 1:
            kind = "down3d" if cfg["temporal_downsample"][i] else "down2d"
            plan.append((len(plan), kind, cout, cout))
    return dims, plan


def _res_shapes(p, cin, cout, s):
    s[p + "residual.0.gamma"] = [cin, 1, 1, 1]
    s[p + "residual.2.weight"] = [cout, cin, 3, 3, 3]
    s[p + "residual.2.bias"] = [cout]
    s[p + "residual.3.gamma"] = [cout, 1, 1, 1]
    s[p + "residual.6.weight"] = [cout, cout, 3, 3, 3]
    s[p + "residual.6.bias"] = [cout]
    if cin != cout:
        s[p + "shortcut.weight"] = [cout, cin, 1, 1, 1]
        s[p + "shortcut.bias"] = [cout]


def _middle_shapes(p, c, s):
    _res_shapes(p + "middle.0.", c, c, s)
    s[p + "middle.1.norm.gamma"] = [c, 1, 1]
    s[p + "middle.1.to_qkv.weight"] = [3 * c, c, 1, 1]
    s[p + "middle.1.to_qkv.bias"] = [3 * c]
    s[p + "middle.1.proj.weight"] = [c, c, 1, 1]
    s[p + "middle.1.proj.bias"] = [c]
    _res_shapes(p + "middle.2.", c, c, s)


def weight_shapes(cfg):
    """{Wan name: shape} of the whole VAE (conv1, conv2, encoder, decoder)."""
    z = cfg["z_dim"]
    s = {"conv1.weight": [2 * z, 2 * z, 1, 1, 1], "conv1.bias": [2 * z],
         "conv2.weight": [z, z, 1, 1, 1], "conv2.bias": [z]}
    # decoder
    dims, plan = decoder_plan(cfg)
    s["decoder.conv1.weight"] = [dims[0], z, 3, 3, 3]
    s["decoder.conv1.bias"] = [dims[0]]
    _middle_shapes("decoder.", dims[0], s)
    for idx, kind, cin, cout in plan:
        p = f"decoder.upsamples.{idx}."
        if kind == "res":
            _res_shapes(p, cin, cout, s)
            continue
        s[p + "resample.1.weight"] = [cout, cin, 3, 3]
        s[p + "resample.1.bias"] = [cout]
        if kind == "up3d":
            s[p + "time_conv.weight"] = [2 * cin, cin, 3, 1, 1]
            s[p + "time_conv.bias"] = [2 * cin]
    s["decoder.head.0.gamma"] = [dims[-1], 1, 1, 1]
    s["decoder.head.2.weight"] = [3, dims[-1], 3, 3, 3]
    s["decoder.head.2.bias"] = [3]
    # encoder
    dims, plan = encoder_plan(cfg)
    s["encoder.conv1.weight"] = [dims[0], 3, 3, 3, 3]
    s["encoder.conv1.bias"] = [dims[0]]
    for idx, kind, cin, cout in plan:
        p = f"encoder.downsamples.{idx}."
        if kind == "res":
            _res_shapes(p, cin, cout, s)
            continue
        s[p + "resample.1.weight"] = [cout, cin, 3, 3]
        s[p + "resample.1.bias"] = [cout]
        if kind == "down3d":
            s[p + "time_conv.weight"] = [cout, cin, 3, 1, 1]
            s[p + "time_conv.bias"] = [cout]
    _middle_shapes("encoder.", dims[-1], s)
    s["encoder.head.0.gamma"] = [dims[-1], 1, 1, 1]
    s["encoder.head.2.weight"] = [2 * z, dims[-1], 3, 3, 3]
    s["encoder.head.2.bias"] = [2 * z]
    return s


# ---------------------------------------------------------------- layers
def rms_norm(x, gamma):
    """x / max(||x||_2 over channels, 1e-12) * sqrt(C) * gamma (dim 1)."""
    norm = x.pow(2).sum(1, keepdim=True).sqrt().clamp_min(1e-12)
    return x / norm * (x.shape[1] ** 0.5) * gamma


def causal_conv3d(x, weight, bias, pad, history=None, stride=(1, 1, 1)):
    """Zero-pads W +-pw, H +-ph, T 2*pt before (history frames replace the
    last of those zeros) and 0 after, then an unpadded conv3d."""
    pt, ph, pw = pad
    front = 2 * pt
    if history is not None and front > 0:
        x = torch.cat([history, x], 2)
        front -= history.shape[2]
    x = F.pad(x, (pw, pw, ph, ph, front, 0))
    return F.conv3d(x, weight, bias, stride=stride)


def cached_conv(w, name, x, pad, cache):
    """A k3 CausalConv3d; with a cache dict, Wan's per-chunk caching rule."""
    if cache is None:
        return causal_conv3d(x, w[name + ".weight"], w[name + ".bias"], pad)
    prev = cache.get(name)
    new = x[:, :, -CACHE_T:]
    if new.shape[2] < CACHE_T and prev is not None:
        new = torch.cat([prev[:, :, -1:], new], 2)
    y = causal_conv3d(x, w[name + ".weight"], w[name + ".bias"], pad, prev)
    cache[name] = new
    return y


def res_block(w, p, x, cache):
    h = x
    if p + "shortcut.weight" in w:
        h = F.conv3d(x, w[p + "shortcut.weight"], w[p + "shortcut.bias"])
    r = F.silu(rms_norm(x, w[p + "residual.0.gamma"]))
    r = cached_conv(w, p + "residual.2", r, (1, 1, 1), cache)
    r = F.silu(rms_norm(r, w[p + "residual.3.gamma"]))
    r = cached_conv(w, p + "residual.6", r, (1, 1, 1), cache)
    return h + r


def attention_block(w, p, x):
    """Per-frame single-head self-attention over H*W tokens, C channels."""
    b, c, t, hh, ww = x.shape
    f = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, hh, ww)
    h = rms_norm(f, w[p + "norm.gamma"])
    qkv = F.conv2d(h, w[p + "to_qkv.weight"], w[p + "to_qkv.bias"])
    q, k, v = qkv.reshape(b * t, 3 * c, hh * ww).transpose(1, 2).split(c, -1)
    a = torch.softmax(q @ k.transpose(1, 2) / c ** 0.5, -1) @ v
    a = a.transpose(1, 2).reshape(b * t, c, hh, ww)
    out = F.conv2d(a, w[p + "proj.weight"], w[p + "proj.bias"])
    return x + out.reshape(b, t, c, hh, ww).permute(0, 2, 1, 3, 4)


def _per_frame(x, fn):
    b, c, t, h, ww = x.shape
    y = fn(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, ww))
    return y.reshape(b, t, *y.shape[1:]).permute(0, 2, 1, 3, 4)


def _time_conv_up(w, p, x, history):
    """time_conv C -> 2C; channels [0:C] -> frame 2t, [C:2C] -> frame 2t+1."""
    b, c, t, h, ww = x.shape
    y = causal_conv3d(x, w[p + "time_conv.weight"], w[p + "time_conv.bias"],
                      (1, 0, 0), history)
    y = y.reshape(b, 2, c, t, h, ww)
    return torch.stack([y[:, 0], y[:, 1]], 3).reshape(b, c, 2 * t, h, ww)


def upsample(w, p, x, kind, cache):
    if kind == "up3d":
        if cache is None:
            if x.shape[2] > 1:
                x = torch.cat([x[:, :, :1], _time_conv_up(w, p, x[:, :, 1:],
                                                          None)], 2)
        else:
            name = p + "time_conv"
            prev = cache.get(name)
            if prev is None:
                cache[name] = _REP  # chunk 0: 1 frame stays 1 frame
            else:
                new = x[:, :, -CACHE_T:]
                if new.shape[2] < CACHE_T:
                    first = (torch.zeros_like(new) if isinstance(prev, str)
                             else prev[:, :, -1:])
                    new = torch.cat([first, new], 2)
                history = None if isinstance(prev, str) else prev
                x = _time_conv_up(w, p, x, history)
                cache[name] = new

    def spatial(f):  # nearest x2 (a copy, exact in any dtype), conv 3x3
        f = f.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        return F.conv2d(f, w[p + "resample.1.weight"],
                        w[p + "resample.1.bias"], padding=1)
    return _per_frame(x, spatial)


def downsample(w, p, x, kind, cache):
    x = _per_frame(x, lambda f: F.conv2d(
        F.pad(f, (0, 1, 0, 1)), w[p + "resample.1.weight"],
        w[p + "resample.1.bias"], stride=2))
    if kind != "down3d":
        return x
    tw, tb = w[p + "time_conv.weight"], w[p + "time_conv.bias"]
    if cache is None:
        if x.shape[2] < 3:
            return x[:, :, :1]
        return torch.cat([x[:, :, :1], F.conv3d(x, tw, tb, stride=(2, 1, 1))],
                         2)
    name = p + "time_conv"
    prev = cache.get(name)
    if prev is None:
        cache[name] = x
        return x
    cache[name] = x[:, :, -1:]
    return F.conv3d(torch.cat([prev[:, :, -1:], x], 2), tw, tb,
                    stride=(2, 1, 1))


def _middle(w, p, x, cache):
    x = res_block(w, p + "middle.0.", x, cache)
    x = attention_block(w, p + "middle.1.", x)
    return res_block(w, p + "middle.2.", x, cache)


def _head(w, p, x, cache):
    x = F.silu(rms_norm(x, w[p + "head.0.gamma"]))
    return cached_conv(w, p + "head.2", x, (1, 1, 1), cache)


def decoder3d(w, cfg, x, cache=None):
    x = cached_conv(w, "decoder.conv1", x, (1, 1, 1), cache)
    x = _middle(w, "decoder.", x, cache)
    for idx, kind, _, _ in decoder_plan(cfg)[1]:
        p = f"decoder.upsamples.{idx}."
        x = (res_block(w, p, x, cache) if kind == "res"
             else upsample(w, p, x, kind, cache))
    return _head(w, "decoder.", x, cache)


def encoder3d(w, cfg, x, cache=None):
    x = cached_conv(w, "encoder.conv1", x, (1, 1, 1), cache)
    for idx, kind, _, _ in encoder_plan(cfg)[1]:
        p = f"encoder.downsamples.{idx}."
        x = (res_block(w, p, x, cache) if kind == "res"
             else downsample(w, p, x, kind, cache))
    x = _middle(w, "encoder.", x, cache)
    return _head(w, "encoder.", x, cache)


def _scale(x):
    shape = [1, -1] + [1] * (x.dim() - 2)
    mean = torch.tensor(MEAN, dtype=x.dtype).view(shape)
    std = torch.tensor(STD, dtype=x.dtype).view(shape)
    return mean, std


# ---------------------------------------------------------------- API
def decode(w, cfg, latents, chunked=True):
    """Normalised latents [B, 16, T, h, w] -> video [B, 3, 1+4(T-1), 8h, 8w]
    clamped to [-1, 1]."""
    mean, std = _scale(latents)
    x = F.conv3d(latents * std + mean, w["conv2.weight"], w["conv2.bias"])
    if not chunked:
        out = decoder3d(w, cfg, x)
    else:
        cache = {}
        out = torch.cat([decoder3d(w, cfg, x[:, :, i:i + 1], cache)
                         for i in range(x.shape[2])], 2)
    return out.clamp(-1, 1)


def encode(w, cfg, video, chunked=True):
    """Video [B, 3, 1+4k, H, W] in [-1, 1] -> normalised latents (mu - mean)
    / std [B, 16, 1+k, H/8, W/8]."""
    if not chunked:
        out = encoder3d(w, cfg, video)
    else:
        cache = {}
        t = video.shape[2]
        chunks = [video[:, :, :1]] + [video[:, :, 1 + 4 * i:5 + 4 * i]
                                      for i in range((t - 1) // 4)]
        out = torch.cat([encoder3d(w, cfg, c, cache) for c in chunks], 2)
    mu = F.conv3d(out, w["conv1.weight"], w["conv1.bias"])[:, :cfg["z_dim"]]
    mean, std = _scale(mu)
    return (mu - mean) / std
