#ifndef DSERVE_WORKER_MODELS_TENSOR_PARALLEL_H_
#define DSERVE_WORKER_MODELS_TENSOR_PARALLEL_H_

// Tensor parallelism (Megatron-style) for the DiT blocks: each of the tp
// ranks owns a contiguous block of heads and of FFN columns.
//
//   q, k, v (self and cross), ffn.0    column-parallel: rows of W (and b)
//   o (self and cross), ffn.2          row-parallel: columns of W, partial
//                                      sums all-reduced, bias added ONCE
//                                      after the all-reduce
//   norm_q / norm_k                    Wan's RMSNorm runs over the WHOLE dim,
//                                      so each rank's sum of squares of its
//                                      q (k) slice is all-reduced first; the
//                                      q and k sums share one all-reduce
//
// Per block that is 5 all-reduces: two of (B·S + B·S|B·L) floats (norms)
// and three of B·S·dim floats (self o, cross o, ffn.2). Embedding, time
// modulation and head stay replicated (they are cheap and token-local).
//
// Ownership: a TensorParallelBlocks owns (refcounted) fp32 slices of the
// block weights; immutable after Create; RunBlocks is const but drives the
// borrowed tp Communicator, so one thread at a time. Calls block.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "parallel/communicator.h"
#include "worker/models/dit.h"
#include "worker/models/model_config.h"
#include <ATen/core/Tensor.h>

namespace dserve::models {

// Rows [begin, begin + size) of a dimension of `total` owned by tp `rank` of
// `parts` (total must be divisible by parts).
struct ShardRange {
  int64_t begin = 0;
  int64_t size = 0;
};
ShardRange TensorParallelShard(int64_t total, int rank, int parts);

class TensorParallelBlocks {
 public:
  // INVALID_ARGUMENT if num_heads or ffn_dim is not divisible by `tp_size`
  // (naming the field, the value and tp), or a block key is missing.
  static absl::StatusOr<TensorParallelBlocks> Create(const DiTConfig& config,
                                                     const WeightMap& weights,
                                                     int tp_rank, int tp_size);

  // Runs blocks [first, last) on `a` (full sequence, replicated on every tp
  // rank) and leaves the same a.x on every tp rank. Every rank of `tp` must
  // call it with the same shapes. Communication failures throw c10::Error
  // carrying the Communicator's message (callers convert with CatchTorch).
  void RunBlocks(DiTActivations& a, int first, int last,
                 parallel::Communicator& tp) const;

  int tp_rank() const { return tp_rank_; }
  int tp_size() const { return tp_size_; }

 private:
  struct Linear {
    at::Tensor weight;
    at::Tensor bias;  // undefined for row-parallel layers (added after the
                      // all-reduce from full_bias)
  };
  struct Attn {
    Linear q, k, v;  // column shards
    at::Tensor o_weight;  // [dim, dim / tp] column block
    at::Tensor o_bias;    // [dim], full
    at::Tensor norm_q, norm_k;  // [dim / tp] slices
  };
  struct Block {
    at::Tensor modulation;
    Attn self_attn, cross_attn;
    at::Tensor norm3_weight, norm3_bias;
    Linear ffn0;            // row shard of ffn.0
    at::Tensor ffn2_weight;  // [dim, ffn_dim / tp]
    at::Tensor ffn2_bias;    // [dim], full
  };

  TensorParallelBlocks() = default;
  void RunBlock(const Block& blk, DiTActivations& a,
                parallel::Communicator& tp) const;

  DiTConfig config_;
  int tp_rank_ = 0;
  int tp_size_ = 1;
  std::vector<Block> blocks_;
};

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_TENSOR_PARALLEL_H_
