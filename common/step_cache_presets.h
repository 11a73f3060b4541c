#ifndef DSERVE_COMMON_STEP_CACHE_PRESETS_H_
#define DSERVE_COMMON_STEP_CACHE_PRESETS_H_

// The named step-cache presets shared by the CLI (--cache=NAME) and the
// server (--step_cache=NAME, the default for requests without their own
// step_cache): off, slow, medium, fast (more reuse, less fidelity). Values
// were picked with bench/step_cache_bench (README "Step cache").
//
// Pure functions over constants: thread-safe, never block.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/generation_limits.h"

namespace dserve::common {

// INVALID_ARGUMENT naming `flag`, the value and the presets for an unknown
// name.
absl::StatusOr<StepCacheSettings> StepCachePreset(absl::string_view name,
                                                  absl::string_view flag);

// "off, slow, medium, fast".
std::string StepCachePresetNames();

}  // namespace dserve::common

#endif  // DSERVE_COMMON_STEP_CACHE_PRESETS_H_
