#include "common/step_cache_presets.h"

#include <array>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dserve::common {
namespace {

struct Preset {
  const char* name;
  StepCacheSettings settings;
};

// threshold, warmup_steps, max_reused_in_a_row. Tuned on the default
// model at 32x32, 20 steps (bench/step_cache_bench, README "Step cache"):
// medium reuses ~1/3 of the steps, fast ~1/2.
constexpr std::array<Preset, 4> kPresets = {{
    {"off", {0.0f, 0, 0}},
    {"slow", {0.1f, 2, 1}},
    {"medium", {0.15f, 2, 2}},
    {"fast", {0.25f, 2, 3}},
}};

}  // namespace

std::string StepCachePresetNames() {
  std::string out;
  for (const Preset& p : kPresets) {
    if (!out.empty()) out += ", ";
    out += p.name;
  }
  return out;
}

absl::StatusOr<StepCacheSettings> StepCachePreset(absl::string_view name,
                                                  absl::string_view flag) {
  for (const Preset& p : kPresets) {
    if (name == p.name) return p.settings;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(flag, ": \"", EchoValue(name),
                   "\" is not a step-cache preset (allowed: ",
                   StepCachePresetNames(), ")"));
}

}  // namespace dserve::common
