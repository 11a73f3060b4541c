#ifndef DSERVE_WORKER_MODELS_DIT_SHARE_H_
#define DSERVE_WORKER_MODELS_DIT_SHARE_H_

// The part of the DiT one rank of a replica runs, and so materialises, and
// the loader that materialises exactly that part from checkpoint tensors.
//
//   PP    stage s of pp holds the blocks StageLayers(num_layers, s, pp); the
//         last stage also the head (head.modulation, head.head), which only
//         it runs (ParallelDiT).
//   TP    tp rank t holds, of its stage's blocks, only its column/row slices
//         (TensorParallelBlocks: q/k/v/ffn.0 rows, o/ffn.2 columns, norm_q/
//         norm_k rows); no whole block.
//   cfg, ring, ulysses replicate their stage's weights. Every rank holds the
//         embeddings (patch, text, time, time projection): every stage runs
//         Embed (pipeline_parallel.h).
//
// LoadDiTShard cuts each slice from the source tensor before converting it
// (narrow, then to the kept dtype and device: never the whole tensor first)
// and then drops the source's mapped pages (checkpoint::ReleaseMappedPages),
// so with a memory-mapped checkpoint a rank's peak RSS is what it keeps plus
// about one tensor, not the checkpoint it read.
//
// Plain values and stateless functions; LoadDiTShard blocks while it
// converts (and reads the mapped pages it needs). A DiTShard owns its
// tensors and is immutable after LoadDiTShard.

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "parallel/device_mesh.h"
#include "worker/models/dit.h"
#include "worker/models/model_config.h"
#include "worker/models/safetensors.h"
#include "worker/models/tensor_parallel.h"

namespace dserve::models {

// A rank's coordinates on the two mesh axes that split weights. The default
// is the whole DiT (a 1-rank replica, or any cfg/sp-only rank).
struct DiTShare {
  int pp_stage = 0;
  int pp_size = 1;
  int tp_rank = 0;
  int tp_size = 1;

  bool whole() const { return pp_size == 1 && tp_size == 1; }
  friend bool operator==(const DiTShare& a, const DiTShare& b) {
    return a.pp_stage == b.pp_stage && a.pp_size == b.pp_size &&
           a.tp_rank == b.tp_rank && a.tp_size == b.tp_size;
  }
  friend bool operator!=(const DiTShare& a, const DiTShare& b) {
    return !(a == b);
  }
};

// "pp stage 1 of 2, tp rank 0 of 2" (for messages and logs).
std::string DiTShareString(const DiTShare& share);

// The share of `rank` (within the replica's dp=1 mesh). INVALID_ARGUMENT for
// a rank outside the mesh.
absl::StatusOr<DiTShare> DiTShareForRank(const parallel::DeviceMesh& mesh,
                                         int rank);

// INVALID_ARGUMENT (naming field, value and what is allowed) unless
// 0 <= pp_stage < pp_size <= num_layers, 0 <= tp_rank < tp_size, and tp
// divides num_heads and ffn_dim.
absl::Status ValidateDiTShare(const DiTConfig& config, const DiTShare& share);

// One weight a share keeps: `key` (DiTWeightShapes' name), the `shape` kept,
// the dimension it is sliced along (-1 = whole) and where the slice starts,
// and whether it is kept in fp32 (else in the compute dtype; TP slices are
// fp32, as TensorParallelBlocks computes).
struct ShareWeight {
  std::string key;
  std::vector<int64_t> shape;
  int dim = -1;
  int64_t begin = 0;
  bool fp32 = false;
};

// Every weight `share` keeps, in DiTWeightShapes order. ValidateDiTShare's
// errors.
absl::StatusOr<std::vector<ShareWeight>> DiTShareWeights(
    const DiTConfig& config, const DiTShare& share);

// Parameters and bytes (DiTShareWeights summed; compute-dtype weights at
// `compute_dtype`'s element size) a rank with `share` keeps.
struct ShareSize {
  int64_t parameters = 0;
  int64_t bytes = 0;
};
absl::StatusOr<ShareSize> DiTShareSize(const DiTConfig& config,
                                       const DiTShare& share,
                                       at::ScalarType compute_dtype);

// The checkpoint keys `share` reads (for ReadSafetensors and
// WanLoadOptions::dit_keys): its DiTShareWeights' keys; a key that is not a
// DiT weight name is not read. Copies what it needs; `config` and `share`
// need not outlive it.
KeyFilter DiTShareKeyFilter(const DiTConfig& config, const DiTShare& share);

// A rank's DiT: `dit` holds the embeddings, the head on the last stage and,
// without TP, its stage's blocks whole; `tp_blocks` (TP only) holds its
// stage's block slices.
struct DiTShard {
  DiTShare share;
  DiT dit;
  std::optional<TensorParallelBlocks> tp_blocks;

  // Bytes of every tensor held (dit + tp_blocks).
  int64_t weight_bytes() const;
};

// The tensors of DiTShareWeights(config, share), by key, each cut from
// `source` (full tensors by DiT name, e.g. memory-mapped views; other keys
// ignored) and converted to numerics' device and its kept dtype, the
// source's mapped pages dropped after each. Errors: ValidateDiTShare's;
// INVALID_ARGUMENT naming a missing, mis-shaped or non-float key.
absl::StatusOr<WeightMap> MaterialiseDiTShare(const DiTConfig& config,
                                              const WeightMap& source,
                                              const DiTNumerics& numerics,
                                              const DiTShare& share);

// MaterialiseDiTShare, then the DiT and TensorParallelBlocks over those
// tensors (nothing copied again). Materialises `share` of the DiT from `source`
// (full tensors by DiT name, e.g. memory-mapped views; other keys ignored).
// Errors: ValidateDiTShare's; INVALID_ARGUMENT naming a missing or mis-shaped
// key.
absl::StatusOr<DiTShard> LoadDiTShard(const DiTConfig& config,
                                      const WeightMap& source,
                                      const DiTNumerics& numerics,
                                      const DiTShare& share = {});

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_DIT_SHARE_H_
