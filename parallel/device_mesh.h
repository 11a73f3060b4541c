#ifndef DSERVE_PARALLEL_DEVICE_MESH_H_
#define DSERVE_PARALLEL_DEVICE_MESH_H_

// The parallel layout of a deployment as one validated value (after
// torchtitan's ParallelDims and TeleFuser's ParallelConfig).
//
// Six degrees, in rank order DP -> CFG -> SP_ring -> SP_ulysses -> PP -> TP
// (TP fastest, DP slowest):
//   rank = ((((dp * cfg_deg + cfg) * ring_deg + ring) * ulysses_deg + ulysses)
//           * pp_deg + pp) * tp_deg + tp
// Because DP is the slowest dimension, the ranks of data-parallel replica k
// are the contiguous block [k * replica_size(), (k + 1) * replica_size()), and
// rank r of a replica's own (dp=1) mesh is the same layout for every replica.
//
// A DeviceMesh is an immutable value: it owns copies of its degrees and device
// list, is safe to share between threads, and no call blocks. Nothing here is
// global; callers pass the mesh explicitly.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dserve::parallel {

// Degree of each parallel dimension; 1 means "not split along this dim".
struct MeshDegrees {
  int dp = 1;
  int cfg = 1;
  int ring = 1;
  int ulysses = 1;
  int pp = 1;
  int tp = 1;

  friend bool operator==(const MeshDegrees& a, const MeshDegrees& b) {
    return a.dp == b.dp && a.cfg == b.cfg && a.ring == b.ring &&
           a.ulysses == b.ulysses && a.pp == b.pp && a.tp == b.tp;
  }
  friend bool operator!=(const MeshDegrees& a, const MeshDegrees& b) {
    return !(a == b);
  }
};

// The mesh dimensions. kSp is not a separate axis: it names the combined
// sequence-parallel group (ring x ulysses), the ranks that together hold one
// full sequence (sequence shard index = ring * ulysses_degree + ulysses).
enum class MeshDim { kDp, kCfg, kRing, kUlysses, kPp, kTp, kSp };

// The six real axes in rank order (slowest first). kSp is excluded.
inline constexpr std::array<MeshDim, 6> kMeshAxes = {
    MeshDim::kDp,      MeshDim::kCfg, MeshDim::kRing,
    MeshDim::kUlysses, MeshDim::kPp,  MeshDim::kTp};

// "dp", "cfg", "ring", "ulysses", "pp", "tp" or "sp".
std::string_view MeshDimName(MeshDim dim);

// A rank's position along each axis; each field is in [0, degree).
struct MeshCoords {
  int dp = 0;
  int cfg = 0;
  int ring = 0;
  int ulysses = 0;
  int pp = 0;
  int tp = 0;

  friend bool operator==(const MeshCoords& a, const MeshCoords& b) {
    return a.dp == b.dp && a.cfg == b.cfg && a.ring == b.ring &&
           a.ulysses == b.ulysses && a.pp == b.pp && a.tp == b.tp;
  }
};

// Parses "dp=2,cfg=2,ulysses=2" (keys dp, cfg, ring, ulysses, pp, tp; any
// order; omitted keys are 1; spaces around entries are ignored; "" is all 1).
// Rejects unknown keys, duplicate keys, entries without '=', and values that
// are not integers in [1, kMaxDegree]. Does not check cross-degree rules
// (see ValidateDegrees).
inline constexpr int kMaxDegree = 1024;
absl::StatusOr<MeshDegrees> ParseMeshSpec(std::string_view spec);

// Canonical form, every key in rank order: "dp=1,cfg=2,ring=1,ulysses=2,pp=1,tp=1".
std::string FormatMeshSpec(const MeshDegrees& degrees);

// dp * cfg * ring * ulysses * pp * tp, computed without overflow.
int64_t WorldSize(const MeshDegrees& degrees);

// The layout of one data-parallel replica: `degrees` with dp = 1 (what each
// replica's workers get as --mesh; WorldSize of it is the ranks per replica).
MeshDegrees ReplicaDegrees(const MeshDegrees& degrees);

// Rules that depend on the degrees alone: every degree in [1, kMaxDegree],
// cfg in {1, 2}, and sequence parallel (ring or ulysses > 1) not combined
// with tensor parallel.
absl::Status ValidateDegrees(const MeshDegrees& degrees);

class DeviceMesh {
 public:
  // Validates `degrees` (ValidateDegrees) and that `device_ids` holds exactly
  // WorldSize(degrees) distinct, non-negative ids. device_ids[r] is the device
  // of global rank r.
  static absl::StatusOr<DeviceMesh> Create(MeshDegrees degrees,
                                           std::vector<int> device_ids);
  // Create with rank r on device id r: the layout of the ranks alone, for
  // callers that place each rank elsewhere (the worker's --device) or need
  // no devices (weight sizes per rank, tests).
  static absl::StatusOr<DeviceMesh> OverRanks(MeshDegrees degrees);

  // Model-dependent rules: num_heads divisible by ulysses * tp (each rank
  // keeps whole heads) and num_layers >= pp (each stage owns a layer).
  absl::Status ValidateForModel(int num_heads, int num_layers) const;

  const MeshDegrees& degrees() const { return degrees_; }
  const std::vector<int>& device_ids() const { return device_ids_; }
  int world_size() const { return static_cast<int>(device_ids_.size()); }
  // Ranks per data-parallel replica: world_size() / dp.
  int replica_size() const { return world_size() / degrees_.dp; }
  // Degree along `dim`; for kSp, ring * ulysses.
  int degree(MeshDim dim) const;

  // "local" (no SP), "ulysses", "ring" or "usp" (ring and ulysses both > 1).
  std::string attention_strategy() const;

  // Errors if rank is outside [0, world_size()).
  absl::Status CheckRank(int rank) const;
  absl::StatusOr<MeshCoords> Coords(int rank) const;
  absl::StatusOr<int> RankOf(const MeshCoords& coords) const;
  // Coordinate of `rank` along `dim`; for kSp the sequence shard index
  // ring * ulysses_degree + ulysses.
  absl::StatusOr<int> Coord(MeshDim dim, int rank) const;

  // The ranks that share every coordinate of `rank` except `dim`, ascending
  // (which is also their order along `dim`); `rank` itself is included. For
  // kSp, the ranks that differ only in ring and ulysses.
  absl::StatusOr<std::vector<int>> GroupRanks(MeshDim dim, int rank) const;

  // The dp=1 mesh of data-parallel replica `index` in [0, dp), over that
  // replica's devices. Its rank r is global rank index * replica_size() + r.
  absl::StatusOr<DeviceMesh> Replica(int index) const;

  // e.g. "dp=1,cfg=2,ring=1,ulysses=2,pp=1,tp=1 devices=[0,1,2,3]".
  std::string DebugString() const;

 private:
  DeviceMesh(MeshDegrees degrees, std::vector<int> device_ids)
      : degrees_(degrees), device_ids_(std::move(device_ids)) {}

  MeshDegrees degrees_;
  std::vector<int> device_ids_;
};

}  // namespace dserve::parallel

#endif  // DSERVE_PARALLEL_DEVICE_MESH_H_
