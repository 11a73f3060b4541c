"""umT5 encoder (encoder only), as wan21_pipeline.md §1 describes it.

Pre-norm layers: x += o(attn(norm1(x))); h = norm2(x);
x += fc2(fc1(h) * gelu_tanh(gate(h))); final `norm`. T5 RMSNorm (no centring,
eps 1e-6), no biases, no embedding scaling, no absolute positions, NO 1/sqrt(d)
in attention, a relative position bias owned by every layer
(blocks.N.pos_embedding.embedding.weight [num_buckets, heads]) indexed by the
bucket of rel = key - query.
"""

import math

import torch

EPS = 1e-6


def config_from_weights(w, heads):
    """The config the weights imply (head count cannot be read off shapes)."""
    vocab, dim = w["token_embedding.weight"].shape
    layers = 0
    while f"blocks.{layers}.norm1.weight" in w:
        layers += 1
    return {"vocab": vocab, "dim": dim, "heads": heads,
            "head_dim": w["blocks.0.attn.q.weight"].shape[0] // heads,
            "ffn_dim": w["blocks.0.ffn.fc1.weight"].shape[0],
            "layers": layers,
            "num_buckets": w["blocks.0.pos_embedding.embedding.weight"].shape[0]}


def weight_shapes(cfg):
    """{Wan name: shape} of an encoder with this config."""
    d, a, f = cfg["dim"], cfg["heads"] * cfg["head_dim"], cfg["ffn_dim"]
    shapes = {"token_embedding.weight": [cfg["vocab"], d], "norm.weight": [d]}
    for n in range(cfg["layers"]):
        p = f"blocks.{n}."
        shapes[p + "norm1.weight"] = [d]
        shapes[p + "norm2.weight"] = [d]
        for m in "qkv":
            shapes[p + f"attn.{m}.weight"] = [a, d]
        shapes[p + "attn.o.weight"] = [d, a]
        shapes[p + "ffn.gate.0.weight"] = [f, d]
        shapes[p + "ffn.fc1.weight"] = [f, d]
        shapes[p + "ffn.fc2.weight"] = [d, f]
        shapes[p + "pos_embedding.embedding.weight"] = [cfg["num_buckets"],
                                                        cfg["heads"]]
    return shapes


def relative_bucket(rel, num_buckets=32, max_distance=128):
    """Bidirectional T5 bucket of rel = key - query (int64 tensor). The log
    branch is evaluated in float32, as the reference does."""
    half = num_buckets // 2
    max_exact = half // 2
    n = rel.abs()
    far = max_exact + (torch.log(n.clamp(min=1).float() / max_exact) /
                       math.log(max_distance / max_exact) *
                       (half - max_exact)).to(torch.int64)
    far = far.clamp(max=half - 1)
    return (rel > 0).to(torch.int64) * half + torch.where(n < max_exact, n, far)


def rms_norm(x, weight):
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) *
                                       (x + 0.044715 * x.pow(3))))


def encode(w, cfg, ids, mask=None):
    """ids int64 [B, L]; mask bool [B, L] (True = real token) or None.
    Returns the final-norm hidden states [B, L, dim] in w's dtype."""
    b, length = ids.shape
    heads, hd = cfg["heads"], cfg["head_dim"]
    dtype = w["token_embedding.weight"].dtype
    x = w["token_embedding.weight"][ids]
    pos = torch.arange(length)
    bucket = relative_bucket(pos[None, :] - pos[:, None], cfg["num_buckets"],
                             cfg.get("max_distance", 128))  # [Lq, Lk]
    key_bias = torch.zeros(b, 1, 1, length, dtype=dtype)
    if mask is not None:
        key_bias = torch.where(mask[:, None, None, :], key_bias,
                               torch.full_like(key_bias,
                                               torch.finfo(dtype).min))

    def split(t):  # [B, L, H*D] -> [B, H, L, D]
        return t.view(b, length, heads, hd).transpose(1, 2)

    for n in range(cfg["layers"]):
        p = f"blocks.{n}."
        h = rms_norm(x, w[p + "norm1.weight"])
        q = split(h @ w[p + "attn.q.weight"].t())
        k = split(h @ w[p + "attn.k.weight"].t())
        v = split(h @ w[p + "attn.v.weight"].t())
        bias = w[p + "pos_embedding.embedding.weight"][bucket]  # [Lq, Lk, H]
        logits = q @ k.transpose(-1, -2) + bias.permute(2, 0, 1)[None]
        attn = torch.softmax(logits + key_bias, dim=-1)
        o = (attn @ v).transpose(1, 2).reshape(b, length, heads * hd)
        x = x + o @ w[p + "attn.o.weight"].t()
        h = rms_norm(x, w[p + "norm2.weight"])
        x = x + (h @ w[p + "ffn.fc1.weight"].t() *
                 gelu_tanh(h @ w[p + "ffn.gate.0.weight"].t())) @ \
            w[p + "ffn.fc2.weight"].t()
    return rms_norm(x, w["norm.weight"])


def encode_context(w, cfg, prompts, text_len):
    """Each prompt (1-D int64 ids incl. </s>) encoded alone on its real tokens,
    trimmed to its length and zero-padded to text_len: [B, text_len, dim]."""
    out = torch.zeros(len(prompts), text_len, cfg["dim"],
                      dtype=w["token_embedding.weight"].dtype)
    for i, ids in enumerate(prompts):
        n = min(len(ids), text_len)
        out[i, :n] = encode(w, cfg, ids[None, :n])[0]
    return out


def encode_context_padded(w, cfg, prompts, text_len):
    """The same as encode_context, the way Wan runs it: all prompts padded with
    <pad>=0 to text_len in one batch with the key mask, then out[:n] kept."""
    ids = torch.zeros(len(prompts), text_len, dtype=torch.int64)
    mask = torch.zeros(len(prompts), text_len, dtype=torch.bool)
    for i, p in enumerate(prompts):
        n = min(len(p), text_len)
        ids[i, :n] = p[:n]
        mask[i, :n] = True
    h = encode(w, cfg, ids, mask)
    return h * mask[..., None].to(h.dtype)
