#include "worker/models/checkpoint/wan_key_maps.h"

#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace dserve::models::checkpoint {
namespace {

// A rename rule between dotted names. In a pattern, "#" stands for one
// decimal segment (a block index, copied across) and a trailing "*" for one
// or more remaining segments (".weight", ".bias", ...); other segments match
// literally.
struct Rule {
  const char* wan;
  const char* diffusers;
};

constexpr Rule kDiTRules[] = {
    {"patch_embedding.*", "patch_embedding.*"},
    {"text_embedding.0.*", "condition_embedder.text_embedder.linear_1.*"},
    {"text_embedding.2.*", "condition_embedder.text_embedder.linear_2.*"},
    {"time_embedding.0.*", "condition_embedder.time_embedder.linear_1.*"},
    {"time_embedding.2.*", "condition_embedder.time_embedder.linear_2.*"},
    {"time_projection.1.*", "condition_embedder.time_proj.*"},
    {"head.modulation", "scale_shift_table"},
    {"head.head.*", "proj_out.*"},
    {"blocks.#.modulation", "blocks.#.scale_shift_table"},
    {"blocks.#.self_attn.q.*", "blocks.#.attn1.to_q.*"},
    {"blocks.#.self_attn.k.*", "blocks.#.attn1.to_k.*"},
    {"blocks.#.self_attn.v.*", "blocks.#.attn1.to_v.*"},
    {"blocks.#.self_attn.o.*", "blocks.#.attn1.to_out.0.*"},
    {"blocks.#.self_attn.norm_q.*", "blocks.#.attn1.norm_q.*"},
    {"blocks.#.self_attn.norm_k.*", "blocks.#.attn1.norm_k.*"},
    {"blocks.#.cross_attn.q.*", "blocks.#.attn2.to_q.*"},
    {"blocks.#.cross_attn.k.*", "blocks.#.attn2.to_k.*"},
    {"blocks.#.cross_attn.v.*", "blocks.#.attn2.to_v.*"},
    {"blocks.#.cross_attn.o.*", "blocks.#.attn2.to_out.0.*"},
    {"blocks.#.cross_attn.norm_q.*", "blocks.#.attn2.norm_q.*"},
    {"blocks.#.cross_attn.norm_k.*", "blocks.#.attn2.norm_k.*"},
    {"blocks.#.norm3.*", "blocks.#.norm2.*"},
    {"blocks.#.ffn.0.*", "blocks.#.ffn.net.0.proj.*"},
    {"blocks.#.ffn.2.*", "blocks.#.ffn.net.2.*"},
};

constexpr char kT5Alias[] = "encoder.embed_tokens.weight";

constexpr Rule kT5Rules[] = {
    {"token_embedding.weight", "shared.weight"},
    {"norm.weight", "encoder.final_layer_norm.weight"},
    {"blocks.#.norm1.weight", "encoder.block.#.layer.0.layer_norm.weight"},
    {"blocks.#.attn.q.weight", "encoder.block.#.layer.0.SelfAttention.q.weight"},
    {"blocks.#.attn.k.weight", "encoder.block.#.layer.0.SelfAttention.k.weight"},
    {"blocks.#.attn.v.weight", "encoder.block.#.layer.0.SelfAttention.v.weight"},
    {"blocks.#.attn.o.weight", "encoder.block.#.layer.0.SelfAttention.o.weight"},
    {"blocks.#.pos_embedding.embedding.weight",
     "encoder.block.#.layer.0.SelfAttention.relative_attention_bias.weight"},
    {"blocks.#.norm2.weight", "encoder.block.#.layer.1.layer_norm.weight"},
    {"blocks.#.ffn.gate.0.weight",
     "encoder.block.#.layer.1.DenseReluDense.wi_0.weight"},
    {"blocks.#.ffn.fc1.weight",
     "encoder.block.#.layer.1.DenseReluDense.wi_1.weight"},
    {"blocks.#.ffn.fc2.weight", "encoder.block.#.layer.1.DenseReluDense.wo.weight"},
};

// Inside a VAE residual block (Wan's `residual` Sequential indices).
constexpr Rule kResidualRules[] = {
    {"residual.0.gamma", "norm1.gamma"},
    {"residual.2.*", "conv1.*"},
    {"residual.3.gamma", "norm2.gamma"},
    {"residual.6.*", "conv2.*"},
    {"shortcut.*", "conv_shortcut.*"},
};
constexpr Rule kResampleRules[] = {
    {"resample.1.*", "resample.1.*"},
    {"time_conv.*", "time_conv.*"},
};
constexpr Rule kAttentionRules[] = {
    {"norm.gamma", "norm.gamma"},
    {"to_qkv.*", "to_qkv.*"},
    {"proj.*", "proj.*"},
};
// VAE containers: the part before the block's own names.
constexpr Rule kVaeTopRules[] = {
    {"conv1.*", "quant_conv.*"},
    {"conv2.*", "post_quant_conv.*"},
};
constexpr const char* kCoders[] = {"encoder", "decoder"};
// Per coder (prefix "encoder." / "decoder." on both sides).
constexpr Rule kCoderRules[] = {
    {"conv1.*", "conv_in.*"},
    {"head.0.gamma", "norm_out.gamma"},
    {"head.2.*", "conv_out.*"},
};
constexpr int kDecoderBlocksPerStage = 4;  // 3 residual blocks + 1 resample

using Segments = std::vector<std::string>;

bool IsIndex(const std::string& s) {
  if (s.empty() || s.size() > 6) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return s.size() == 1 || s[0] != '0';
}

// Matches `key` against `pattern`; on success fills the captured indices and
// the "*" remainder (empty if the pattern has none).
bool Match(const std::string& pattern, const Segments& key,
           std::vector<std::string>& indices, Segments& rest) {
  const Segments p = absl::StrSplit(pattern, '.');
  indices.clear();
  rest.clear();
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == "*") {
      if (i >= key.size()) return false;
      rest.assign(key.begin() + i, key.end());
      return true;
    }
    if (i >= key.size()) return false;
    if (p[i] == "#") {
      if (!IsIndex(key[i])) return false;
      indices.push_back(key[i]);
    } else if (p[i] != key[i]) {
      return false;
    }
  }
  return p.size() == key.size();
}

std::string Fill(const std::string& pattern,
                 const std::vector<std::string>& indices, const Segments& rest) {
  Segments out;
  size_t next = 0;
  const Segments parts = absl::StrSplit(pattern, '.');
  for (const std::string& s : parts) {
    if (s == "#") {
      out.push_back(indices[next++]);
    } else if (s == "*") {
      out.insert(out.end(), rest.begin(), rest.end());
    } else {
      out.push_back(s);
    }
  }
  return absl::StrJoin(out, ".");
}

// Applies the first matching rule in the given direction.
template <size_t N>
bool ApplyRules(const Rule (&rules)[N], bool to_wan, const Segments& key,
                std::string& out) {
  std::vector<std::string> indices;
  Segments rest;
  for (const Rule& r : rules) {
    const char* from = to_wan ? r.diffusers : r.wan;
    const char* to = to_wan ? r.wan : r.diffusers;
    if (Match(from, key, indices, rest)) {
      out = Fill(to, indices, rest);
      return true;
    }
  }
  return false;
}

Segments Tail(const Segments& s, size_t from) {
  return Segments(s.begin() + std::min(from, s.size()), s.end());
}

std::string Join(const std::string& prefix, const std::string& name) {
  return prefix + "." + name;
}

// Wan → diffusers for the VAE.
bool VaeToDiffusers(const Segments& k, std::string& out) {
  if (ApplyRules(kVaeTopRules, false, k, out)) return true;
  if (k.size() < 2) return false;
  for (const char* coder : kCoders) {
    if (k[0] != coder) continue;
    const Segments in = Tail(k, 1);
    std::string name;
    if (ApplyRules(kCoderRules, false, in, name)) {
      out = Join(coder, name);
      return true;
    }
    if (in.size() >= 3 && in[0] == "middle") {
      const Segments inner = Tail(in, 2);
      if (in[1] == "0" || in[1] == "2") {
        if (!ApplyRules(kResidualRules, false, inner, name)) return false;
        out = absl::StrCat(coder, ".mid_block.resnets.",
                           in[1] == "0" ? "0" : "1", ".", name);
        return true;
      }
      if (in[1] == "1" && ApplyRules(kAttentionRules, false, inner, name)) {
        out = absl::StrCat(coder, ".mid_block.attentions.0.", name);
        return true;
      }
      return false;
    }
    if (coder == std::string("encoder") && in.size() >= 3 &&
        in[0] == "downsamples" && IsIndex(in[1])) {
      const Segments inner = Tail(in, 2);
      if (ApplyRules(kResidualRules, false, inner, name) ||
          ApplyRules(kResampleRules, false, inner, name)) {
        out = absl::StrCat("encoder.down_blocks.", in[1], ".", name);
        return true;
      }
      return false;
    }
    if (coder == std::string("decoder") && in.size() >= 3 &&
        in[0] == "upsamples" && IsIndex(in[1])) {
      const int n = std::atoi(in[1].c_str());
      const int stage = n / kDecoderBlocksPerStage;
      const int slot = n % kDecoderBlocksPerStage;
      const Segments inner = Tail(in, 2);
      if (slot == kDecoderBlocksPerStage - 1) {
        if (!ApplyRules(kResampleRules, false, inner, name)) return false;
        out = absl::StrCat("decoder.up_blocks.", stage, ".upsamplers.0.", name);
        return true;
      }
      if (!ApplyRules(kResidualRules, false, inner, name)) return false;
      out = absl::StrCat("decoder.up_blocks.", stage, ".resnets.", slot, ".",
                         name);
      return true;
    }
  }
  return false;
}

// diffusers → Wan for the VAE.
bool VaeToWan(const Segments& k, std::string& out) {
  if (ApplyRules(kVaeTopRules, true, k, out)) return true;
  if (k.size() < 2) return false;
  for (const char* coder : kCoders) {
    if (k[0] != coder) continue;
    const Segments in = Tail(k, 1);
    std::string name;
    if (ApplyRules(kCoderRules, true, in, name)) {
      out = Join(coder, name);
      return true;
    }
    if (in.size() >= 4 && in[0] == "mid_block") {
      const Segments inner = Tail(in, 3);
      if (in[1] == "resnets" && (in[2] == "0" || in[2] == "1")) {
        if (!ApplyRules(kResidualRules, true, inner, name)) return false;
        out = absl::StrCat(coder, ".middle.", in[2] == "0" ? "0" : "2", ".",
                           name);
        return true;
      }
      if (in[1] == "attentions" && in[2] == "0" &&
          ApplyRules(kAttentionRules, true, inner, name)) {
        out = absl::StrCat(coder, ".middle.1.", name);
        return true;
      }
      return false;
    }
    if (coder == std::string("encoder") && in.size() >= 3 &&
        in[0] == "down_blocks" && IsIndex(in[1])) {
      const Segments inner = Tail(in, 2);
      if (ApplyRules(kResidualRules, true, inner, name) ||
          ApplyRules(kResampleRules, true, inner, name)) {
        out = absl::StrCat("encoder.downsamples.", in[1], ".", name);
        return true;
      }
      return false;
    }
    if (coder == std::string("decoder") && in.size() >= 5 &&
        in[0] == "up_blocks" && IsIndex(in[1]) && IsIndex(in[3])) {
      const int stage = std::atoi(in[1].c_str());
      const int slot = std::atoi(in[3].c_str());
      const Segments inner = Tail(in, 4);
      if (in[2] == "resnets" && slot < kDecoderBlocksPerStage - 1 &&
          ApplyRules(kResidualRules, true, inner, name)) {
        out = absl::StrCat("decoder.upsamples.",
                           stage * kDecoderBlocksPerStage + slot, ".", name);
        return true;
      }
      if (in[2] == "upsamplers" && slot == 0 &&
          ApplyRules(kResampleRules, true, inner, name)) {
        out = absl::StrCat("decoder.upsamples.",
                           stage * kDecoderBlocksPerStage +
                               kDecoderBlocksPerStage - 1,
                           ".", name);
        return true;
      }
    }
  }
  return false;
}

absl::Status Unknown(WanComponent component, const std::string& key,
                     const char* layout) {
  return absl::InvalidArgumentError(
      absl::StrCat("\"", key, "\" is not a ", WanComponentName(component),
                   " key of the ", layout, " layout"));
}

}  // namespace

const char* WanComponentName(WanComponent component) {
  switch (component) {
    case WanComponent::kDiT:
      return "DiT";
    case WanComponent::kT5:
      return "umT5";
    case WanComponent::kVae:
      return "VAE";
  }
  return "?";
}

absl::StatusOr<std::string> WanKeyFromDiffusers(WanComponent component,
                                                const std::string& key) {
  const Segments k = absl::StrSplit(key, '.');
  std::string out;
  bool ok = false;
  switch (component) {
    case WanComponent::kDiT:
      ok = ApplyRules(kDiTRules, true, k, out);
      break;
    case WanComponent::kT5:
      if (key == kT5Alias) {
        out = "token_embedding.weight";
        ok = true;
      } else {
        ok = ApplyRules(kT5Rules, true, k, out);
      }
      break;
    case WanComponent::kVae:
      ok = VaeToWan(k, out);
      break;
  }
  if (!ok) return Unknown(component, key, "diffusers");
  return out;
}

absl::StatusOr<std::string> DiffusersKeyFromWan(WanComponent component,
                                                const std::string& key) {
  const Segments k = absl::StrSplit(key, '.');
  std::string out;
  bool ok = false;
  switch (component) {
    case WanComponent::kDiT:
      ok = ApplyRules(kDiTRules, false, k, out);
      break;
    case WanComponent::kT5:
      ok = ApplyRules(kT5Rules, false, k, out);
      break;
    case WanComponent::kVae:
      ok = VaeToDiffusers(k, out);
      break;
  }
  if (!ok) return Unknown(component, key, "Wan");
  return out;
}

absl::StatusOr<WeightMap> WanWeightsFromDiffusers(WanComponent component,
                                                  const WeightMap& weights) {
  WeightMap out;
  const bool has_shared = weights.count("shared.weight") > 0;
  for (const auto& [key, tensor] : weights) {
    if (component == WanComponent::kT5 && key == kT5Alias && has_shared) {
      if (tensor.sizes() != weights.at("shared.weight").sizes()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "umT5: tied alias \"", kT5Alias,
            "\" has a different shape from \"shared.weight\""));
      }
      continue;
    }
    absl::StatusOr<std::string> name = WanKeyFromDiffusers(component, key);
    if (!name.ok()) return name.status();
    if (!out.emplace(*name, tensor).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(WanComponentName(component), ": \"", key,
                       "\" maps to \"", *name, "\", which is already set"));
    }
  }
  return out;
}

absl::StatusOr<WeightMap> DiffusersWeightsFromWan(WanComponent component,
                                                  const WeightMap& weights) {
  WeightMap out;
  for (const auto& [key, tensor] : weights) {
    absl::StatusOr<std::string> name = DiffusersKeyFromWan(component, key);
    if (!name.ok()) return name.status();
    if (!out.emplace(*name, tensor).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(WanComponentName(component), ": \"", key,
                       "\" maps to \"", *name, "\", which is already set"));
    }
  }
  return out;
}

}  // namespace dserve::models::checkpoint
