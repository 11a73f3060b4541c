#include "worker/models/text/umt5_encoder.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include <ATen/ATen.h>

namespace dserve::models {
namespace {

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::string BlockKey(int64_t i, const char* leaf) {
  return absl::StrCat("blocks.", i, ".", leaf);
}

absl::StatusOr<at::Tensor> FindRank(const WeightMap& weights,
                                    const std::string& key, int64_t rank) {
  auto it = weights.find(key);
  if (it == weights.end()) {
    return absl::NotFoundError(
        absl::StrCat("umT5 weights: missing ", key,
                     " (needed to infer the encoder's sizes)"));
  }
  if (it->second.dim() != rank) {
    return absl::InvalidArgumentError(
        absl::StrCat("umT5 weights: ", key, " has shape ",
                     ShapeString(it->second.sizes()), ", expected rank ", rank));
  }
  return it->second;
}

}  // namespace

std::vector<std::pair<std::string, std::vector<int64_t>>> Umt5WeightShapes(
    const Umt5Config& c) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> s;
  s.push_back({"token_embedding.weight", {c.vocab, c.dim}});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    s.push_back({BlockKey(i, "norm1.weight"), {c.dim}});
    s.push_back({BlockKey(i, "attn.q.weight"), {c.inner_dim(), c.dim}});
    s.push_back({BlockKey(i, "attn.k.weight"), {c.inner_dim(), c.dim}});
    s.push_back({BlockKey(i, "attn.v.weight"), {c.inner_dim(), c.dim}});
    s.push_back({BlockKey(i, "attn.o.weight"), {c.dim, c.inner_dim()}});
    s.push_back({BlockKey(i, "norm2.weight"), {c.dim}});
    s.push_back({BlockKey(i, "ffn.gate.0.weight"), {c.ffn_dim, c.dim}});
    s.push_back({BlockKey(i, "ffn.fc1.weight"), {c.ffn_dim, c.dim}});
    s.push_back({BlockKey(i, "ffn.fc2.weight"), {c.dim, c.ffn_dim}});
    s.push_back({BlockKey(i, "pos_embedding.embedding.weight"),
                 {c.num_buckets, c.num_heads}});
  }
  s.push_back({"norm.weight", {c.dim}});
  return s;
}

absl::StatusOr<Umt5Config> InferUmt5Config(const WeightMap& weights) {
  Umt5Config c;
  ASSIGN_OR_RETURN(at::Tensor emb,
                   FindRank(weights, "token_embedding.weight", 2));
  c.vocab = emb.size(0);
  c.dim = emb.size(1);
  ASSIGN_OR_RETURN(
      at::Tensor pos,
      FindRank(weights, "blocks.0.pos_embedding.embedding.weight", 2));
  c.num_buckets = pos.size(0);
  c.num_heads = pos.size(1);
  if (c.num_buckets < 4 || c.num_buckets % 4 != 0 || c.num_heads < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "umT5 weights: blocks.0.pos_embedding.embedding.weight has shape ",
        ShapeString(pos.sizes()),
        ", expected [num_buckets (a multiple of 4, umT5: 32), heads]"));
  }
  ASSIGN_OR_RETURN(at::Tensor q, FindRank(weights, "blocks.0.attn.q.weight", 2));
  if (q.size(0) % c.num_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "umT5 weights: blocks.0.attn.q.weight has ", q.size(0),
        " rows, not a multiple of the ", c.num_heads,
        " heads of blocks.0.pos_embedding.embedding.weight"));
  }
  c.head_dim = q.size(0) / c.num_heads;
  ASSIGN_OR_RETURN(at::Tensor fc1,
                   FindRank(weights, "blocks.0.ffn.fc1.weight", 2));
  c.ffn_dim = fc1.size(0);
  // Layers: the distinct N of "blocks.N." keys, which must be 0..L-1.
  std::set<int64_t> layers;
  for (const auto& [key, tensor] : weights) {
    if (key.rfind("blocks.", 0) != 0) continue;
    const size_t dot = key.find('.', 7);
    int64_t n = 0;
    if (dot == std::string::npos ||
        !absl::SimpleAtoi(key.substr(7, dot - 7), &n) || n < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("umT5 weights: key ", key, " is not blocks.<N>.<name>"));
    }
    layers.insert(n);
  }
  c.num_layers = static_cast<int64_t>(layers.size());
  if (c.num_layers == 0 || *layers.rbegin() != c.num_layers - 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "umT5 weights: blocks are numbered {", absl::StrJoin(layers, ","),
        "}, expected 0..N-1"));
  }
  return c;
}

std::vector<int64_t> Umt5RelativeBuckets(int64_t min_rel, int64_t max_rel,
                                         int64_t num_buckets,
                                         int64_t max_distance) {
  // The reference's ops, in its order and dtypes (float32 log, a double
  // scalar divisor, truncation by .long()).
  const int64_t half = num_buckets / 2;
  const int64_t max_exact = half / 2;
  at::Tensor rel = at::arange(min_rel, max_rel + 1, at::kLong);
  at::Tensor buckets = rel.gt(0).to(at::kLong) * half;
  at::Tensor n = rel.abs();
  at::Tensor large =
      max_exact +
      (at::log(n.clamp_min(1).to(at::kFloat) / max_exact) /
       std::log(static_cast<double>(max_distance) / max_exact) *
       (half - max_exact))
          .to(at::kLong);
  large = at::minimum(large, at::full_like(large, half - 1));
  buckets = buckets + at::where(n.lt(max_exact), n, large);
  return std::vector<int64_t>(buckets.data_ptr<int64_t>(),
                              buckets.data_ptr<int64_t>() + buckets.numel());
}

Umt5Encoder::Umt5Encoder(Umt5Config config, Umt5Numerics numerics)
    : config_(std::move(config)), numerics_(numerics) {}

absl::StatusOr<std::unique_ptr<Umt5Encoder>> Umt5Encoder::Create(
    const WeightMap& weights, const Umt5Numerics& numerics) {
  const at::ScalarType dt = numerics.compute_dtype;
  if (dt != at::kFloat && dt != at::kBFloat16 && dt != at::kHalf &&
      dt != at::kDouble) {
    return absl::InvalidArgumentError(
        absl::StrCat("umT5: compute dtype ", c10::toString(dt),
                     " is not one of float32, bfloat16, float16, float64"));
  }
  ASSIGN_OR_RETURN(Umt5Config config, InferUmt5Config(weights));
  for (const auto& [key, shape] : Umt5WeightShapes(config)) {
    auto it = weights.find(key);
    if (it == weights.end()) {
      return absl::NotFoundError(absl::StrCat(
          "umT5 weights: missing ", key, " (expected shape ", ShapeString(shape),
          " for ", config.num_layers, " layers)"));
    }
    if (it->second.sizes() != at::IntArrayRef(shape)) {
      return absl::InvalidArgumentError(
          absl::StrCat("umT5 weights: ", key, " has shape ",
                       ShapeString(it->second.sizes()), ", expected ",
                       ShapeString(shape)));
    }
    if (!at::isFloatingType(it->second.scalar_type())) {
      return absl::InvalidArgumentError(
          absl::StrCat("umT5 weights: ", key, " has dtype ",
                       c10::toString(it->second.scalar_type()),
                       ", expected a floating type"));
    }
  }
  std::unique_ptr<Umt5Encoder> enc(new Umt5Encoder(config, numerics));
  RETURN_IF_ERROR(CatchTorch("umT5: moving weights", [&] {
    auto get = [&](const std::string& key) {
      return weights.at(key).to(numerics.device, dt);
    };
    enc->token_embedding_ = get("token_embedding.weight");
    enc->final_norm_ = get("norm.weight");
    for (int64_t i = 0; i < config.num_layers; ++i) {
      Block b;
      b.norm1 = get(BlockKey(i, "norm1.weight"));
      b.q = get(BlockKey(i, "attn.q.weight"));
      b.k = get(BlockKey(i, "attn.k.weight"));
      b.v = get(BlockKey(i, "attn.v.weight"));
      b.o = get(BlockKey(i, "attn.o.weight"));
      b.pos_embedding = get(BlockKey(i, "pos_embedding.embedding.weight"));
      b.norm2 = get(BlockKey(i, "norm2.weight"));
      b.gate = get(BlockKey(i, "ffn.gate.0.weight"));
      b.fc1 = get(BlockKey(i, "ffn.fc1.weight"));
      b.fc2 = get(BlockKey(i, "ffn.fc2.weight"));
      enc->blocks_.push_back(std::move(b));
    }
  }));
  return enc;
}

at::Tensor Umt5Encoder::Norm(const at::Tensor& x,
                             const at::Tensor& weight) const {
  // Wan's T5LayerNorm: x * rsqrt(mean(x.float()^2) + eps) promotes to fp32,
  // is cast back to the weights' dtype, then scaled.
  // (fp64 compute keeps its statistics in fp64: a check of the maths, not
  // a Wan numerics mode.)
  const at::ScalarType dt = numerics_.compute_dtype;
  const at::ScalarType stats = dt == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor xs = x.to(stats);
  const at::Tensor scale =
      at::rsqrt(xs.pow(2).mean(-1, /*keepdim=*/true) + config_.eps);
  return weight * (xs * scale).to(dt);
}

at::Tensor Umt5Encoder::BucketIndex(int64_t length) const {
  // bucket(j - i) for rel in [-(L-1), L-1], computed once on the CPU with
  // the reference's float32 ops, then gathered into [L*L] on the device.
  const std::vector<int64_t> table = Umt5RelativeBuckets(
      -(length - 1), length - 1, config_.num_buckets, config_.max_distance);
  const at::TensorOptions long_opts =
      at::TensorOptions().dtype(at::kLong).device(numerics_.device);
  const at::Tensor lookup =
      at::tensor(table, at::TensorOptions().dtype(at::kLong))
          .to(numerics_.device);
  const at::Tensor pos = at::arange(length, long_opts);
  const at::Tensor rel = pos.unsqueeze(0) - pos.unsqueeze(1) + (length - 1);
  return lookup.index_select(0, rel.reshape(-1));
}

at::Tensor Umt5Encoder::PositionBias(const Block& block,
                                     const at::Tensor& buckets,
                                     int64_t length) const {
  // This block's table at the buckets: [L*L, heads] -> [heads, L, L].
  return block.pos_embedding.index_select(0, buckets)
      .reshape({length, length, config_.num_heads})
      .permute({2, 0, 1});
}

at::Tensor Umt5Encoder::Attention(const Block& block, const at::Tensor& x,
                                  const at::Tensor& buckets) const {
  const int64_t length = x.size(0);
  const int64_t heads = config_.num_heads, hd = config_.head_dim;
  auto split = [&](const at::Tensor& w) {
    return at::linear(x, w).reshape({length, heads, hd}).transpose(0, 1);
  };
  const at::Tensor q = split(block.q), k = split(block.k), v = split(block.v);
  // No 1/sqrt(d): T5 folds it into the initialisation.
  const at::Tensor scores =
      at::matmul(q, k.transpose(1, 2)) + PositionBias(block, buckets, length);
  const at::Tensor probs =
      at::softmax(scores.to(at::kFloat), -1).to(scores.scalar_type());
  const at::Tensor out = at::matmul(probs, v).transpose(0, 1).reshape(
      {length, heads * hd});
  return at::linear(out, block.o);
}

at::Tensor Umt5Encoder::FeedForward(const Block& block,
                                    const at::Tensor& x) const {
  return at::linear(
      at::linear(x, block.fc1) * at::gelu(at::linear(x, block.gate), "tanh"),
      block.fc2);
}

absl::StatusOr<at::Tensor> Umt5Encoder::Encode(
    const std::vector<int64_t>& ids) const {
  if (ids.empty()) {
    return absl::InvalidArgumentError(
        "umT5: a prompt has no tokens (the tokenizer always appends </s>)");
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= config_.vocab) {
      return absl::InvalidArgumentError(
          absl::StrCat("umT5: token ", i, " has id ", ids[i],
                       ", outside the vocabulary [0, ", config_.vocab, ")"));
    }
  }
  at::Tensor result;
  RETURN_IF_ERROR(CatchTorch("umT5 encode", [&] {
    const at::Tensor index =
        at::tensor(ids, at::TensorOptions().dtype(at::kLong))
            .to(numerics_.device);
    at::Tensor x = token_embedding_.index_select(0, index);  // [n, dim]
    const at::Tensor buckets = BucketIndex(x.size(0));
    for (const Block& block : blocks_) {
      x = x + Attention(block, Norm(x, block.norm1), buckets);
      x = x + FeedForward(block, Norm(x, block.norm2));
    }
    result = Norm(x, final_norm_).to(at::kFloat);
  }));
  return result;
}

absl::StatusOr<at::Tensor> Umt5Encoder::EncodeContext(
    const std::vector<std::vector<int64_t>>& ids, int64_t text_len) const {
  return EncodeContext(ids, text_len, nullptr);
}

absl::StatusOr<at::Tensor> Umt5Encoder::EncodeContext(
    const std::vector<std::vector<int64_t>>& ids, int64_t text_len,
    std::vector<at::Tensor>* unpadded) const {
  for (size_t b = 0; b < ids.size(); ++b) {
    if (static_cast<int64_t>(ids[b].size()) > text_len) {
      return absl::InvalidArgumentError(absl::StrCat(
          "umT5: prompt ", b, " has ", ids[b].size(),
          " tokens, more than text_len ", text_len,
          " (tokenize with max_len = text_len)"));
    }
  }
  at::Tensor context;
  RETURN_IF_ERROR(CatchTorch("umT5 context", [&] {
    context = at::zeros(
        {static_cast<int64_t>(ids.size()), text_len, config_.dim},
        at::TensorOptions().dtype(at::kFloat).device(numerics_.device));
  }));
  if (unpadded != nullptr) unpadded->clear();
  for (size_t b = 0; b < ids.size(); ++b) {
    ASSIGN_OR_RETURN(at::Tensor rows, Encode(ids[b]));
    RETURN_IF_ERROR(CatchTorch("umT5 context", [&] {
      at::Tensor slot = context[static_cast<int64_t>(b)].narrow(
          0, 0, rows.size(0));
      slot.copy_(rows);
      if (unpadded != nullptr) unpadded->push_back(slot);
    }));
  }
  return context;
}

}  // namespace dserve::models
