#include "worker/models/dit.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/models/attention.h"
#include <ATen/ATen.h>

namespace dserve::models {
namespace {

// Angles [positions, d_axis/2] (float64) for one RoPE axis of width d_axis.
at::Tensor AxisAngles(int64_t positions, int d_axis, at::Device device) {
  auto f64 = at::TensorOptions().dtype(at::kDouble).device(device);
  at::Tensor pos = at::arange(positions, f64);
  at::Tensor inv =
      at::pow(10000.0, at::arange(0, d_axis, 2, f64).div(d_axis)).reciprocal();
  return at::outer(pos, inv);
}

at::Tensor LayerNormPlain(const at::Tensor& x, double eps) {
  return at::layer_norm(x, {x.size(-1)}, {}, {}, eps);
}

at::Tensor GeluTanh(const at::Tensor& x) { return at::gelu(x, "tanh"); }

// x @ W^T + b in the weight's dtype (the compute dtype; a no-op cast on the
// fp32 path).
at::Tensor Lin(const at::Tensor& x, const at::Tensor& weight,
               const at::Tensor& bias) {
  return at::linear(x.to(weight.scalar_type()), weight, bias);
}

at::Tensor F32(const at::Tensor& x) { return x.to(at::kFloat); }

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

RopeTables BuildRope(const TokenGrid& grid, int head_dim, at::Device device) {
  const int sixth = head_dim / 6;
  const int d_f = head_dim - 4 * sixth;
  const int d_hw = 2 * sixth;
  at::Tensor af = AxisAngles(grid.frames, d_f, device);   // [F, d_f/2]
  at::Tensor ah = AxisAngles(grid.height, d_hw, device);  // [H, d_hw/2]
  at::Tensor aw = AxisAngles(grid.width, d_hw, device);   // [W, d_hw/2]
  const int64_t f = grid.frames, h = grid.height, w = grid.width;
  at::Tensor angles = at::cat(
      {af.view({f, 1, 1, -1}).expand({f, h, w, af.size(1)}),
       ah.view({1, h, 1, -1}).expand({f, h, w, ah.size(1)}),
       aw.view({1, 1, w, -1}).expand({f, h, w, aw.size(1)})},
      -1);
  angles = angles.reshape({f * h * w, head_dim / 2});
  return {at::cos(angles).to(at::kFloat), at::sin(angles).to(at::kFloat)};
}

at::Tensor ApplyRope(const at::Tensor& x, const RopeTables& rope) {
  const int64_t s = x.size(1);
  const int64_t half = x.size(3) / 2;
  TORCH_CHECK(rope.cos.size(0) == s && rope.cos.size(1) == half,
              "ApplyRope: tables ", rope.cos.sizes(), " do not fit x ",
              x.sizes());
  // (x[2i] + i·x[2i+1]) · (cos + i·sin): one vectorised complex multiply.
  at::Tensor xc = at::view_as_complex(
      x.to(at::kFloat).contiguous().view({x.size(0), s, x.size(2), half, 2}));
  at::Tensor rot = at::complex(rope.cos, rope.sin).view({1, s, 1, half});
  return at::view_as_real(xc * rot).flatten(-2);
}

at::Tensor SinusoidalEmbedding(const at::Tensor& timesteps, int dim) {
  const int half = dim / 2;
  // On the timesteps' device: no device-to-host copy inside a GPU step.
  auto f64 = at::TensorOptions().dtype(at::kDouble).device(timesteps.device());
  at::Tensor freqs = at::pow(10000.0, at::arange(half, f64).div(-half));
  at::Tensor args = at::outer(timesteps.to(at::kDouble), freqs);
  return at::cat({at::cos(args), at::sin(args)}, 1).to(at::kFloat);
}

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor xf = x.to(at::kFloat);
  return xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true).add(eps)) *
         weight;
}

at::Tensor Patchify(const at::Tensor& x, const std::array<int, 3>& patch) {
  const int64_t b = x.size(0), c = x.size(1);
  const int64_t f = x.size(2) / patch[0], h = x.size(3) / patch[1],
                w = x.size(4) / patch[2];
  TORCH_CHECK(f * patch[0] == x.size(2) && h * patch[1] == x.size(3) &&
                  w * patch[2] == x.size(4),
              "Patchify: latents ", x.sizes(), " are not a multiple of patch (",
              patch[0], ", ", patch[1], ", ", patch[2], ")");
  return x.reshape({b, c, f, patch[0], h, patch[1], w, patch[2]})
      .permute({0, 2, 4, 6, 1, 3, 5, 7})
      .reshape({b, f * h * w, c * patch[0] * patch[1] * patch[2]});
}

at::Tensor Unpatchify(const at::Tensor& tokens, const TokenGrid& grid,
                      const std::array<int, 3>& patch, int channels) {
  const int64_t b = tokens.size(0);
  return tokens.narrow(1, 0, grid.size())
      .reshape({b, grid.frames, grid.height, grid.width, patch[0], patch[1],
                patch[2], channels})
      .permute({0, 7, 1, 4, 2, 5, 3, 6})
      .reshape({b, channels, grid.frames * patch[0], grid.height * patch[1],
                grid.width * patch[2]});
}

at::Tensor AppendCoordinatePlanes(const at::Tensor& latents) {
  const int64_t b = latents.size(0), f = latents.size(2), h = latents.size(3),
                w = latents.size(4);
  auto opts = latents.options();
  // Pixel centres: (i + 0.5) / n * 2 - 1.
  at::Tensor ys = (at::arange(h, opts).add(0.5)).mul(2.0 / h).sub(1.0);
  at::Tensor xs = (at::arange(w, opts).add(0.5)).mul(2.0 / w).sub(1.0);
  at::Tensor yplane = ys.view({1, 1, 1, h, 1}).expand({b, 1, f, h, w});
  at::Tensor xplane = xs.view({1, 1, 1, 1, w}).expand({b, 1, f, h, w});
  return at::cat({latents, yplane, xplane}, 1);
}

std::vector<std::pair<std::string, std::vector<int64_t>>> DiTWeightShapes(
    const DiTConfig& c) {
  const int64_t d = c.dim;
  std::vector<std::pair<std::string, std::vector<int64_t>>> s;
  auto linear = [&](const std::string& name, int64_t out, int64_t in) {
    s.push_back({name + ".weight", {out, in}});
    s.push_back({name + ".bias", {out}});
  };
  s.push_back({"patch_embedding.weight",
               {d, c.in_channels, c.patch[0], c.patch[1], c.patch[2]}});
  s.push_back({"patch_embedding.bias", {d}});
  linear("text_embedding.0", d, c.text_dim);
  linear("text_embedding.2", d, d);
  linear("time_embedding.0", d, c.freq_dim);
  linear("time_embedding.2", d, d);
  linear("time_projection.1", 6 * d, d);
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = absl::StrCat("blocks.", i, ".");
    s.push_back({p + "modulation", {1, 6, d}});
    for (const char* attn : {"self_attn", "cross_attn"}) {
      for (const char* proj : {"q", "k", "v", "o"}) {
        linear(absl::StrCat(p, attn, ".", proj), d, d);
      }
      s.push_back({absl::StrCat(p, attn, ".norm_q.weight"), {d}});
      s.push_back({absl::StrCat(p, attn, ".norm_k.weight"), {d}});
    }
    s.push_back({p + "norm3.weight", {d}});
    s.push_back({p + "norm3.bias", {d}});
    linear(p + "ffn.0", c.ffn_dim, d);
    linear(p + "ffn.2", d, c.ffn_dim);
  }
  s.push_back({"head.modulation", {1, 2, d}});
  linear("head.head", int64_t{c.out_channels} * c.patch_volume(), d);
  return s;
}

bool IsFp32DiTWeight(const std::string& key) {
  return key.find("modulation") != std::string::npos ||
         key.find("norm") != std::string::npos;
}

absl::StatusOr<DiT> DiT::Create(const DiTConfig& config,
                                const WeightMap& weights,
                                const DiTNumerics& numerics,
                                const DiTPart& part) {
  DiTPart held = part;
  if (held.last_layer < 0) held.last_layer = config.num_layers;
  if (held.first_layer < 0 || held.first_layer > held.last_layer ||
      held.last_layer > config.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DiT: layers [", held.first_layer, ", ", held.last_layer,
        ") are outside the model's [0, ", config.num_layers, ")"));
  }
  const std::string head_prefix = "head.";
  auto wanted = [&](const std::string& key) {
    if (key.compare(0, 7, "blocks.") == 0) {
      const int layer = std::stoi(key.substr(7));
      return layer >= held.first_layer && layer < held.last_layer;
    }
    if (key.compare(0, head_prefix.size(), head_prefix) == 0) return held.head;
    return true;
  };
  const at::TensorOptions compute = at::TensorOptions()
                                        .device(numerics.device)
                                        .dtype(numerics.compute_dtype);
  const at::TensorOptions fp32 =
      at::TensorOptions().device(numerics.device).dtype(at::kFloat);
  // One tensor at a time, straight to its target dtype and device: the
  // peak is what the DiT keeps plus one tensor, not a second fp32 copy.
  WeightMap w;
  for (const auto& [key, shape] : DiTWeightShapes(config)) {
    if (!wanted(key)) continue;
    auto it = weights.find(key);
    if (it == weights.end() || !it->second.defined()) {
      return absl::InvalidArgumentError(
          absl::StrCat("DiT weights: missing key \"", key, "\" (expected ",
                       ShapeString(shape), ")"));
    }
    if (it->second.sizes() != at::IntArrayRef(shape)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "DiT weights: key \"", key, "\" has shape ",
          ShapeString(it->second.sizes()), ", expected ", ShapeString(shape)));
    }
    if (!at::isFloatingType(it->second.scalar_type())) {
      return absl::InvalidArgumentError(
          absl::StrCat("DiT weights: key \"", key, "\" has dtype ",
                       c10::toString(it->second.scalar_type()),
                       ", expected a floating-point dtype"));
    }
    w[key] = it->second.to(IsFp32DiTWeight(key) ? fp32 : compute).contiguous();
  }
  auto lin = [&](const std::string& name) {
    return Linear{w.at(name + ".weight"), w.at(name + ".bias")};
  };
  auto f32 = [&](const std::string& name) { return w.at(name); };
  DiT dit;
  dit.config_ = config;
  dit.numerics_ = numerics;
  dit.part_ = held;
  dit.patch_embedding_ = {w.at("patch_embedding.weight").flatten(1),
                          w.at("patch_embedding.bias")};
  dit.text0_ = lin("text_embedding.0");
  dit.text2_ = lin("text_embedding.2");
  dit.time0_ = lin("time_embedding.0");
  dit.time2_ = lin("time_embedding.2");
  dit.time_projection_ = lin("time_projection.1");
  if (held.head) {
    dit.head_modulation_ = f32("head.modulation");
    dit.head_ = lin("head.head");
  }
  for (int i = held.first_layer; i < held.last_layer; ++i) {
    const std::string p = absl::StrCat("blocks.", i, ".");
    auto attn = [&](const std::string& a) {
      return AttnWeights{lin(p + a + ".q"), lin(p + a + ".k"),
                         lin(p + a + ".v"), lin(p + a + ".o"),
                         f32(p + a + ".norm_q.weight"),
                         f32(p + a + ".norm_k.weight")};
    };
    Block blk;
    blk.modulation = f32(p + "modulation");
    blk.self_attn = attn("self_attn");
    blk.norm3_weight = f32(p + "norm3.weight");
    blk.norm3_bias = f32(p + "norm3.bias");
    blk.cross_attn = attn("cross_attn");
    blk.ffn0 = lin(p + "ffn.0");
    blk.ffn2 = lin(p + "ffn.2");
    dit.blocks_.push_back(std::move(blk));
  }
  return dit;
}

int64_t DiT::weight_bytes() const {
  int64_t bytes = 0;
  auto add = [&](const at::Tensor& t) {
    if (t.defined()) bytes += static_cast<int64_t>(t.nbytes());
  };
  auto add_linear = [&](const Linear& l) {
    add(l.weight);
    add(l.bias);
  };
  for (const Linear* l : {&patch_embedding_, &text0_, &text2_, &time0_,
                          &time2_, &time_projection_, &head_}) {
    add_linear(*l);
  }
  add(head_modulation_);
  for (const Block& b : blocks_) {
    add(b.modulation);
    for (const AttnWeights* a : {&b.self_attn, &b.cross_attn}) {
      for (const Linear* l : {&a->q, &a->k, &a->v, &a->o}) add_linear(*l);
      add(a->norm_q);
      add(a->norm_k);
    }
    add(b.norm3_weight);
    add(b.norm3_bias);
    add_linear(b.ffn0);
    add_linear(b.ffn2);
  }
  return bytes;
}

DiTActivations DiT::Embed(const at::Tensor& latents,
                          const at::Tensor& timesteps,
                          const at::Tensor& context) const {
  const DiTConfig& c = config_;
  TORCH_CHECK(latents.dim() == 5 && latents.size(1) == c.in_channels,
              "DiT::Embed: latents must be [B, ", c.in_channels,
              ", F, H, W], got ", latents.sizes());
  TORCH_CHECK(timesteps.dim() == 1 && timesteps.size(0) == latents.size(0),
              "DiT::Embed: timesteps must be [B], got ", timesteps.sizes());
  TORCH_CHECK(context.dim() == 3 && context.size(0) == latents.size(0) &&
                  context.size(2) == c.text_dim,
              "DiT::Embed: context must be [B, L, ", c.text_dim, "], got ",
              context.sizes());
  DiTActivations a;
  a.grid = {latents.size(2) / c.patch[0], latents.size(3) / c.patch[1],
            latents.size(4) / c.patch[2]};
  // The residual stream and the modulation vectors are fp32; the embedded
  // text is only ever a matmul input, so it stays in the compute dtype.
  a.x = F32(Lin(Patchify(latents.to(at::kFloat), c.patch),
                patch_embedding_.weight, patch_embedding_.bias));
  at::Tensor sinus = SinusoidalEmbedding(timesteps, c.freq_dim);
  a.e = F32(Lin(at::silu(Lin(sinus, time0_.weight, time0_.bias)),
                time2_.weight, time2_.bias));
  a.e0 = F32(Lin(at::silu(a.e), time_projection_.weight,
                 time_projection_.bias))
             .view({-1, 6, c.dim});
  a.context = Lin(GeluTanh(Lin(context, text0_.weight, text0_.bias)),
                  text2_.weight, text2_.bias);
  a.rope = BuildRope(a.grid, c.head_dim(), latents.device());
  return a;
}

void DiT::RunBlock(const Block& blk, DiTActivations& a,
                   const AttentionCore& core) const {
  const DiTConfig& c = config_;
  const double eps = c.eps;
  const int64_t b = a.x.size(0);
  const int64_t s = a.x.size(1);
  const int64_t hd = c.head_dim();
  at::Tensor m = blk.modulation + a.e0;  // [B, 6, dim]
  auto mod = [&](int i) { return m.select(1, i).unsqueeze(1); };

  // Self-attention: RMS-normed q/k over the whole dim, then 3-D RoPE.
  {
    const AttnWeights& w = blk.self_attn;
    at::Tensor h = at::addcmul(mod(0), LayerNormPlain(a.x, eps), 1 + mod(1));
    at::Tensor q = RmsNorm(Lin(h, w.q.weight, w.q.bias), w.norm_q, eps)
                       .view({b, s, -1, hd});
    at::Tensor k = RmsNorm(Lin(h, w.k.weight, w.k.bias), w.norm_k, eps)
                       .view({b, s, -1, hd});
    at::Tensor v = Lin(h, w.v.weight, w.v.bias).view({b, s, -1, hd});
    // RoPE in fp32, then the attention inputs in the compute dtype (what
    // the fused bf16 kernels read on a GPU).
    const at::ScalarType dt = numerics_.compute_dtype;
    q = ApplyRope(q, a.rope).to(dt);
    k = ApplyRope(k, a.rope).to(dt);
    at::Tensor y = core ? core(q, k, v, a.key_padding_mask)
                        : Attention(q, k, v, a.key_padding_mask);
    y = F32(Lin(y.flatten(2), w.o.weight, w.o.bias));
    a.x = at::addcmul(a.x, y, mod(2));
  }
  // Cross-attention to the text: affine norm3, no gate, no mask.
  {
    const AttnWeights& w = blk.cross_attn;
    at::Tensor h = at::layer_norm(a.x, {c.dim}, blk.norm3_weight,
                                  blk.norm3_bias, eps);
    const int64_t l = a.context.size(1);
    const at::ScalarType dt = numerics_.compute_dtype;
    at::Tensor q = RmsNorm(Lin(h, w.q.weight, w.q.bias), w.norm_q, eps)
                       .view({b, s, -1, hd})
                       .to(dt);
    at::Tensor k = RmsNorm(Lin(a.context, w.k.weight, w.k.bias), w.norm_k, eps)
                       .view({b, l, -1, hd})
                       .to(dt);
    at::Tensor v = Lin(a.context, w.v.weight, w.v.bias).view({b, l, -1, hd});
    at::Tensor y = Attention(q, k, v);
    a.x = a.x + F32(Lin(y.flatten(2), w.o.weight, w.o.bias));
  }
  // FFN with GELU(tanh).
  {
    at::Tensor h = at::addcmul(mod(3), LayerNormPlain(a.x, eps), 1 + mod(4));
    at::Tensor y = F32(Lin(GeluTanh(Lin(h, blk.ffn0.weight, blk.ffn0.bias)),
                           blk.ffn2.weight, blk.ffn2.bias));
    a.x = at::addcmul(a.x, y, mod(5));
  }
}

void DiT::RunBlocks(DiTActivations& a, int first, int last,
                    const AttentionCore& core) const {
  if (first == last) return;
  TORCH_CHECK(part_.first_layer <= first && first <= last &&
                  last <= part_.last_layer &&
                  last - part_.first_layer <=
                      static_cast<int>(blocks_.size()),
              "DiT::RunBlocks: range [", first, ", ", last,
              ") is outside the blocks this DiT holds [", part_.first_layer,
              ", ", part_.first_layer + static_cast<int>(blocks_.size()),
              ")");
  for (int i = first; i < last; ++i) {
    RunBlock(blocks_[i - part_.first_layer], a, core);
  }
}

at::Tensor DiT::HeadTokens(const DiTActivations& a) const {
  TORCH_CHECK(part_.head,
              "DiT::HeadTokens: this DiT does not hold the head (it is a "
              "pipeline stage before the last)");
  at::Tensor m = head_modulation_ + a.e.unsqueeze(1);  // [B, 2, dim]
  at::Tensor shift = m.select(1, 0).unsqueeze(1);
  at::Tensor scale = m.select(1, 1).unsqueeze(1);
  at::Tensor h = at::addcmul(shift, LayerNormPlain(a.x, config_.eps), 1 + scale);
  return F32(Lin(h, head_.weight, head_.bias));
}

at::Tensor DiT::Head(const DiTActivations& a) const {
  return Unpatchify(HeadTokens(a), a.grid, config_.patch,
                    config_.out_channels);
}

at::Tensor DiT::Forward(const at::Tensor& latents, const at::Tensor& timesteps,
                        const at::Tensor& context) const {
  DiTActivations a = Embed(latents, timesteps, context);
  RunBlocks(a, 0, config_.num_layers);
  return Head(a);
}

}  // namespace dserve::models
