#include "worker/models/pipeline_parallel.h"

#include <algorithm>
#include <string>

#include <ATen/ATen.h>

namespace dserve::models {

LayerRange StageLayers(int num_layers, int stage, int num_stages) {
  TORCH_CHECK(num_stages >= 1 && num_layers >= num_stages && stage >= 0 &&
                  stage < num_stages,
              "StageLayers: stage ", stage, " of ", num_stages, " with ",
              num_layers, " layers (need num_layers >= pp)");
  const int base = num_layers / num_stages;
  const int extra = num_layers % num_stages;
  const int first = stage * base + std::min(stage, extra);
  return {first, first + base + (stage < extra ? 1 : 0)};
}

void RunPipelineStages(std::vector<DiTActivations>& micro_batches,
                       parallel::Communicator& pp,
                       const std::function<void(DiTActivations&)>& run_layers) {
  const int stage = pp.rank();
  const int last = pp.size() - 1;
  for (DiTActivations& a : micro_batches) {
    if (stage > 0) {
      at::Tensor x = at::empty_like(a.x, at::MemoryFormat::Contiguous);
      absl::Status s = pp.Recv(x, stage - 1);
      TORCH_CHECK(s.ok(), "pipeline parallel: stage ", stage,
                  " receiving from stage ", stage - 1, ": ",
                  std::string(s.message()));
      a.x = x;
    }
    run_layers(a);
    if (stage < last) {
      a.x = a.x.contiguous();
      absl::Status s = pp.Send(a.x, stage + 1);
      TORCH_CHECK(s.ok(), "pipeline parallel: stage ", stage,
                  " sending to stage ", stage + 1, ": ",
                  std::string(s.message()));
    }
  }
}

}  // namespace dserve::models
