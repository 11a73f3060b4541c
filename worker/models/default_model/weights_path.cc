#include "worker/models/default_model/weights_path.h"

#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dserve::default_model {

absl::StatusOr<std::string> DefaultModelDirectory(const std::string& argv0) {
  std::vector<std::string> candidates;
  if (!argv0.empty()) {
    candidates.push_back(
        absl::StrCat(argv0, ".runfiles/", kWeightsRunfilesPath));
  }
  candidates.push_back("worker/models/default_model/weights");
  for (const std::string& dir : candidates) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(dir + "/config.json", ec)) {
      return dir;
    }
  }
  return absl::NotFoundError(absl::StrCat(
      "default model weights not found; looked for config.json in ",
      absl::StrJoin(candidates, ", "),
      ". Depend on //worker/models/default_model:weights or pass a model "
      "directory."));
}

}  // namespace dserve::default_model
