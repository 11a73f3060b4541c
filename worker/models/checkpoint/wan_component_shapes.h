#ifndef DSERVE_WORKER_MODELS_CHECKPOINT_WAN_COMPONENT_SHAPES_H_
#define DSERVE_WORKER_MODELS_CHECKPOINT_WAN_COMPONENT_SHAPES_H_

// Every tensor (Wan names) of Wan2.1's umT5 encoder and VAE with its shape,
// for given sizes; and the sizes inferred from a weight map's shapes, so the
// loader can name any missing or mis-shaped tensor before a component sees
// it (tiny test checkpoints and the real ones go through the same code).
// The DiT's list is DiTWeightShapes (worker/models/dit.h). Pure functions.

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/models/model_config.h"

namespace dserve::models::checkpoint {

using ShapeList = std::vector<std::pair<std::string, std::vector<int64_t>>>;

// umT5 encoder sizes (umT5-XXL: 256384, 4096, 64, 64, 10240, 24, 32).
struct T5Sizes {
  int64_t vocab = 0;
  int64_t dim = 0;
  int64_t heads = 0;
  int64_t head_dim = 0;
  int64_t ffn_dim = 0;
  int64_t layers = 0;
  int64_t num_buckets = 32;
};
ShapeList T5WeightShapes(const T5Sizes& s);
// From token_embedding, blocks.0.* and the number of blocks.N.norm1 keys.
// INVALID_ARGUMENT naming the key that is missing or malformed.
absl::StatusOr<T5Sizes> InferT5Sizes(const WeightMap& w);

// Wan2.1 VAE sizes: dim_mult [1,2,4,4], 2 residual blocks per encoder stage
// (3 per decoder stage), temporal down [F,T,T], attention only in the middle
// (every Wan2.1 VAE; base 96 and z 16 in the release).
struct VaeSizes {
  int64_t base_dim = 96;
  int64_t z_dim = 16;
};
ShapeList VaeWeightShapes(const VaeSizes& s);
// base_dim from decoder.head.2.weight [3, base, 3, 3, 3], z from conv2.
absl::StatusOr<VaeSizes> InferVaeSizes(const WeightMap& w);

// Checks `weights` holds exactly the keys of `expected` (those `keep`
// selects, if given), each with its shape and a floating dtype.
// INVALID_ARGUMENT naming `file`, the key (as named in the file, via
// `file_key`, if given) and the shapes.
absl::Status CheckWeights(
    const WeightMap& weights, const ShapeList& expected,
    const std::string& file,
    const std::function<std::string(const std::string&)>& file_key = nullptr,
    const std::function<bool(const std::string&)>& keep = nullptr);

}  // namespace dserve::models::checkpoint

#endif  // DSERVE_WORKER_MODELS_CHECKPOINT_WAN_COMPONENT_SHAPES_H_
