#include "training/trainable_text_encoder.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "worker/models/text_encoder.h"
#include <ATen/ATen.h>

namespace dserve::training {

absl::StatusOr<at::Tensor> TrainableTextEncode(
    const models::PipelineConfig& config, const models::WeightMap& weights,
    const std::vector<std::string>& prompts) {
  const models::TextEncoderConfig& c = config.text_encoder;
  for (const auto& [key, shape] : models::TextEncoderWeightShapes(c)) {
    auto it = weights.find(key);
    if (it == weights.end() || it->second.sizes() != at::IntArrayRef(shape)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "text encoder weights: missing or mis-shaped key \"", key, "\""));
    }
  }
  auto w = [&](const std::string& key) -> const at::Tensor& {
    return weights.at("text_encoder." + key);
  };
  const models::WordTokenizer tokenizer(config.vocabulary);
  const int64_t b = static_cast<int64_t>(prompts.size());
  const int64_t len = c.max_len, d = c.dim, heads = c.num_heads;
  at::Tensor ids = at::full({b, len}, tokenizer.pad_id(), at::kLong);
  at::Tensor pad = at::ones({b, len}, at::kBool);
  for (int64_t i = 0; i < b; ++i) {
    const std::vector<int64_t> t = tokenizer.Encode(prompts[i]).ids;
    const int64_t n = static_cast<int64_t>(t.size());
    if (n > len) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompt has ", n, " words; the model reads at most ", len));
    }
    if (n > 0) {
      ids[i].narrow(0, 0, n).copy_(at::tensor(t, at::kLong));
      pad[i].narrow(0, 0, n).fill_(false);
    }
  }
  const at::Tensor key_mask = pad.view({b, 1, 1, len});
  const double scale = 1.0 / std::sqrt(static_cast<double>(d / heads));
  at::Tensor x = at::embedding(w("token_embedding.weight"), ids) +
                 w("position_embedding.weight").unsqueeze(0);
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = absl::StrCat("blocks.", i, ".");
    auto lin = [&](const at::Tensor& in, const std::string& name) {
      return at::linear(in, w(p + name + ".weight"), w(p + name + ".bias"));
    };
    at::Tensor h = at::layer_norm(x, {d}, w(p + "norm1.weight"),
                                  w(p + "norm1.bias"), c.eps);
    auto heads_of = [&](const std::string& name) {
      return lin(h, name).view({b, len, heads, -1}).transpose(1, 2);
    };
    at::Tensor scores =
        at::matmul(heads_of("attn.q"), heads_of("attn.k").transpose(-1, -2)) *
        scale;
    at::Tensor probs = at::softmax(scores.masked_fill(key_mask, -1e30), -1);
    at::Tensor y = at::matmul(probs, heads_of("attn.v")).transpose(1, 2);
    x = x + lin(y.reshape({b, len, d}), "attn.o");
    h = at::layer_norm(x, {d}, w(p + "norm2.weight"), w(p + "norm2.bias"),
                       c.eps);
    x = x + lin(at::gelu(lin(h, "ffn.0"), "tanh"), "ffn.2");
  }
  x = at::layer_norm(x, {d}, w("norm.weight"), w("norm.bias"), c.eps);
  return x.masked_fill(pad.unsqueeze(-1), 0.0);
}

}  // namespace dserve::training
