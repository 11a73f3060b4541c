#include "worker/models/dit_share.h"

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "worker/models/checkpoint/mapped_file.h"
#include "worker/models/pipeline_parallel.h"

namespace dserve::models {
namespace {

constexpr char kBlocks[] = "blocks.";

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// -1 for a key outside the blocks, else its layer.
int LayerOf(const std::string& key) {
  if (!absl::StartsWith(key, kBlocks)) return -1;
  return std::stoi(key.substr(sizeof(kBlocks) - 1));
}

// The dimension tensor parallelism slices a block weight along (-1 =
// replicated), as TensorParallelBlocks::Create reads them; `size` is the
// sliced dimension's full length (dim or ffn_dim).
int TensorParallelDim(const std::string& key, const DiTConfig& c,
                      int64_t& size) {
  size = c.dim;
  for (const char* proj : {".q.", ".k.", ".v."}) {
    if (absl::StrContains(key, proj)) return 0;
  }
  if (absl::EndsWith(key, ".norm_q.weight") ||
      absl::EndsWith(key, ".norm_k.weight")) {
    return 0;
  }
  if (absl::EndsWith(key, ".o.weight")) return 1;
  if (absl::EndsWith(key, ".ffn.0.weight") ||
      absl::EndsWith(key, ".ffn.0.bias")) {
    size = c.ffn_dim;
    return 0;
  }
  if (absl::EndsWith(key, ".ffn.2.weight")) {
    size = c.ffn_dim;
    return 1;
  }
  return -1;
}

}  // namespace

std::string DiTShareString(const DiTShare& s) {
  return absl::StrCat("pp stage ", s.pp_stage, " of ", s.pp_size, ", tp rank ",
                      s.tp_rank, " of ", s.tp_size);
}

absl::StatusOr<DiTShare> DiTShareForRank(const parallel::DeviceMesh& mesh,
                                         int rank) {
  ASSIGN_OR_RETURN(parallel::MeshCoords coords, mesh.Coords(rank));
  DiTShare share;
  share.pp_stage = coords.pp;
  share.pp_size = mesh.degree(parallel::MeshDim::kPp);
  share.tp_rank = coords.tp;
  share.tp_size = mesh.degree(parallel::MeshDim::kTp);
  return share;
}

absl::Status ValidateDiTShare(const DiTConfig& c, const DiTShare& s) {
  if (s.pp_size < 1 || s.pp_size > c.num_layers || s.pp_stage < 0 ||
      s.pp_stage >= s.pp_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("DiT share: pp stage ", s.pp_stage, " of ", s.pp_size,
                     " does not fit the model's num_layers = ", c.num_layers,
                     "; need 0 <= stage < pp <= num_layers"));
  }
  if (s.tp_size < 1 || s.tp_rank < 0 || s.tp_rank >= s.tp_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DiT share: tp rank ", s.tp_rank, " is outside [0, ", s.tp_size, ")"));
  }
  if (c.num_heads % s.tp_size != 0 || c.ffn_dim % s.tp_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DiT share: tp = ", s.tp_size, " does not divide num_heads = ",
        c.num_heads, " and ffn_dim = ", c.ffn_dim,
        "; choose tp among their common divisors"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ShareWeight>> DiTShareWeights(const DiTConfig& c,
                                                         const DiTShare& s) {
  RETURN_IF_ERROR(ValidateDiTShare(c, s));
  const LayerRange layers = StageLayers(c.num_layers, s.pp_stage, s.pp_size);
  const bool last_stage = s.pp_stage == s.pp_size - 1;
  std::vector<ShareWeight> out;
  for (const auto& [key, shape] : DiTWeightShapes(c)) {
    const int layer = LayerOf(key);
    if (layer >= 0 && (layer < layers.first || layer >= layers.last)) continue;
    if (layer < 0 && absl::StartsWith(key, "head.") && !last_stage) continue;
    ShareWeight w;
    w.key = key;
    w.shape = shape;
    w.fp32 = IsFp32DiTWeight(key);
    if (layer >= 0 && s.tp_size > 1) {
      int64_t full = 0;
      w.dim = TensorParallelDim(key, c, full);
      w.fp32 = true;  // TensorParallelBlocks computes in fp32
      if (w.dim >= 0) {
        const ShardRange r = TensorParallelShard(full, s.tp_rank, s.tp_size);
        w.begin = r.begin;
        w.shape[w.dim] = r.size;
      }
    }
    out.push_back(std::move(w));
  }
  return out;
}

absl::StatusOr<ShareSize> DiTShareSize(const DiTConfig& config,
                                       const DiTShare& share,
                                       at::ScalarType compute_dtype) {
  ASSIGN_OR_RETURN(std::vector<ShareWeight> weights,
                   DiTShareWeights(config, share));
  ShareSize size;
  for (const ShareWeight& w : weights) {
    int64_t n = 1;
    for (int64_t d : w.shape) n *= d;
    size.parameters += n;
    size.bytes += n * static_cast<int64_t>(c10::elementSize(
                          w.fp32 ? at::kFloat : compute_dtype));
  }
  return size;
}

KeyFilter DiTShareKeyFilter(const DiTConfig& config, const DiTShare& share) {
  auto keys = std::make_shared<std::set<std::string>>();
  absl::StatusOr<std::vector<ShareWeight>> weights =
      DiTShareWeights(config, share);
  // An invalid share reads every key; LoadDiTShard then reports it.
  if (!weights.ok()) return nullptr;
  for (const ShareWeight& w : *weights) keys->insert(w.key);
  return [keys](const std::string& key) { return keys->count(key) > 0; };
}

int64_t DiTShard::weight_bytes() const {
  return dit.weight_bytes() + (tp_blocks ? tp_blocks->weight_bytes() : 0);
}

absl::StatusOr<WeightMap> MaterialiseDiTShare(const DiTConfig& config,
                                              const WeightMap& source,
                                              const DiTNumerics& numerics,
                                              const DiTShare& share) {
  ASSIGN_OR_RETURN(std::vector<ShareWeight> weights,
                   DiTShareWeights(config, share));
  std::map<std::string, std::vector<int64_t>> full_shapes;
  for (auto& [key, shape] : DiTWeightShapes(config)) full_shapes[key] = shape;
  const at::TensorOptions fp32 =
      at::TensorOptions().device(numerics.device).dtype(at::kFloat);
  const at::TensorOptions compute = fp32.dtype(numerics.compute_dtype);

  // Each kept tensor: the slice cut from the source view, converted, and the
  // source's mapped pages dropped. Keys are checked against the full shape
  // here, so a wrong file fails with the key's name before any slicing.
  auto materialise = [&](const ShareWeight& w) -> absl::StatusOr<at::Tensor> {
    auto it = source.find(w.key);
    const std::vector<int64_t>& full = full_shapes.at(w.key);
    if (it == source.end() || !it->second.defined()) {
      return absl::InvalidArgumentError(
          absl::StrCat("DiT weights: missing key \"", w.key, "\" (expected ",
                       ShapeString(full), ")"));
    }
    const at::Tensor& src = it->second;
    if (src.sizes() != at::IntArrayRef(full)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "DiT weights: key \"", w.key, "\" has shape ",
          ShapeString(src.sizes().vec()), ", expected ", ShapeString(full)));
    }
    if (!at::isFloatingType(src.scalar_type())) {
      return absl::InvalidArgumentError(
          absl::StrCat("DiT weights: key \"", w.key, "\" has dtype ",
                       c10::toString(src.scalar_type()),
                       ", expected a floating-point dtype"));
    }
    at::Tensor part =
        w.dim >= 0 ? src.narrow(w.dim, w.begin, w.shape[w.dim]) : src;
    at::Tensor kept = part.to(w.fp32 ? fp32 : compute).contiguous();
    checkpoint::ReleaseMappedPages(src);
    return kept;
  };

  WeightMap kept;
  for (const ShareWeight& w : weights) {
    ASSIGN_OR_RETURN(at::Tensor t, materialise(w));
    kept[w.key] = std::move(t);
  }
  return kept;
}

absl::StatusOr<DiTShard> LoadDiTShard(const DiTConfig& config,
                                      const WeightMap& source,
                                      const DiTNumerics& numerics,
                                      const DiTShare& share) {
  ASSIGN_OR_RETURN(WeightMap kept,
                   MaterialiseDiTShare(config, source, numerics, share));
  const LayerRange layers =
      StageLayers(config.num_layers, share.pp_stage, share.pp_size);
  WeightMap whole;   // for the DiT
  WeightMap slices;  // for TensorParallelBlocks, by key
  for (auto& [key, t] : kept) {
    const bool tp_block = share.tp_size > 1 && LayerOf(key) >= 0;
    (tp_block ? slices : whole)[key] = std::move(t);
  }
  kept.clear();
  DiTPart part;
  part.head = share.pp_stage == share.pp_size - 1;
  part.first_layer = layers.first;
  part.last_layer = share.tp_size > 1 ? layers.first : layers.last;
  ASSIGN_OR_RETURN(DiT dit, DiT::Create(config, whole, numerics, part));
  whole.clear();  // the DiT holds them (same tensors, nothing was copied)

  std::optional<TensorParallelBlocks> tp_blocks;
  if (share.tp_size > 1) {
    // The slices are already cut; the reader hands them over by key.
    TensorParallelSliceReader read = [&slices](const std::string& key, int,
                                               const ShardRange&) {
      auto it = slices.find(key);
      return it == slices.end() ? at::Tensor() : it->second;
    };
    ASSIGN_OR_RETURN(
        TensorParallelBlocks blocks,
        TensorParallelBlocks::Create(config, read, share.tp_rank, share.tp_size,
                                     layers.first, layers.last));
    tp_blocks = std::move(blocks);
  }
  return DiTShard{share, std::move(dit), std::move(tp_blocks)};
}

}  // namespace dserve::models
