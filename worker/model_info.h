#ifndef DSERVE_WORKER_MODEL_INFO_H_
#define DSERVE_WORKER_MODEL_INFO_H_

// The public description of a loaded model (dserve.v1.ModelInfo), built from
// its PipelineConfig. The worker is the single source of truth for model
// limits: the frontend validates requests against what GetStatus reports.
//
// Pure function; thread-safe; does not block.

#include "proto/dserve/v1/diffusion_service.pb.h"
#include "worker/models/model_config.h"

namespace dserve::worker {

dserve::v1::ModelInfo ModelInfoFromConfig(const models::PipelineConfig& config,
                                          bool is_default);

}  // namespace dserve::worker

#endif  // DSERVE_WORKER_MODEL_INFO_H_
