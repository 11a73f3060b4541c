// Writes the built-in default model (DefaultModelConfig with weights from
// RandomWeights) as <out_dir>/config.json + <out_dir>/model.safetensors, the
// layout Pipeline::LoadFromDirectory reads.
//
//   make_random_model --out_dir=/tmp/model [--seed=0]

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "worker/models/model_config.h"
#include "worker/models/random_weights.h"
#include "worker/models/safetensors.h"
#include <ATen/Parallel.h>

ABSL_FLAG(std::string, out_dir, "", "Directory to write (must exist).");
ABSL_FLAG(uint64_t, seed, 0, "Seed of the random weights.");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Writes config.json and model.safetensors of the default random model.");
  absl::ParseCommandLine(argc, argv);
  at::set_num_threads(1);
  const std::string dir = absl::GetFlag(FLAGS_out_dir);
  if (dir.empty()) {
    std::fprintf(stderr, "make_random_model: --out_dir is required\n");
    return 2;
  }
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  dserve::models::PipelineConfig config = dserve::models::DefaultModelConfig();
  absl::Status status =
      dserve::models::WriteConfigFile(config, dir + "/config.json");
  if (status.ok()) {
    status = dserve::models::WriteSafetensors(
        dserve::models::RandomWeights(config, seed), dir + "/model.safetensors",
        {{"format", "pt"},
         {"dserve_model", config.name},
         {"dserve_random_seed", absl::StrCat(seed)}});
  }
  if (!status.ok()) {
    std::fprintf(stderr, "make_random_model: %s\n",
                 std::string(status.message()).c_str());
    return 1;
  }
  std::printf("wrote %s/config.json and %s/model.safetensors\n", dir.c_str(),
              dir.c_str());
  return 0;
}
