#include "parallel/device_mesh.h"

#include <array>
#include <cstdint>
#include <numeric>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace dserve::parallel {
namespace {

constexpr int kNumAxes = 6;
constexpr std::array<absl::string_view, kNumAxes> kAxisNames = {
    "dp", "cfg", "ring", "ulysses", "pp", "tp"};

// Degrees and coordinates as arrays in rank order, so the mixed-radix
// arithmetic below is written once instead of per field.
std::array<int, kNumAxes> DegreeArray(const MeshDegrees& d) {
  return {d.dp, d.cfg, d.ring, d.ulysses, d.pp, d.tp};
}

std::array<int*, kNumAxes> DegreeFields(MeshDegrees& d) {
  return {&d.dp, &d.cfg, &d.ring, &d.ulysses, &d.pp, &d.tp};
}

std::array<int, kNumAxes> CoordArray(const MeshCoords& c) {
  return {c.dp, c.cfg, c.ring, c.ulysses, c.pp, c.tp};
}

MeshCoords CoordsFromArray(const std::array<int, kNumAxes>& a) {
  MeshCoords c;
  c.dp = a[0];
  c.cfg = a[1];
  c.ring = a[2];
  c.ulysses = a[3];
  c.pp = a[4];
  c.tp = a[5];
  return c;
}

int AxisIndex(MeshDim dim) {
  switch (dim) {
    case MeshDim::kDp:
      return 0;
    case MeshDim::kCfg:
      return 1;
    case MeshDim::kRing:
      return 2;
    case MeshDim::kUlysses:
      return 3;
    case MeshDim::kPp:
      return 4;
    case MeshDim::kTp:
      return 5;
    case MeshDim::kSp:
      break;
  }
  return -1;
}

std::array<int, kNumAxes> ToCoordArray(const std::array<int, kNumAxes>& deg,
                                       int rank) {
  std::array<int, kNumAxes> c{};
  for (int i = kNumAxes - 1; i >= 0; --i) {
    c[i] = rank % deg[i];
    rank /= deg[i];
  }
  return c;
}

int ToRank(const std::array<int, kNumAxes>& deg,
           const std::array<int, kNumAxes>& c) {
  int rank = 0;
  for (int i = 0; i < kNumAxes; ++i) rank = rank * deg[i] + c[i];
  return rank;
}

std::string Divisors(int n) {
  std::vector<int> divisors;
  for (int i = 1; i <= n; ++i) {
    if (n % i == 0) divisors.push_back(i);
  }
  return absl::StrJoin(divisors, ", ");
}

}  // namespace

std::string_view MeshDimName(MeshDim dim) {
  if (dim == MeshDim::kSp) return "sp";
  absl::string_view name = kAxisNames[AxisIndex(dim)];
  return std::string_view(name.data(), name.size());
}

absl::StatusOr<MeshDegrees> ParseMeshSpec(std::string_view spec_in) {
  // Debian's abseil has its own string_view type, distinct from std's.
  const absl::string_view spec(spec_in.data(), spec_in.size());
  MeshDegrees degrees;
  if (absl::StripAsciiWhitespace(spec).empty()) return degrees;
  std::array<bool, kNumAxes> seen{};
  auto fields = DegreeFields(degrees);
  for (absl::string_view entry : absl::StrSplit(spec, ',')) {
    entry = absl::StripAsciiWhitespace(entry);
    if (entry.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "mesh spec \"", spec,
          "\" has an empty entry; write comma-separated key=value pairs such "
          "as \"dp=2,cfg=2,ulysses=2\""));
    }
    if (entry.find('=') == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "mesh spec entry \"", entry,
          "\" is not key=value; write e.g. \"ulysses=2\""));
    }
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(entry, absl::MaxSplits('=', 1));
    absl::string_view key = absl::StripAsciiWhitespace(kv.first);
    absl::string_view value = absl::StripAsciiWhitespace(kv.second);
    int axis = -1;
    for (int i = 0; i < kNumAxes; ++i) {
      if (key == kAxisNames[i]) axis = i;
    }
    if (axis < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "mesh spec key \"", key,
          "\" is unknown; allowed keys are dp, cfg, ring, ulysses, pp, tp"));
    }
    if (seen[axis]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "mesh spec key \"", key, "\" is given more than once in \"", spec,
          "\"; give each key at most once"));
    }
    seen[axis] = true;
    int parsed = 0;
    if (!absl::SimpleAtoi(value, &parsed)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "mesh spec value \"", value, "\" for key ", key,
          " is not an integer; allowed range is [1, ", kMaxDegree, "]"));
    }
    if (parsed < 1 || parsed > kMaxDegree) {
      return absl::InvalidArgumentError(
          absl::StrCat("mesh spec ", key, "=", parsed,
                       " is out of range; allowed range is [1, ", kMaxDegree,
                       "] (1 = not split along ", key, ")"));
    }
    *fields[axis] = parsed;
  }
  return degrees;
}

std::string FormatMeshSpec(const MeshDegrees& degrees) {
  auto values = DegreeArray(degrees);
  std::string out;
  for (int i = 0; i < kNumAxes; ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ",", kAxisNames[i], "=", values[i]);
  }
  return out;
}

int64_t WorldSize(const MeshDegrees& degrees) {
  int64_t product = 1;
  for (int d : DegreeArray(degrees)) {
    // Clamp so that nonsense degrees cannot overflow; ValidateDegrees rejects
    // them anyway.
    if (d < 0) return 0;
    product *= d;
    if (product > (int64_t{1} << 40)) return product;
  }
  return product;
}

MeshDegrees ReplicaDegrees(const MeshDegrees& degrees) {
  MeshDegrees replica = degrees;
  replica.dp = 1;
  return replica;
}

absl::Status ValidateDegrees(const MeshDegrees& degrees) {
  auto values = DegreeArray(degrees);
  for (int i = 0; i < kNumAxes; ++i) {
    if (values[i] < 1 || values[i] > kMaxDegree) {
      return absl::InvalidArgumentError(
          absl::StrCat("mesh degree ", kAxisNames[i], "=", values[i],
                       " is out of range; allowed range is [1, ", kMaxDegree,
                       "] (1 = not split along ", kAxisNames[i], ")"));
    }
  }
  if (degrees.cfg != 1 && degrees.cfg != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cfg degree ", degrees.cfg,
        " is not allowed: cfg parallel splits the conditional and "
        "unconditional branches over 2 ranks, so cfg must be 1 or 2"));
  }
  if ((degrees.ring > 1 || degrees.ulysses > 1) && degrees.tp > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Not allowed to enable sequence parallel and tensor parallel "
        "together: ring=",
        degrees.ring, ", ulysses=", degrees.ulysses, ", tp=", degrees.tp,
        "; set tp=1 to keep sequence parallel, or ring=1 and ulysses=1 to "
        "keep tensor parallel"));
  }
  return absl::OkStatus();
}

absl::StatusOr<DeviceMesh> DeviceMesh::Create(MeshDegrees degrees,
                                              std::vector<int> device_ids) {
  RETURN_IF_ERROR(ValidateDegrees(degrees));
  const int64_t world = WorldSize(degrees);
  if (static_cast<int64_t>(device_ids.size()) != world) {
    // The first clause is TeleFuser's wording, which users search for.
    return absl::InvalidArgumentError(absl::StrCat(
        "device num ", device_ids.size(), " and world size ", world,
        " not match: the mesh ", FormatMeshSpec(degrees), " needs dp*cfg*ring*",
        "ulysses*pp*tp = ", world, " devices but ", device_ids.size(),
        " device ids were given; pass exactly ", world,
        " devices or change the degrees so that their product is ",
        device_ids.size()));
  }
  absl::flat_hash_set<int> seen;
  for (size_t i = 0; i < device_ids.size(); ++i) {
    if (device_ids[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("device_ids[", i, "] = ", device_ids[i],
                       " is negative; device ids must be >= 0"));
    }
    if (!seen.insert(device_ids[i]).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "device id ", device_ids[i], " appears more than once in device_ids [",
          absl::StrJoin(device_ids, ","),
          "]; each rank needs its own device"));
    }
  }
  return DeviceMesh(degrees, std::move(device_ids));
}

absl::StatusOr<DeviceMesh> DeviceMesh::OverRanks(MeshDegrees degrees) {
  RETURN_IF_ERROR(ValidateDegrees(degrees));
  std::vector<int> ids(static_cast<size_t>(WorldSize(degrees)));
  std::iota(ids.begin(), ids.end(), 0);
  return Create(degrees, std::move(ids));
}

absl::Status DeviceMesh::ValidateForModel(int num_heads, int num_layers) const {
  if (num_heads < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_heads ", num_heads, " is invalid; the model needs >= 1 head"));
  }
  if (num_layers < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_layers ", num_layers, " is invalid; the model needs >= 1 layer"));
  }
  const int head_split = degrees_.ulysses * degrees_.tp;
  if (num_heads % head_split != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_heads ", num_heads, " is not divisible by ulysses*tp = ",
        degrees_.ulysses, "*", degrees_.tp, " = ", head_split,
        ": every rank must hold whole attention heads; choose ulysses*tp "
        "among the divisors of ",
        num_heads, " (", Divisors(num_heads), ")"));
  }
  if (num_layers < degrees_.pp) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_layers ", num_layers, " is fewer than pp = ", degrees_.pp,
        ": every pipeline stage needs at least one layer; set pp <= ",
        num_layers));
  }
  return absl::OkStatus();
}

int DeviceMesh::degree(MeshDim dim) const {
  if (dim == MeshDim::kSp) return degrees_.ring * degrees_.ulysses;
  return DegreeArray(degrees_)[AxisIndex(dim)];
}

std::string DeviceMesh::attention_strategy() const {
  if (degrees_.ring > 1 && degrees_.ulysses > 1) return "usp";
  if (degrees_.ring > 1) return "ring";
  if (degrees_.ulysses > 1) return "ulysses";
  return "local";
}

absl::Status DeviceMesh::CheckRank(int rank) const {
  if (rank < 0 || rank >= world_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " is out of range; allowed range is [0, ",
                     world_size(), ") for mesh ", FormatMeshSpec(degrees_)));
  }
  return absl::OkStatus();
}

absl::StatusOr<MeshCoords> DeviceMesh::Coords(int rank) const {
  RETURN_IF_ERROR(CheckRank(rank));
  return CoordsFromArray(ToCoordArray(DegreeArray(degrees_), rank));
}

absl::StatusOr<int> DeviceMesh::RankOf(const MeshCoords& coords) const {
  auto deg = DegreeArray(degrees_);
  auto c = CoordArray(coords);
  for (int i = 0; i < kNumAxes; ++i) {
    if (c[i] < 0 || c[i] >= deg[i]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "coordinate ", kAxisNames[i], "=", c[i],
          " is out of range; allowed range is [0, ", deg[i], ")"));
    }
  }
  return ToRank(deg, c);
}

absl::StatusOr<int> DeviceMesh::Coord(MeshDim dim, int rank) const {
  absl::StatusOr<MeshCoords> coords = Coords(rank);
  if (!coords.ok()) return coords.status();
  if (dim == MeshDim::kSp) return coords->ring * degrees_.ulysses + coords->ulysses;
  return CoordArray(*coords)[AxisIndex(dim)];
}

absl::StatusOr<std::vector<int>> DeviceMesh::GroupRanks(MeshDim dim,
                                                        int rank) const {
  RETURN_IF_ERROR(CheckRank(rank));
  const auto deg = DegreeArray(degrees_);
  const auto base = ToCoordArray(deg, rank);
  std::vector<int> varying;
  if (dim == MeshDim::kSp) {
    varying = {AxisIndex(MeshDim::kRing), AxisIndex(MeshDim::kUlysses)};
  } else {
    varying = {AxisIndex(dim)};
  }
  // Enumerate the varying axes slowest first, so the result is ascending.
  std::vector<std::array<int, kNumAxes>> coords = {base};
  for (int axis : varying) {
    std::vector<std::array<int, kNumAxes>> next;
    for (const auto& c : coords) {
      for (int v = 0; v < deg[axis]; ++v) {
        auto copy = c;
        copy[axis] = v;
        next.push_back(copy);
      }
    }
    coords = std::move(next);
  }
  std::vector<int> ranks;
  for (const auto& c : coords) ranks.push_back(ToRank(deg, c));
  return ranks;
}

absl::StatusOr<DeviceMesh> DeviceMesh::Replica(int index) const {
  if (index < 0 || index >= degrees_.dp) {
    return absl::InvalidArgumentError(
        absl::StrCat("replica index ", index,
                     " is out of range; allowed range is [0, ", degrees_.dp,
                     ") (dp=", degrees_.dp, ")"));
  }
  const MeshDegrees local = ReplicaDegrees(degrees_);
  const int n = replica_size();
  std::vector<int> devices(device_ids_.begin() + index * n,
                           device_ids_.begin() + (index + 1) * n);
  return DeviceMesh(local, std::move(devices));
}

std::string DeviceMesh::DebugString() const {
  return absl::StrCat(FormatMeshSpec(degrees_), " devices=[",
                      absl::StrJoin(device_ids_, ","), "]");
}

}  // namespace dserve::parallel
