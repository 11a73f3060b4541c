#ifndef DSERVE_WORKER_MODELS_DEFAULT_MODEL_WEIGHTS_PATH_H_
#define DSERVE_WORKER_MODELS_DEFAULT_MODEL_WEIGHTS_PATH_H_

// Where the shipped default model (config.json + model.safetensors of
// //worker/models/default_model:weights) is at run time. A binary or test
// that depends on that filegroup finds it in its runfiles; pass the
// binary's argv[0].
//
// Stateless and thread-safe; blocks on a few stat() calls. Reads no
// environment variables: the caller names the binary.

#include <string>

#include "absl/status/statusor.h"

namespace dserve::default_model {

// Runfiles-relative directory of the shipped weights.
inline constexpr char kWeightsRunfilesPath[] =
    "dserve/worker/models/default_model/weights";

// The first of
//   <argv0>.runfiles/dserve/worker/models/default_model/weights
//   worker/models/default_model/weights   (relative to the working
//                                          directory: `bazel run`, `bazel
//                                          test` and a source checkout)
// that holds a config.json. NOT_FOUND lists the places tried.
absl::StatusOr<std::string> DefaultModelDirectory(const std::string& argv0);

}  // namespace dserve::default_model

#endif  // DSERVE_WORKER_MODELS_DEFAULT_MODEL_WEIGHTS_PATH_H_
