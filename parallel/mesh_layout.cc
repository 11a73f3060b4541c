#include "parallel/mesh_layout.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace dserve::parallel {

dserve::v1::MeshLayout MeshLayoutFromDegrees(const MeshDegrees& degrees) {
  dserve::v1::MeshLayout layout;
  layout.set_dp(degrees.dp);
  layout.set_cfg(degrees.cfg);
  layout.set_ring(degrees.ring);
  layout.set_ulysses(degrees.ulysses);
  layout.set_pp(degrees.pp);
  layout.set_tp(degrees.tp);
  return layout;
}

absl::StatusOr<MeshDegrees> MeshDegreesFromLayout(
    const dserve::v1::MeshLayout& layout) {
  MeshDegrees degrees;
  const struct {
    const char* name;
    int value;
    int* out;
  } fields[] = {{"dp", layout.dp(), &degrees.dp},
                {"cfg", layout.cfg(), &degrees.cfg},
                {"ring", layout.ring(), &degrees.ring},
                {"ulysses", layout.ulysses(), &degrees.ulysses},
                {"pp", layout.pp(), &degrees.pp},
                {"tp", layout.tp(), &degrees.tp}};
  for (const auto& field : fields) {
    if (field.value < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MeshLayout.", field.name, "=", field.value,
          " is negative; allowed: 0 (unset, means 1) or 1..", kMaxDegree));
    }
    *field.out = field.value == 0 ? 1 : field.value;
  }
  RETURN_IF_ERROR(ValidateDegrees(degrees));
  return degrees;
}

}  // namespace dserve::parallel
