#ifndef DSERVE_PARALLEL_MESH_COMMUNICATORS_H_
#define DSERVE_PARALLEL_MESH_COMMUNICATORS_H_

// One rank's communicators for every group of a replica's mesh: the world
// group (all ranks of the replica; the leader broadcasts plans on it) and one
// group per mesh dimension (cfg, ring, ulysses, sp = ring x ulysses, pp, tp).
//
// Replica-local: `rank` is the rank inside the replica, [0, replica_size()),
// and the mesh's dp degree is ignored (replicas never talk to each other;
// each has its own store). group(kDp) is therefore a one-rank group.
//
// Groups are created eagerly, in one fixed order (world, cfg, ring, ulysses,
// sp, pp, tp), which every rank of the replica follows, so each group's
// rendezvous completes. Dimensions of degree 1 get a LocalCommunicator and
// no rendezvous; sp shares the ulysses (ring) communicator when ring
// (ulysses) is 1, because the members are the same. Group names are
// "mesh/world" and "mesh/<dim>:<ranks>", e.g. "mesh/cfg:1,3"; other code
// must not create groups with the "mesh/" prefix on the same store.
//
// Owns every communicator. Not thread-safe: the rank's one compute thread
// drives all its communicators. Create blocks until every group has formed.

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "parallel/communicator.h"
#include "parallel/device_mesh.h"
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace dserve::parallel {

// Builds this rank's member of one group; called once per group of size > 1.
// The Gloo factory rendezvouses through `store`; a fake may ignore it.
using CommunicatorFactory =
    std::function<absl::StatusOr<std::unique_ptr<Communicator>>(
        const c10::intrusive_ptr<c10d::Store>& store,
        const std::string& group_name, int group_rank, int group_size)>;

// CreateGlooCommunicator with `timeout` for rendezvous and every collective.
CommunicatorFactory GlooCommunicatorFactory(std::chrono::milliseconds timeout);

class MeshCommunicators {
 public:
  // Errors if `rank` is outside [0, mesh.replica_size()) or a group cannot
  // be formed (the factory's status, with the group name added).
  static absl::StatusOr<MeshCommunicators> Create(
      const DeviceMesh& mesh, int rank,
      const c10::intrusive_ptr<c10d::Store>& store,
      const CommunicatorFactory& factory);

  MeshCommunicators(MeshCommunicators&&) = default;
  MeshCommunicators& operator=(MeshCommunicators&&) = default;

  // This rank inside the replica, and its coordinates (dp is always 0).
  int rank() const { return rank_; }
  const MeshCoords& coords() const { return coords_; }

  // All ranks of the replica, in rank order.
  Communicator& world() const { return *world_; }
  // The group of this rank along `dim`; its group rank is this rank's
  // coordinate along `dim` (for kSp: ring * ulysses_degree + ulysses).
  Communicator& group(MeshDim dim) const;
  // Replica-local ranks of that group, in group-rank order.
  const std::vector<int>& group_ranks(MeshDim dim) const;

  // Bytes moved by this rank over all its groups (each communicator counted
  // once, even when shared by two dims), and a reset for per-step counting.
  CommStats TotalStats() const;
  void ResetStats();

 private:
  static constexpr int kNumDims = 7;  // MeshDim values, kDp..kSp
  MeshCommunicators() = default;

  int rank_ = 0;
  MeshCoords coords_;
  std::vector<std::unique_ptr<Communicator>> owned_;
  Communicator* world_ = nullptr;
  std::array<Communicator*, kNumDims> groups_{};
  std::array<std::vector<int>, kNumDims> group_ranks_;
};

}  // namespace dserve::parallel

#endif  // DSERVE_PARALLEL_MESH_COMMUNICATORS_H_
