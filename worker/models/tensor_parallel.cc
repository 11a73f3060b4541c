#include "worker/models/tensor_parallel.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "worker/models/attention.h"
#include <ATen/ATen.h>

namespace dserve::models {
namespace {

void ThrowIfError(const absl::Status& s) {
  TORCH_CHECK(s.ok(), "tensor parallel: ", std::string(s.message()));
}

// x [..., n] fp32 → x ⋅ rsqrt(ss / dim + eps) ⋅ w, with `ss` the sum of
// squares over the whole (unsharded) last dim.
at::Tensor ScaleByRms(const at::Tensor& x, const at::Tensor& ss,
                      const at::Tensor& w, int64_t dim, double eps) {
  return x * at::rsqrt(ss.div(static_cast<double>(dim)).add(eps)) * w;
}

}  // namespace

ShardRange TensorParallelShard(int64_t total, int rank, int parts) {
  const int64_t size = total / parts;
  return {rank * size, size};
}

absl::StatusOr<TensorParallelBlocks> TensorParallelBlocks::Create(
    const DiTConfig& config, const WeightMap& weights, int tp_rank,
    int tp_size, int first_layer, int last_layer) {
  TensorParallelSliceReader read = [&weights](const std::string& key, int dim,
                                              const ShardRange& r) {
    auto it = weights.find(key);
    if (it == weights.end() || !it->second.defined()) return at::Tensor();
    at::Tensor t = it->second;
    if (dim >= 0) t = t.narrow(dim, r.begin, r.size);
    return t.to(at::kFloat).contiguous();
  };
  return Create(config, read, tp_rank, tp_size, first_layer, last_layer);
}

absl::StatusOr<TensorParallelBlocks> TensorParallelBlocks::Create(
    const DiTConfig& config, const TensorParallelSliceReader& read,
    int tp_rank, int tp_size, int first_layer, int last_layer) {
  if (tp_size < 1 || tp_rank < 0 || tp_rank >= tp_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor parallel: tp rank ", tp_rank, " is outside [0, ", tp_size,
        ")"));
  }
  if (config.num_heads % tp_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor parallel: num_heads = ", config.num_heads,
        " is not divisible by tp = ", tp_size,
        "; choose tp among the divisors of num_heads"));
  }
  if (config.ffn_dim % tp_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor parallel: ffn_dim = ", config.ffn_dim,
        " is not divisible by tp = ", tp_size,
        "; choose tp among the divisors of ffn_dim"));
  }
  if (last_layer < 0) last_layer = config.num_layers;
  if (first_layer < 0 || first_layer > last_layer ||
      last_layer > config.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor parallel: layers [", first_layer, ", ", last_layer,
        ") are outside the model's [0, ", config.num_layers, ")"));
  }
  std::string missing;
  auto slice = [&](const std::string& key, int dim, const ShardRange& r) {
    at::Tensor t = read(key, dim, r);
    if (!t.defined() && missing.empty()) missing = key;
    return t;
  };
  auto whole = [&](const std::string& key) { return slice(key, -1, {}); };
  const ShardRange d = TensorParallelShard(config.dim, tp_rank, tp_size);
  const ShardRange f = TensorParallelShard(config.ffn_dim, tp_rank, tp_size);
  auto column_parallel = [&](const std::string& name, const ShardRange& r) {
    return Linear{slice(name + ".weight", 0, r), slice(name + ".bias", 0, r)};
  };
  TensorParallelBlocks tpb;
  tpb.config_ = config;
  tpb.tp_rank_ = tp_rank;
  tpb.tp_size_ = tp_size;
  tpb.first_layer_ = first_layer;
  for (int i = first_layer; i < last_layer; ++i) {
    const std::string p = absl::StrCat("blocks.", i, ".");
    auto attn = [&](const std::string& a) {
      Attn w;
      w.q = column_parallel(p + a + ".q", d);
      w.k = column_parallel(p + a + ".k", d);
      w.v = column_parallel(p + a + ".v", d);
      w.o_weight = slice(p + a + ".o.weight", 1, d);
      w.o_bias = whole(p + a + ".o.bias");
      w.norm_q = slice(p + a + ".norm_q.weight", 0, d);
      w.norm_k = slice(p + a + ".norm_k.weight", 0, d);
      return w;
    };
    Block blk;
    blk.modulation = whole(p + "modulation");
    blk.self_attn = attn("self_attn");
    blk.cross_attn = attn("cross_attn");
    blk.norm3_weight = whole(p + "norm3.weight");
    blk.norm3_bias = whole(p + "norm3.bias");
    blk.ffn0 = column_parallel(p + "ffn.0", f);
    blk.ffn2_weight = slice(p + "ffn.2.weight", 1, f);
    blk.ffn2_bias = whole(p + "ffn.2.bias");
    tpb.blocks_.push_back(std::move(blk));
    if (!missing.empty()) break;
  }
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor parallel: missing weight \"", missing, "\""));
  }
  return tpb;
}

int64_t TensorParallelBlocks::weight_bytes() const {
  int64_t bytes = 0;
  auto add = [&](const at::Tensor& t) {
    if (t.defined()) bytes += static_cast<int64_t>(t.nbytes());
  };
  for (const Block& b : blocks_) {
    add(b.modulation);
    for (const Attn* a : {&b.self_attn, &b.cross_attn}) {
      for (const Linear* l : {&a->q, &a->k, &a->v}) {
        add(l->weight);
        add(l->bias);
      }
      add(a->o_weight);
      add(a->o_bias);
      add(a->norm_q);
      add(a->norm_k);
    }
    add(b.norm3_weight);
    add(b.norm3_bias);
    add(b.ffn0.weight);
    add(b.ffn0.bias);
    add(b.ffn2_weight);
    add(b.ffn2_bias);
  }
  return bytes;
}

void TensorParallelBlocks::RunBlocks(DiTActivations& a, int first, int last,
                                     parallel::Communicator& tp) const {
  if (first == last) return;
  TORCH_CHECK(first_layer_ <= first && first <= last && last <= last_layer(),
              "TensorParallelBlocks::RunBlocks: range [", first, ", ", last,
              ") is outside the blocks held [", first_layer_, ", ",
              last_layer(), ")");
  TORCH_CHECK(tp.size() == tp_size_ && tp.rank() == tp_rank_,
              "TensorParallelBlocks: built for tp rank ", tp_rank_, " of ",
              tp_size_, ", given a group where this is rank ", tp.rank(),
              " of ", tp.size());
  for (int i = first; i < last; ++i) {
    RunBlock(blocks_[i - first_layer_], a, tp);
  }
}

void TensorParallelBlocks::RunBlock(const Block& blk, DiTActivations& a,
                                    parallel::Communicator& tp) const {
  const DiTConfig& c = config_;
  const double eps = c.eps;
  const int64_t b = a.x.size(0);
  const int64_t s = a.x.size(1);
  const int64_t hd = c.head_dim();
  at::Tensor m = blk.modulation + a.e0;
  auto mod = [&](int i) { return m.select(1, i).unsqueeze(1); };
  auto all_reduce = [&](at::Tensor t) {
    t = t.contiguous();
    ThrowIfError(tp.AllReduceSum(t));
    return t;
  };
  // q from `hq` [B, S, dim], k/v from `hkv` [B, Skv, dim]; returns the
  // (already all-reduced, biased) output projection [B, S, dim].
  auto attention = [&](const Attn& w, const at::Tensor& hq,
                       const at::Tensor& hkv, bool self) {
    const int64_t skv = hkv.size(1);
    // The slices are fp32; the embedded text is in the compute dtype.
    const at::Tensor kv = hkv.to(w.k.weight.scalar_type());
    at::Tensor q = at::linear(hq, w.q.weight, w.q.bias);
    at::Tensor k = at::linear(kv, w.k.weight, w.k.bias);
    at::Tensor v = at::linear(kv, w.v.weight, w.v.bias);
    // One all-reduce for both sums of squares: [B·S | B·Skv].
    at::Tensor ss = all_reduce(at::cat({q.pow(2).sum(-1).flatten(),
                                        k.pow(2).sum(-1).flatten()}));
    at::Tensor ss_q = ss.narrow(0, 0, b * s).view({b, s, 1});
    at::Tensor ss_k = ss.narrow(0, b * s, b * skv).view({b, skv, 1});
    q = ScaleByRms(q, ss_q, w.norm_q, c.dim, eps).view({b, s, -1, hd});
    k = ScaleByRms(k, ss_k, w.norm_k, c.dim, eps).view({b, skv, -1, hd});
    v = v.view({b, skv, -1, hd});
    at::Tensor y;
    if (self) {
      q = ApplyRope(q, a.rope);
      k = ApplyRope(k, a.rope);
      y = Attention(q, k, v, a.key_padding_mask);
    } else {
      y = Attention(q, k, v);
    }
    at::Tensor partial = at::linear(y.flatten(2), w.o_weight);
    return all_reduce(partial) + w.o_bias;
  };

  {
    at::Tensor h = at::addcmul(
        mod(0), at::layer_norm(a.x, {c.dim}, {}, {}, eps), 1 + mod(1));
    a.x = at::addcmul(a.x, attention(blk.self_attn, h, h, true), mod(2));
  }
  {
    at::Tensor h = at::layer_norm(a.x, {c.dim}, blk.norm3_weight,
                                  blk.norm3_bias, eps);
    a.x = a.x + attention(blk.cross_attn, h, a.context, false);
  }
  {
    at::Tensor h = at::addcmul(
        mod(3), at::layer_norm(a.x, {c.dim}, {}, {}, eps), 1 + mod(4));
    at::Tensor y = at::linear(
        at::gelu(at::linear(h, blk.ffn0.weight, blk.ffn0.bias), "tanh"),
        blk.ffn2_weight);
    a.x = at::addcmul(a.x, all_reduce(y) + blk.ffn2_bias, mod(5));
  }
}

}  // namespace dserve::models
