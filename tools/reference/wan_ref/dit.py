"""Wan2.1 DiT forward, as wan21.md ("DiT") describes it, in the dtype of its
weights (float64 for the reference cases).

Tokens are the (F, H, W) patch grid flattened row-major; the head's output
per token is laid out (pt, ph, pw, C) and unpatchified back to
[B, C, F*pt, H*ph, W*pw]. Self-attention: RMS-normed q/k (over the whole dim,
before the head split), 3-D RoPE on interleaved pairs, 1/sqrt(head_dim).
Cross-attention: no RoPE, no mask (the zero-padded context rows take part).
"""

import math

import torch
import torch.nn.functional as F

EPS = 1e-6


def weight_shapes(cfg):
    d, f, fd, td = cfg["dim"], cfg["ffn_dim"], cfg["freq_dim"], cfg["text_dim"]
    pt, ph, pw = cfg["patch"]
    cin, cout = cfg["in_dim"], cfg["out_dim"]
    s = {"patch_embedding.weight": [d, cin, pt, ph, pw],
         "patch_embedding.bias": [d],
         "text_embedding.0.weight": [d, td], "text_embedding.0.bias": [d],
         "text_embedding.2.weight": [d, d], "text_embedding.2.bias": [d],
         "time_embedding.0.weight": [d, fd], "time_embedding.0.bias": [d],
         "time_embedding.2.weight": [d, d], "time_embedding.2.bias": [d],
         "time_projection.1.weight": [6 * d, d],
         "time_projection.1.bias": [6 * d],
         "head.modulation": [1, 2, d],
         "head.head.weight": [cout * pt * ph * pw, d],
         "head.head.bias": [cout * pt * ph * pw]}
    for i in range(cfg["layers"]):
        p = f"blocks.{i}."
        s[p + "modulation"] = [1, 6, d]
        for a in ("self_attn", "cross_attn"):
            for m in "qkvo":
                s[p + f"{a}.{m}.weight"] = [d, d]
                s[p + f"{a}.{m}.bias"] = [d]
            s[p + f"{a}.norm_q.weight"] = [d]
            s[p + f"{a}.norm_k.weight"] = [d]
        s[p + "norm3.weight"] = [d]
        s[p + "norm3.bias"] = [d]
        s[p + "ffn.0.weight"] = [f, d]
        s[p + "ffn.0.bias"] = [f]
        s[p + "ffn.2.weight"] = [d, f]
        s[p + "ffn.2.bias"] = [d]
    return s


def _lin(w, name, x):
    return F.linear(x, w[name + ".weight"], w[name + ".bias"])


def _rms(x, weight):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * weight


def _ln(x):
    return F.layer_norm(x, (x.shape[-1],), eps=EPS)


def sinusoid(t, freq_dim, dtype):
    """[cos | sin] of t * 10000^(-i/half), computed in float64."""
    half = freq_dim // 2
    freqs = torch.pow(torch.tensor(10000.0, dtype=torch.float64),
                      -torch.arange(half, dtype=torch.float64) / half)
    args = t.to(torch.float64)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], 1).to(dtype)


def rope_angles(grid, head_dim):
    """[S, head_dim/2] float64 angles of the 3-D RoPE for a (F, H, W) grid:
    channels d-4(d//6), 2(d//6), 2(d//6) for frame/height/width, each axis
    its own ladder 1/10000^(2i/d_axis)."""
    sixth = head_dim // 6
    widths = [head_dim - 4 * sixth, 2 * sixth, 2 * sixth]
    f, h, w = grid
    parts = []
    for axis, (n, da) in enumerate(zip((f, h, w), widths)):
        inv = 1.0 / torch.pow(torch.tensor(10000.0, dtype=torch.float64),
                              torch.arange(0, da, 2, dtype=torch.float64) / da)
        ang = torch.arange(n, dtype=torch.float64)[:, None] * inv[None]
        shape = [1, 1, 1, da // 2]
        shape[axis] = n
        parts.append(ang.view(shape).expand(f, h, w, da // 2))
    return torch.cat(parts, -1).reshape(f * h * w, head_dim // 2)


def apply_rope(x, ang):
    """x [B, S, N, D]; rotates the pairs (x[2i], x[2i+1]) by ang [S, D/2]."""
    b, s, n, d = x.shape
    xr = x.reshape(b, s, n, d // 2, 2)
    a, c = xr[..., 0], xr[..., 1]
    cos = torch.cos(ang).to(x.dtype)[None, :, None]
    sin = torch.sin(ang).to(x.dtype)[None, :, None]
    return torch.stack([a * cos - c * sin, a * sin + c * cos], -1).reshape(
        b, s, n, d)


def _attention(q, k, v):
    """q [B, Sq, N, D], k/v [B, Sk, N, D] -> [B, Sq, N*D]."""
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1)
    o = p @ v
    return o.transpose(1, 2).flatten(2)


def forward(w, cfg, x, t, context):
    """x [B, in_dim, F, H, W]; t int64 [B]; context [B, text_len, text_dim]
    (already zero-padded). Returns the velocity [B, out_dim, F, H, W]."""
    dtype = w["patch_embedding.weight"].dtype
    pt, ph, pw = cfg["patch"]
    nh = cfg["heads"]
    d = cfg["dim"]
    hd = d // nh
    y = F.conv3d(x.to(dtype), w["patch_embedding.weight"],
                 w["patch_embedding.bias"], stride=(pt, ph, pw))
    b, _, gf, gh, gw = y.shape
    h = y.flatten(2).transpose(1, 2)  # [B, S, D]
    e = _lin(w, "time_embedding.2", F.silu(_lin(
        w, "time_embedding.0", sinusoid(t, cfg["freq_dim"], dtype))))
    e0 = _lin(w, "time_projection.1", F.silu(e)).view(b, 6, d)
    ctx = _lin(w, "text_embedding.2", F.gelu(_lin(
        w, "text_embedding.0", context.to(dtype)), approximate="tanh"))
    ang = rope_angles((gf, gh, gw), hd)
    for i in range(cfg["layers"]):
        p = f"blocks.{i}."
        m = (w[p + "modulation"] + e0).unbind(1)  # 6 x [B, D]
        m = [mi[:, None] for mi in m]
        a = _ln(h) * (1 + m[1]) + m[0]
        q = _rms(_lin(w, p + "self_attn.q", a), w[p + "self_attn.norm_q.weight"])
        k = _rms(_lin(w, p + "self_attn.k", a), w[p + "self_attn.norm_k.weight"])
        v = _lin(w, p + "self_attn.v", a)
        q = apply_rope(q.view(b, -1, nh, hd), ang)
        k = apply_rope(k.view(b, -1, nh, hd), ang)
        o = _attention(q, k, v.view(b, -1, nh, hd))
        h = h + m[2] * _lin(w, p + "self_attn.o", o)
        c = F.layer_norm(h, (d,), w[p + "norm3.weight"], w[p + "norm3.bias"],
                         eps=EPS)
        q = _rms(_lin(w, p + "cross_attn.q", c),
                 w[p + "cross_attn.norm_q.weight"])
        k = _rms(_lin(w, p + "cross_attn.k", ctx),
                 w[p + "cross_attn.norm_k.weight"])
        v = _lin(w, p + "cross_attn.v", ctx)
        o = _attention(q.view(b, -1, nh, hd), k.view(b, -1, nh, hd),
                       v.view(b, -1, nh, hd))
        h = h + _lin(w, p + "cross_attn.o", o)
        a = _ln(h) * (1 + m[4]) + m[3]
        h = h + m[5] * _lin(w, p + "ffn.2", F.gelu(_lin(w, p + "ffn.0", a),
                                                   approximate="tanh"))
    s0, s1 = (w["head.modulation"] + e[:, None]).unbind(1)
    out = _lin(w, "head.head", _ln(h) * (1 + s1[:, None]) + s0[:, None])
    co = cfg["out_dim"]
    out = out.view(b, gf, gh, gw, pt, ph, pw, co)
    out = out.permute(0, 7, 1, 4, 2, 5, 3, 6)  # b c f pt h ph w pw
    return out.reshape(b, co, gf * pt, gh * ph, gw * pw)
