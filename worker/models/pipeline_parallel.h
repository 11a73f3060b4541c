#ifndef DSERVE_WORKER_MODELS_PIPELINE_PARALLEL_H_
#define DSERVE_WORKER_MODELS_PIPELINE_PARALLEL_H_

// Pipeline parallelism for the DiT blocks (forward only, GPipe order): stage
// s of pp owns a contiguous layer range; each micro-batch's hidden states
// x [b, S, dim] go stage → stage by Send/Recv. Because Send is buffered,
// stage s starts micro-batch m+1 while stage s+1 works on m, so with M
// micro-batches the pipeline runs M + pp − 1 "ticks" instead of M·pp.
// Every stage computes Embed itself (timestep and text embeddings are cheap
// and needed by every block), so only x travels.
//
// Stateless functions; RunPipelineStages blocks like the Communicator.

#include <functional>
#include <vector>

#include "parallel/communicator.h"
#include "worker/models/dit.h"

namespace dserve::models {

// Layers [first, last) of stage `stage` of `num_stages`: contiguous, in
// order, sizes differing by at most one (the first num_layers % num_stages
// stages take one more), e.g. 4 layers over 3 stages → [0,2) [2,3) [3,4).
// Requires num_layers >= num_stages >= 1 and 0 <= stage < num_stages.
struct LayerRange {
  int first = 0;
  int last = 0;
};
LayerRange StageLayers(int num_layers, int stage, int num_stages);

// Runs every micro-batch through this stage: on stages > 0, x of each
// micro-batch is replaced by the one received from stage − 1 (it must
// already have the right shape, as Embed gives every stage); `run_layers`
// runs this stage's layers in place; on stages < pp − 1 the result is sent
// to stage + 1. On return only the last stage's micro-batches hold final
// hidden states. Communication failures throw c10::Error.
void RunPipelineStages(std::vector<DiTActivations>& micro_batches,
                       parallel::Communicator& pp,
                       const std::function<void(DiTActivations&)>& run_layers);

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_PIPELINE_PARALLEL_H_
