#ifndef DSERVE_WORKER_MODELS_DIT_H_
#define DSERVE_WORKER_MODELS_DIT_H_

// Wan2.1-style diffusion transformer, written functionally over checkpoint
// weights (at::linear etc., no torch::nn modules) so that the parallel code
// can shard weights (TP) and the token sequence (SP) without a second model
// implementation. See /work/shared/reference/wan21.md for the architecture.
//
// The forward runs in three stages so a caller can split the layers over
// pipeline stages or swap the self-attention core for Ulysses/Ring:
//
//   DiTActivations a = dit.Embed(latents, timesteps, context);
//   dit.RunBlocks(a, 0, k);  dit.RunBlocks(a, k, num_layers);
//   at::Tensor out = dit.Head(a);             // [B, C_out, F, H, W]
//
// Ownership / threading: a DiT holds (shallow, refcounted) copies of its
// weights on its device (DiTNumerics) and is immutable after Create; every
// method is const and may be called from several threads at once on distinct activations. Calls
// block until the compute is done (CPU) or enqueued (GPU).

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/models/model_config.h"
#include <ATen/core/Tensor.h>

namespace dserve::models {

// Token grid after patchify: (frames, height, width) in patches.
struct TokenGrid {
  int64_t frames = 0;
  int64_t height = 0;
  int64_t width = 0;
  int64_t size() const { return frames * height * width; }
};

// 3-D RoPE angle tables, one row per token of the (row-major flattened)
// grid, head_dim/2 columns: frame pairs first, then height, then width.
// Built for the whole grid so sequence-parallel ranks slice rows.
struct RopeTables {
  at::Tensor cos;  // [S, head_dim / 2] fp32
  at::Tensor sin;  // [S, head_dim / 2] fp32
};

// RoPE for `grid`: head_dim split d-4(d//6), 2(d//6), 2(d//6) over
// (frame, height, width); axis a with width d_a uses 1/10000^(2i/d_a);
// angles are computed in float64 on `device` (no host-to-device copy in
// the step on a GPU).
RopeTables BuildRope(const TokenGrid& grid, int head_dim,
                     at::Device device = at::kCPU);

// Rotates interleaved pairs (x[2i], x[2i+1]) of x: (B, S, H, D) by the
// angles of `rope` (S rows). Returns fp32.
at::Tensor ApplyRope(const at::Tensor& x, const RopeTables& rope);

// [B] timesteps → [B, dim] sinusoid [cos | sin], frequencies
// 10000^(-i/(dim/2)) in float64, returned as fp32.
at::Tensor SinusoidalEmbedding(const at::Tensor& timesteps, int dim);

// RMSNorm over the last dim with a learned weight.
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps);

// [B, C, F, H, W] → [B, S, C·pt·ph·pw] with channel-major patch vectors,
// matching Conv3d(kernel = stride = patch) weights flattened.
at::Tensor Patchify(const at::Tensor& x, const std::array<int, 3>& patch);

// [B, S, pt·ph·pw·C] (channel fastest, as Wan's head writes it) →
// [B, C, F, H, W].
at::Tensor Unpatchify(const at::Tensor& tokens, const TokenGrid& grid,
                      const std::array<int, 3>& patch, int channels);

// Appends two planes (y, then x; pixel centres mapped to [-1, 1]) to
// [B, C, F, H, W] latents → [B, C+2, F, H, W].
at::Tensor AppendCoordinatePlanes(const at::Tensor& latents);

// Every DiT checkpoint key with its expected shape, in a fixed order.
std::vector<std::pair<std::string, std::vector<int64_t>>> DiTWeightShapes(
    const DiTConfig& config);

// The self-attention core used by the blocks: (B, S, H, D) q, k, v and an
// optional bool (B, S) key padding mask (true = padded) → (B, S, H, D).
// Defaults to models::Attention; Ulysses/Ring replace it.
using AttentionCore =
    std::function<at::Tensor(const at::Tensor& q, const at::Tensor& k,
                             const at::Tensor& v,
                             const at::Tensor& key_padding_mask)>;

// Where the DiT runs and in which precision. Matmuls and attention use
// `compute_dtype` (bf16 on CUDA); modulation, norms, RoPE and the residual
// stream stay fp32, as the Wan2.1 reference does under bf16 autocast. The
// default (CPU, fp32) is the bit-exact path every CPU test checks.
struct DiTNumerics {
  at::Device device = at::kCPU;
  at::ScalarType compute_dtype = at::kFloat;
};

// State carried between the stages.
struct DiTActivations {
  at::Tensor x;        // [B, S, dim] fp32 residual stream
  at::Tensor e;        // [B, dim] time embedding (head modulation)
  at::Tensor e0;       // [B, 6, dim] block modulation
  at::Tensor context;  // [B, L, dim] embedded text
  TokenGrid grid;      // global token grid
  RopeTables rope;     // rows aligned with x's sequence
  // Optional bool [B, S]: true marks padded tokens (keys ignored).
  at::Tensor key_padding_mask;
};

// Which weights a DiT materialises: the embeddings (patch, text, time and
// the time projection; every rank runs Embed) always, blocks
// [first_layer, last_layer) whole, and the head if `head`. The default is
// the whole DiT; a pipeline stage holds its blocks (and the head on the last
// stage); a tensor-parallel rank holds no whole block (its slices live in
// TensorParallelBlocks). dit_share.h derives it from a rank's place in the
// mesh.
struct DiTPart {
  int first_layer = 0;
  int last_layer = -1;  // -1 = num_layers
  bool head = true;
};

// Whether DiT weight `key` is kept in fp32 (modulation vectors and norm
// gains/biases) rather than in the compute dtype (linear and patch
// embedding weights and biases).
bool IsFp32DiTWeight(const std::string& key);

class DiT {
 public:
  // Checks every key of DiTWeightShapes(config) that `part` holds exists in
  // `weights` with that shape (INVALID_ARGUMENT names the first bad key);
  // other keys are ignored. Linear weights are converted to
  // numerics.compute_dtype, the rest to fp32, all moved to numerics.device,
  // one tensor at a time (a tensor already in its target dtype, device and
  // layout is kept as it is, not copied).
  static absl::StatusOr<DiT> Create(const DiTConfig& config,
                                    const WeightMap& weights,
                                    const DiTNumerics& numerics = {},
                                    const DiTPart& part = {});

  const DiTConfig& config() const { return config_; }
  const DiTNumerics& numerics() const { return numerics_; }
  // What this DiT holds (last_layer resolved) and its weights' bytes.
  const DiTPart& part() const { return part_; }
  int64_t weight_bytes() const;

  // latents: [B, in_channels, F, H, W] with F, H, W multiples of the patch;
  // timesteps: [B] (σ·1000, any float dtype); context: [B, text_len,
  // text_dim]; all on numerics().device. The result (Head) is fp32.
  DiTActivations Embed(const at::Tensor& latents, const at::Tensor& timesteps,
                       const at::Tensor& context) const;
  // Runs blocks [first, last) in place; they must be held (part()), else
  // c10::Error. `core` null = models::Attention.
  void RunBlocks(DiTActivations& a, int first, int last,
                 const AttentionCore& core = nullptr) const;
  // Head output per token: [B, S, pt·ph·pw·out_channels]. Needs part().head.
  at::Tensor HeadTokens(const DiTActivations& a) const;
  // HeadTokens + Unpatchify: [B, out_channels, F, H, W].
  at::Tensor Head(const DiTActivations& a) const;
  // Embed → all blocks → Head.
  at::Tensor Forward(const at::Tensor& latents, const at::Tensor& timesteps,
                     const at::Tensor& context) const;

 private:
  struct Linear {
    at::Tensor weight;
    at::Tensor bias;
  };
  struct AttnWeights {
    Linear q, k, v, o;
    at::Tensor norm_q, norm_k;
  };
  struct Block {
    at::Tensor modulation;  // [1, 6, dim]
    AttnWeights self_attn;
    at::Tensor norm3_weight, norm3_bias;
    AttnWeights cross_attn;
    Linear ffn0, ffn2;
  };

  DiT() = default;
  void RunBlock(const Block& blk, DiTActivations& a,
                const AttentionCore& core) const;

  DiTConfig config_;
  DiTNumerics numerics_;
  DiTPart part_;
  Linear patch_embedding_;  // weight flattened to [dim, C·pt·ph·pw]
  Linear text0_, text2_;
  Linear time0_, time2_;
  Linear time_projection_;
  at::Tensor head_modulation_;  // [1, 2, dim]
  Linear head_;
  std::vector<Block> blocks_;  // layers [part_.first_layer, last_layer)
};

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_DIT_H_
