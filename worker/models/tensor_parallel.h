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
// weights of its blocks (a pipeline stage's layers, or all); immutable
// after Create; RunBlocks is const but drives the borrowed tp Communicator,
// so one thread at a time. Calls block.

#include <cstdint>
#include <functional>
#include <string>
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

// Reads one block weight for TensorParallelBlocks: rows (dim 0) or columns
// (dim 1) `range` of weight `key`, or all of it (dim -1), as a contiguous
// fp32 tensor on the device the blocks run on; undefined if there is no such
// key (or, with a status the reader keeps, if it cannot be read).
using TensorParallelSliceReader = std::function<at::Tensor(
    const std::string& key, int dim, const ShardRange& range)>;

class TensorParallelBlocks {
 public:
  // Blocks [first_layer, last_layer) (-1 = num_layers; a pipeline stage's
  // layers) of tp rank `tp_rank`, each slice read through `read` (so a
  // loader can cut it straight from a memory-mapped checkpoint).
  // INVALID_ARGUMENT if num_heads or ffn_dim is not divisible by `tp_size`
  // (naming the field, the value and tp), the layers are out of range, or a
  // block key is missing.
  static absl::StatusOr<TensorParallelBlocks> Create(
      const DiTConfig& config, const TensorParallelSliceReader& read,
      int tp_rank, int tp_size, int first_layer = 0, int last_layer = -1);
  // The same, slicing the full tensors of `weights` (kept on their device,
  // converted to fp32).
  static absl::StatusOr<TensorParallelBlocks> Create(
      const DiTConfig& config, const WeightMap& weights, int tp_rank,
      int tp_size, int first_layer = 0, int last_layer = -1);

  // Runs blocks [first, last) on `a` (full sequence, replicated on every tp
  // rank) and leaves the same a.x on every tp rank. Every rank of `tp` must
  // call it with the same shapes. Communication failures throw c10::Error
  // carrying the Communicator's message (callers convert with CatchTorch).
  void RunBlocks(DiTActivations& a, int first, int last,
                 parallel::Communicator& tp) const;

  int tp_rank() const { return tp_rank_; }
  int tp_size() const { return tp_size_; }
  int first_layer() const { return first_layer_; }
  int last_layer() const {
    return first_layer_ + static_cast<int>(blocks_.size());
  }
  // Bytes of the slices held.
  int64_t weight_bytes() const;

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
  int first_layer_ = 0;
  std::vector<Block> blocks_;  // layers [first_layer_, last_layer())
};

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_TENSOR_PARALLEL_H_
