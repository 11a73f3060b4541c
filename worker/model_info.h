#ifndef DSERVE_WORKER_MODEL_INFO_H_
#define DSERVE_WORKER_MODEL_INFO_H_

// The public description of a loaded model (dserve.v1.ModelInfo), built from
// its PipelineConfig. The worker is the single source of truth for model
// limits: the frontend validates requests against what GetStatus reports.
//
// Pure function; thread-safe; does not block.

#include <string>

#include "absl/status/status.h"
#include "parallel/device_mesh.h"
#include "proto/dserve/v1/diffusion_service.pb.h"
#include "worker/models/model_config.h"
#include "worker/models/pipeline.h"

namespace dserve::worker {

dserve::v1::ModelInfo ModelInfoFromConfig(const models::PipelineConfig& config,
                                          bool is_default);

// Sets info's parameter_count, dit_bytes_per_rank and weight_bytes_per_rank
// for `pipeline` (this rank's, the leader's: it sees the text encoder's
// size) served on a replica of layout `mesh` (its dp is ignored: one
// replica's ranks). Rank r's DiT bytes are DiTShareSize of
// DiTShareForRank(mesh, r) at the pipeline's compute dtype; every rank
// holds the decoder; the text encoder is on every rank, or, when the
// pipeline shares prompts over a group (PipelineOptions::prompts), on the
// group's encoding rank only. Pure function of its arguments;
// INVALID_ARGUMENT for a mesh that does not fit the model.
absl::Status AddWeightSizes(const models::Pipeline& pipeline,
                            const parallel::MeshDegrees& mesh,
                            dserve::v1::ModelInfo& info);

}  // namespace dserve::worker

#endif  // DSERVE_WORKER_MODEL_INFO_H_
