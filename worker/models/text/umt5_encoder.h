#ifndef DSERVE_WORKER_MODELS_TEXT_UMT5_ENCODER_H_
#define DSERVE_WORKER_MODELS_TEXT_UMT5_ENCODER_H_

// The umT5-XXL encoder Wan2.1 conditions on (wan/modules/t5.py,
// umt5_xxl(encoder_only=True); transformers' UMT5EncoderModel computes the
// same numbers), over weights named as in models_t5_umt5-xxl-enc-bf16.pth:
//
//   x = token_embedding[ids]                       (no scaling, no positions)
//   per block:  x += o(attn(norm1(x)))             (pre-norm)
//               h = norm2(x); x += fc2(fc1(h) * gelu_tanh(gate.0(h)))
//   x = norm(x)
//   attn: softmax(q·kᵀ + bias[head, i, j]) · v, NO 1/√d scale, softmax in
//         fp32; bias = that block's pos_embedding.embedding[bucket(j − i)]
//         (umT5: every block owns its table; T5 shared one)
//   norm: T5 RMSNorm w · (x · rsqrt(mean(x²) + 1e-6)), mean in fp32, no
//         centring, no bias; no biases anywhere.
//
// Padding: Wan pads to 512 with a key mask and keeps out[:n]. Masked keys
// get -inf-like scores, so the n real rows equal an encode of the n real
// tokens alone; this encoder runs each prompt over its real tokens only and
// writes zeros beyond them (EncodeContext), which is what the DiT sees.
//
// Numerics (Umt5Numerics): compute_dtype fp32 is the exact path the
// reference test checks. With bf16 (or fp16), Wan's policy: weights and
// activations (residual stream included) in that dtype, RMSNorm's mean of
// squares and the rsqrt product in fp32 then cast back before `* w`,
// softmax in fp32 then cast back; the output is returned as fp32.
//
// An Umt5Encoder owns its weights on numerics.device (shared with the
// WeightMap, not copied, when dtype and device already match) and is
// immutable after Create: Encode/EncodeContext may run concurrently from
// several threads. They block while computing.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/models/model_config.h"
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace dserve::models {

// Sizes, inferred from tensor shapes so that test-size and real checkpoints
// take the same path. Defaults are umT5-XXL's.
struct Umt5Config {
  int64_t vocab = 256384;   // token_embedding rows
  int64_t dim = 4096;       // token_embedding columns
  int64_t num_heads = 64;   // pos_embedding columns
  int64_t head_dim = 64;    // q rows / num_heads
  int64_t ffn_dim = 10240;  // fc1 rows
  int64_t num_layers = 24;  // blocks.N count
  int64_t num_buckets = 32;     // pos_embedding rows
  int64_t max_distance = 128;   // fixed in umT5
  double eps = 1e-6;

  int64_t inner_dim() const { return num_heads * head_dim; }
};

// Every weight the encoder reads, with its shape, in a fixed order
// (token_embedding, blocks in order, norm): what a checkpoint must hold.
std::vector<std::pair<std::string, std::vector<int64_t>>> Umt5WeightShapes(
    const Umt5Config& config);

// Reads the sizes from `weights` (Wan names, no prefix): vocab and dim from
// token_embedding.weight, buckets and heads from
// blocks.0.pos_embedding.embedding.weight, head_dim from blocks.0.attn.q,
// ffn_dim from blocks.0.ffn.fc1, layers by counting blocks.N (must be 0..N-1).
// NOT_FOUND / INVALID_ARGUMENT name the key and shape at fault. Does not
// check the other tensors (Create does).
absl::StatusOr<Umt5Config> InferUmt5Config(const WeightMap& weights);

// T5's bidirectional relative-position bucket of rel = key − query, with
// the reference's float32 arithmetic: (rel > 0 ? B/2 : 0) + f(|rel|) where
// f(n) = n for n < B/4, else min(B/2 − 1, B/4 + trunc(log(n / (B/4)) /
// log(max_distance / (B/4)) · (B/4))). Computed with ATen float32 ops, as
// PyTorch computes it.
std::vector<int64_t> Umt5RelativeBuckets(int64_t min_rel, int64_t max_rel,
                                         int64_t num_buckets,
                                         int64_t max_distance);

struct Umt5Numerics {
  at::Device device = at::kCPU;
  // kFloat (exact), kBFloat16 (Wan's policy) or kHalf.
  at::ScalarType compute_dtype = at::kFloat;
};

class Umt5Encoder {
 public:
  // Infers the config, then checks every key of Umt5WeightShapes exists
  // with that shape and a floating dtype (INVALID_ARGUMENT / NOT_FOUND name
  // the key, its shape and the expected one). Extra keys are ignored.
  static absl::StatusOr<std::unique_ptr<Umt5Encoder>> Create(
      const WeightMap& wan_named_weights, const Umt5Numerics& numerics = {});

  const Umt5Config& config() const { return config_; }
  const Umt5Numerics& numerics() const { return numerics_; }

  // One prompt over its real tokens: ids (at least one, each in
  // [0, vocab)) -> [n, dim] float32 on numerics().device.
  absl::StatusOr<at::Tensor> Encode(const std::vector<int64_t>& ids) const;

  // Wan's context: prompt b encoded alone (Encode) into rows [0, n_b) of a
  // zero [B, text_len, dim] float32 tensor on numerics().device.
  // INVALID_ARGUMENT if a prompt is empty or longer than text_len (the
  // tokenizer's max_len keeps it within).
  absl::StatusOr<at::Tensor> EncodeContext(
      const std::vector<std::vector<int64_t>>& ids, int64_t text_len) const;
  // The same, also returning each prompt's un-padded [n_b, dim] rows (views
  // of the context).
  absl::StatusOr<at::Tensor> EncodeContext(
      const std::vector<std::vector<int64_t>>& ids, int64_t text_len,
      std::vector<at::Tensor>* unpadded) const;

 private:
  struct Block {
    at::Tensor norm1, q, k, v, o, pos_embedding, norm2, gate, fc1, fc2;
  };
  Umt5Encoder(Umt5Config config, Umt5Numerics numerics);

  at::Tensor Norm(const at::Tensor& x, const at::Tensor& weight) const;
  // [L*L] int64 bucket of (j - i) for query i, key j, on the device.
  at::Tensor BucketIndex(int64_t length) const;
  at::Tensor PositionBias(const Block& block, const at::Tensor& buckets,
                          int64_t length) const;
  at::Tensor Attention(const Block& block, const at::Tensor& x,
                       const at::Tensor& buckets) const;
  at::Tensor FeedForward(const Block& block, const at::Tensor& x) const;

  Umt5Config config_;
  Umt5Numerics numerics_;
  at::Tensor token_embedding_;
  at::Tensor final_norm_;
  std::vector<Block> blocks_;
};

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_TEXT_UMT5_ENCODER_H_
