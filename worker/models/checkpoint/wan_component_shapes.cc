#include "worker/models/checkpoint/wan_component_shapes.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include <ATen/ATen.h>

namespace dserve::models::checkpoint {
namespace {

std::string Shape(at::IntArrayRef s) {
  return absl::StrCat("[", absl::StrJoin(s, ", "), "]");
}

absl::StatusOr<std::vector<int64_t>> ShapeOf(const WeightMap& w,
                                             const std::string& key,
                                             size_t rank) {
  auto it = w.find(key);
  if (it == w.end()) {
    return absl::InvalidArgumentError(absl::StrCat("missing key \"", key, "\""));
  }
  if (it->second.dim() != static_cast<int64_t>(rank)) {
    return absl::InvalidArgumentError(
        absl::StrCat("key \"", key, "\" has shape ",
                     Shape(it->second.sizes()), ", expected rank ", rank));
  }
  return it->second.sizes().vec();
}

}  // namespace

ShapeList T5WeightShapes(const T5Sizes& s) {
  ShapeList out;
  const int64_t inner = s.heads * s.head_dim;
  out.push_back({"token_embedding.weight", {s.vocab, s.dim}});
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = absl::StrCat("blocks.", i, ".");
    out.push_back({p + "norm1.weight", {s.dim}});
    for (const char* proj : {"q", "k", "v"}) {
      out.push_back({absl::StrCat(p, "attn.", proj, ".weight"), {inner, s.dim}});
    }
    out.push_back({p + "attn.o.weight", {s.dim, inner}});
    out.push_back({p + "norm2.weight", {s.dim}});
    out.push_back({p + "ffn.gate.0.weight", {s.ffn_dim, s.dim}});
    out.push_back({p + "ffn.fc1.weight", {s.ffn_dim, s.dim}});
    out.push_back({p + "ffn.fc2.weight", {s.dim, s.ffn_dim}});
    out.push_back(
        {p + "pos_embedding.embedding.weight", {s.num_buckets, s.heads}});
  }
  out.push_back({"norm.weight", {s.dim}});
  return out;
}

absl::StatusOr<T5Sizes> InferT5Sizes(const WeightMap& w) {
  T5Sizes s;
  auto emb = ShapeOf(w, "token_embedding.weight", 2);
  if (!emb.ok()) return emb.status();
  s.vocab = (*emb)[0];
  s.dim = (*emb)[1];
  while (w.count(absl::StrCat("blocks.", s.layers, ".norm1.weight"))) {
    ++s.layers;
  }
  if (s.layers == 0) {
    return absl::InvalidArgumentError("missing key \"blocks.0.norm1.weight\"");
  }
  auto bias = ShapeOf(w, "blocks.0.pos_embedding.embedding.weight", 2);
  if (!bias.ok()) return bias.status();
  s.num_buckets = (*bias)[0];
  s.heads = (*bias)[1];
  auto q = ShapeOf(w, "blocks.0.attn.q.weight", 2);
  if (!q.ok()) return q.status();
  if (s.heads <= 0 || (*q)[0] % s.heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"blocks.0.attn.q.weight\" has ", (*q)[0],
        " rows, not a multiple of the ", s.heads,
        " heads of blocks.0.pos_embedding.embedding.weight"));
  }
  s.head_dim = (*q)[0] / s.heads;
  auto fc1 = ShapeOf(w, "blocks.0.ffn.fc1.weight", 2);
  if (!fc1.ok()) return fc1.status();
  s.ffn_dim = (*fc1)[0];
  return s;
}

ShapeList VaeWeightShapes(const VaeSizes& s) {
  ShapeList out;
  auto conv = [&](const std::string& name, int64_t o, int64_t i,
                  std::vector<int64_t> k) {
    std::vector<int64_t> shape = {o, i};
    shape.insert(shape.end(), k.begin(), k.end());
    out.push_back({name + ".weight", shape});
    out.push_back({name + ".bias", {o}});
  };
  auto rb = [&](const std::string& p, int64_t in, int64_t o) {
    out.push_back({p + "residual.0.gamma", {in, 1, 1, 1}});
    conv(p + "residual.2", o, in, {3, 3, 3});
    out.push_back({p + "residual.3.gamma", {o, 1, 1, 1}});
    conv(p + "residual.6", o, o, {3, 3, 3});
    if (in != o) conv(p + "shortcut", o, in, {1, 1, 1});
  };
  auto attn = [&](const std::string& p, int64_t c) {
    out.push_back({p + "norm.gamma", {c, 1, 1}});
    conv(p + "to_qkv", 3 * c, c, {1, 1});
    conv(p + "proj", c, c, {1, 1});
  };
  const int64_t b = s.base_dim, z = s.z_dim;
  const std::vector<int64_t> mult = {1, 2, 4, 4};
  const std::vector<bool> temporal_down = {false, true, true};
  // Encoder3d.
  std::vector<int64_t> dims = {b, b * mult[0], b * mult[1], b * mult[2],
                               b * mult[3]};
  conv("encoder.conv1", dims[0], 3, {3, 3, 3});
  int n = 0;
  int64_t o = dims[0];
  for (size_t i = 0; i + 1 < dims.size(); ++i) {
    int64_t in = dims[i];
    o = dims[i + 1];
    for (int r = 0; r < 2; ++r, ++n) {
      rb(absl::StrCat("encoder.downsamples.", n, "."), in, o);
      in = o;
    }
    if (i + 1 != mult.size()) {
      const std::string p = absl::StrCat("encoder.downsamples.", n++, ".");
      conv(p + "resample.1", o, o, {3, 3});
      if (temporal_down[i]) conv(p + "time_conv", o, o, {3, 1, 1});
    }
  }
  rb("encoder.middle.0.", o, o);
  attn("encoder.middle.1.", o);
  rb("encoder.middle.2.", o, o);
  out.push_back({"encoder.head.0.gamma", {o, 1, 1, 1}});
  conv("encoder.head.2", 2 * z, o, {3, 3, 3});
  conv("conv1", 2 * z, 2 * z, {1, 1, 1});
  conv("conv2", z, z, {1, 1, 1});
  // Decoder3d: widths [4b, 4b, 4b, 2b, b], temporal up [T, T, F].
  dims = {b * mult[3], b * mult[3], b * mult[2], b * mult[1], b * mult[0]};
  conv("decoder.conv1", dims[0], z, {3, 3, 3});
  rb("decoder.middle.0.", dims[0], dims[0]);
  attn("decoder.middle.1.", dims[0]);
  rb("decoder.middle.2.", dims[0], dims[0]);
  n = 0;
  for (size_t i = 0; i + 1 < dims.size(); ++i) {
    int64_t in = i == 0 ? dims[i] : dims[i] / 2;
    o = dims[i + 1];
    for (int r = 0; r < 3; ++r, ++n) {
      rb(absl::StrCat("decoder.upsamples.", n, "."), in, o);
      in = o;
    }
    if (i + 1 != mult.size()) {
      const std::string p = absl::StrCat("decoder.upsamples.", n++, ".");
      conv(p + "resample.1", o / 2, o, {3, 3});
      if (!temporal_down[temporal_down.size() - 1 - i]) continue;
      conv(p + "time_conv", 2 * o, o, {3, 1, 1});
    }
  }
  out.push_back({"decoder.head.0.gamma", {o, 1, 1, 1}});
  conv("decoder.head.2", 3, o, {3, 3, 3});
  return out;
}

absl::StatusOr<VaeSizes> InferVaeSizes(const WeightMap& w) {
  VaeSizes s;
  auto head = ShapeOf(w, "decoder.head.2.weight", 5);
  if (!head.ok()) return head.status();
  s.base_dim = (*head)[1];
  auto conv2 = ShapeOf(w, "conv2.weight", 5);
  if (!conv2.ok()) return conv2.status();
  s.z_dim = (*conv2)[0];
  return s;
}

absl::Status CheckWeights(
    const WeightMap& weights, const ShapeList& expected,
    const std::string& file,
    const std::function<std::string(const std::string&)>& file_key,
    const std::function<bool(const std::string&)>& keep) {
  auto name = [&](const std::string& key) {
    if (!file_key) return absl::StrCat("\"", key, "\"");
    const std::string in_file = file_key(key);
    if (in_file == key) return absl::StrCat("\"", key, "\"");
    return absl::StrCat("\"", in_file, "\" (Wan name \"", key, "\")");
  };
  std::set<std::string> known;
  for (const auto& [key, shape] : expected) {
    known.insert(key);
    if (keep && !keep(key)) continue;
    auto it = weights.find(key);
    if (it == weights.end() || !it->second.defined()) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": missing tensor ", name(key), " (expected ",
                       Shape(shape), ")"));
    }
    if (it->second.sizes() != at::IntArrayRef(shape)) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": tensor ", name(key), " has shape ",
          Shape(it->second.sizes()), ", expected ", Shape(shape)));
    }
    if (!at::isFloatingType(it->second.scalar_type())) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": tensor ", name(key), " has dtype ",
                       c10::toString(it->second.scalar_type()),
                       ", expected a floating-point dtype"));
    }
  }
  for (const auto& [key, tensor] : weights) {
    if (!known.count(key)) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": unexpected tensor ", name(key),
          " (not part of the model the other tensors' shapes describe)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace dserve::models::checkpoint
