#include "worker/models/text_encoder.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/models/attention.h"
#include <ATen/ATen.h>

namespace dserve::models {
namespace {

constexpr char kPrefix[] = "text_encoder.";

bool IsWordByte(unsigned char ch) {
  return std::isalpha(ch) || ch >= 0x80;
}

}  // namespace

WordTokenizer::WordTokenizer(std::vector<std::string> vocabulary)
    : vocabulary_(std::move(vocabulary)) {
  for (size_t i = 0; i < vocabulary_.size(); ++i) {
    sorted_.push_back({vocabulary_[i], static_cast<int64_t>(i)});
    if (vocabulary_[i] == "<pad>") pad_id_ = static_cast<int64_t>(i);
    if (vocabulary_[i] == "<unk>") unk_id_ = static_cast<int64_t>(i);
  }
  std::sort(sorted_.begin(), sorted_.end());
}

TokenizedText WordTokenizer::Encode(std::string_view text) const {
  TokenizedText out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && !IsWordByte(text[i])) ++i;
    size_t start = i;
    while (i < text.size() && IsWordByte(text[i])) ++i;
    if (start == i) break;
    std::string word(text.substr(start, i - start));
    for (char& ch : word) {
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    auto it = std::lower_bound(
        sorted_.begin(), sorted_.end(), word,
        [](const std::pair<std::string, int64_t>& e, const std::string& w) {
          return e.first < w;
        });
    if (it != sorted_.end() && it->first == word) {
      out.ids.push_back(it->second);
    } else {
      out.ids.push_back(unk_id_);
      out.unknown_words.push_back(word);
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::vector<int64_t>>>
TextEncoderWeightShapes(const TextEncoderConfig& c) {
  const std::string p = kPrefix;
  const int64_t d = c.dim;
  std::vector<std::pair<std::string, std::vector<int64_t>>> s;
  s.push_back({p + "token_embedding.weight", {c.vocab_size, d}});
  s.push_back({p + "position_embedding.weight", {c.max_len, d}});
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string b = absl::StrCat(p, "blocks.", i, ".");
    s.push_back({b + "norm1.weight", {d}});
    s.push_back({b + "norm1.bias", {d}});
    for (const char* proj : {"q", "k", "v", "o"}) {
      s.push_back({absl::StrCat(b, "attn.", proj, ".weight"), {d, d}});
      s.push_back({absl::StrCat(b, "attn.", proj, ".bias"), {d}});
    }
    s.push_back({b + "norm2.weight", {d}});
    s.push_back({b + "norm2.bias", {d}});
    s.push_back({b + "ffn.0.weight", {c.ffn_dim, d}});
    s.push_back({b + "ffn.0.bias", {c.ffn_dim}});
    s.push_back({b + "ffn.2.weight", {d, c.ffn_dim}});
    s.push_back({b + "ffn.2.bias", {d}});
  }
  s.push_back({p + "norm.weight", {d}});
  s.push_back({p + "norm.bias", {d}});
  return s;
}

absl::StatusOr<TextEncoder> TextEncoder::Create(const PipelineConfig& config,
                                                const WeightMap& weights) {
  const TextEncoderConfig& c = config.text_encoder;
  if (static_cast<int>(config.vocabulary.size()) != c.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "text encoder: vocabulary has ", config.vocabulary.size(),
        " words but text_encoder.vocab_size is ", c.vocab_size));
  }
  WeightMap w;
  for (const auto& [key, shape] : TextEncoderWeightShapes(c)) {
    auto it = weights.find(key);
    if (it == weights.end() || !it->second.defined()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "text encoder weights: missing key \"", key, "\" (expected [",
          absl::StrJoin(shape, ", "), "])"));
    }
    if (it->second.sizes() != at::IntArrayRef(shape) ||
        !at::isFloatingType(it->second.scalar_type())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "text encoder weights: key \"", key, "\" has shape [",
          absl::StrJoin(it->second.sizes(), ", "), "] dtype ",
          c10::toString(it->second.scalar_type()), ", expected [",
          absl::StrJoin(shape, ", "), "] floating point"));
    }
    w[key] = it->second.to(at::kFloat).contiguous();
  }
  const std::string p = kPrefix;
  TextEncoder enc(c, WordTokenizer(config.vocabulary));
  enc.token_embedding_ = w.at(p + "token_embedding.weight");
  enc.position_embedding_ = w.at(p + "position_embedding.weight");
  auto lin = [&](const std::string& name) {
    return Linear{w.at(name + ".weight"), w.at(name + ".bias")};
  };
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string b = absl::StrCat(p, "blocks.", i, ".");
    Layer l;
    l.norm1_weight = w.at(b + "norm1.weight");
    l.norm1_bias = w.at(b + "norm1.bias");
    l.q = lin(b + "attn.q");
    l.k = lin(b + "attn.k");
    l.v = lin(b + "attn.v");
    l.o = lin(b + "attn.o");
    l.norm2_weight = w.at(b + "norm2.weight");
    l.norm2_bias = w.at(b + "norm2.bias");
    l.ffn0 = lin(b + "ffn.0");
    l.ffn2 = lin(b + "ffn.2");
    enc.layers_.push_back(std::move(l));
  }
  enc.norm_weight_ = w.at(p + "norm.weight");
  enc.norm_bias_ = w.at(p + "norm.bias");
  return enc;
}

absl::StatusOr<TextEncoding> TextEncoder::Encode(
    const std::vector<std::string>& prompts, const std::string& field) const {
  const int64_t b = static_cast<int64_t>(prompts.size());
  const int64_t len = config_.max_len;
  const int64_t d = config_.dim;
  const int64_t heads = config_.num_heads;
  TextEncoding result;
  at::Tensor ids = at::full({b, len}, tokenizer_.pad_id(), at::kLong);
  at::Tensor pad = at::ones({b, len}, at::kBool);
  for (int64_t i = 0; i < b; ++i) {
    TokenizedText t = tokenizer_.Encode(prompts[i]);
    const int64_t n = static_cast<int64_t>(t.ids.size());
    if (n > len) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " has ", n, " words; the model reads at most ",
                       len, " (allowed range: 0..", len, " words)"));
    }
    if (n > 0) {
      ids[i].narrow(0, 0, n).copy_(at::tensor(t.ids, at::kLong));
      pad[i].narrow(0, 0, n).fill_(false);
    }
    result.lengths.push_back(static_cast<int>(n));
    result.unknown_words.push_back(std::move(t.unknown_words));
  }
  at::Tensor x = at::embedding(token_embedding_, ids) +
                 position_embedding_.unsqueeze(0);
  const double eps = config_.eps;
  for (const Layer& l : layers_) {
    at::Tensor h = at::layer_norm(x, {d}, l.norm1_weight, l.norm1_bias, eps);
    auto heads_of = [&](const Linear& p) {
      return at::linear(h, p.weight, p.bias).view({b, len, heads, -1});
    };
    at::Tensor y = Attention(heads_of(l.q), heads_of(l.k), heads_of(l.v), pad);
    x = x + at::linear(y.flatten(2), l.o.weight, l.o.bias);
    h = at::layer_norm(x, {d}, l.norm2_weight, l.norm2_bias, eps);
    x = x + at::linear(at::gelu(at::linear(h, l.ffn0.weight, l.ffn0.bias),
                                "tanh"),
                       l.ffn2.weight, l.ffn2.bias);
  }
  x = at::layer_norm(x, {d}, norm_weight_, norm_bias_, eps);
  result.embeddings = x.masked_fill(pad.unsqueeze(-1), 0.0);
  return result;
}

}  // namespace dserve::models
