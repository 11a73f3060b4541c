#include "parallel/mesh_communicators.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "parallel/communicator.h"
#include "parallel/device_mesh.h"
#include "parallel/gloo_communicator.h"
#include "parallel/local_communicator.h"

namespace dserve::parallel {
namespace {

int DimIndex(MeshDim dim) { return static_cast<int>(dim); }

absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

CommunicatorFactory GlooCommunicatorFactory(std::chrono::milliseconds timeout) {
  return [timeout](const c10::intrusive_ptr<c10d::Store>& store,
                   const std::string& group_name, int group_rank,
                   int group_size) {
    return CreateGlooCommunicator(store, group_name, group_rank, group_size,
                                  timeout);
  };
}

absl::StatusOr<MeshCommunicators> MeshCommunicators::Create(
    const DeviceMesh& mesh, int rank,
    const c10::intrusive_ptr<c10d::Store>& store,
    const CommunicatorFactory& factory) {
  if (rank < 0 || rank >= mesh.replica_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MeshCommunicators: rank ", rank,
        " is out of range; allowed range is [0, ", mesh.replica_size(),
        ") (the ranks of one replica of ", FormatMeshSpec(mesh.degrees()),
        ")"));
  }
  if (!factory) {
    return absl::InvalidArgumentError("MeshCommunicators: factory is empty");
  }
  // Replica 0's layout is every replica's layout (DP is the slowest dim).
  absl::StatusOr<DeviceMesh> local = mesh.Replica(0);
  if (!local.ok()) return local.status();

  MeshCommunicators out;
  out.rank_ = rank;
  absl::StatusOr<MeshCoords> coords = local->Coords(rank);
  if (!coords.ok()) return coords.status();
  out.coords_ = *coords;

  // Builds (or, for one rank, stands in for) the group `name` of `ranks`.
  auto make = [&](const std::string& name,
                  const std::vector<int>& ranks) -> absl::StatusOr<Communicator*> {
    if (ranks.size() == 1) {
      out.owned_.push_back(std::make_unique<LocalCommunicator>());
      return out.owned_.back().get();
    }
    const int group_rank = static_cast<int>(
        std::find(ranks.begin(), ranks.end(), rank) - ranks.begin());
    absl::StatusOr<std::unique_ptr<Communicator>> comm =
        factory(store, name, group_rank, static_cast<int>(ranks.size()));
    if (!comm.ok()) {
      return absl::Status(comm.status().code(),
                          absl::StrCat("creating group ", name, ": ",
                                       comm.status().message()));
    }
    out.owned_.push_back(std::move(*comm));
    return out.owned_.back().get();
  };

  std::vector<int> all(local->world_size());
  for (int r = 0; r < local->world_size(); ++r) all[r] = r;
  absl::StatusOr<Communicator*> world = make("mesh/world", all);
  if (!world.ok()) return world.status();
  out.world_ = *world;

  const MeshDim order[] = {MeshDim::kDp,  MeshDim::kCfg, MeshDim::kRing,
                           MeshDim::kUlysses, MeshDim::kSp, MeshDim::kPp,
                           MeshDim::kTp};
  const MeshDegrees& deg = local->degrees();
  for (MeshDim dim : order) {
    absl::StatusOr<std::vector<int>> ranks = local->GroupRanks(dim, rank);
    if (!ranks.ok()) return ranks.status();
    out.group_ranks_[DimIndex(dim)] = *ranks;
    if (dim == MeshDim::kSp && (deg.ring == 1 || deg.ulysses == 1)) {
      // Same members as the one real SP dim: share its communicator.
      out.groups_[DimIndex(dim)] =
          out.groups_[DimIndex(deg.ring == 1 ? MeshDim::kUlysses
                                             : MeshDim::kRing)];
      continue;
    }
    absl::StatusOr<Communicator*> comm =
        make(absl::StrCat("mesh/", Sv(MeshDimName(dim)), ":",
                          absl::StrJoin(*ranks, ",")),
             *ranks);
    if (!comm.ok()) return comm.status();
    out.groups_[DimIndex(dim)] = *comm;
  }
  return out;
}

Communicator& MeshCommunicators::group(MeshDim dim) const {
  return *groups_[DimIndex(dim)];
}

const std::vector<int>& MeshCommunicators::group_ranks(MeshDim dim) const {
  return group_ranks_[DimIndex(dim)];
}

CommStats MeshCommunicators::TotalStats() const {
  CommStats total;
  for (const auto& comm : owned_) {
    const CommStats& s = comm->stats();
    total.broadcast_bytes += s.broadcast_bytes;
    total.all_reduce_bytes += s.all_reduce_bytes;
    total.all_gather_bytes += s.all_gather_bytes;
    total.all_to_all_bytes += s.all_to_all_bytes;
    total.send_bytes += s.send_bytes;
    total.calls += s.calls;
  }
  return total;
}

void MeshCommunicators::ResetStats() {
  for (const auto& comm : owned_) comm->ResetStats();
}

}  // namespace dserve::parallel
