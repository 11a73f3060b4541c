#ifndef DSERVE_WORKER_MODELS_WAN_PIPELINE_H_
#define DSERVE_WORKER_MODELS_WAN_PIPELINE_H_

// Wan2.1 text-to-video pipelines, and loading any model directory dserve
// serves. Kept apart from pipeline.h because the umT5 tokenizer links
// Debian's libsentencepiece, which only binaries serving Wan need.
//
//   CreateWanPipeline  from explicit parts (configs + the DiT / umT5 / VAE
//                      weights under Wan's original names + spiece.model);
//   LoadWanPipeline    a Wan2.1 checkpoint directory in the original Wan
//                      release or the diffusers layout (LoadWanCheckpoint);
//   LoadModelDirectory any of the three layouts: dserve's own (config.json
//                      with a "dit" object + model.safetensors), Wan, or
//                      diffusers (model_index.json).
//
// Stateless functions; they block on the file system and while weights are
// converted. The pipelines they return are as pipeline.h describes.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/models/checkpoint/wan_checkpoint.h"
#include "worker/models/model_config.h"
#include "worker/models/pipeline.h"

namespace dserve::models {

// `config`: WanPipelineConfig(dit shapes) or a variant (its dit, text_len,
// defaults). umT5 runs with options' device and compute dtype, the VAE in
// fp32 on the device, the DiT per DiTNumerics. Errors name the component
// and the key. Under options.prompts a rank that does not encode ignores
// `t5_weights` and `spiece_model` (they may be empty), and LoadWanPipeline
// does not read them.
absl::StatusOr<std::unique_ptr<Pipeline>> CreateWanPipeline(
    PipelineConfig config, WeightMap dit_weights, const WeightMap& t5_weights,
    const WeightMap& vae_weights, const std::string& spiece_model,
    PipelineOptions options = {});

// The pipeline config of a loaded checkpoint: WanPipelineConfig(its DiT)
// named `name`, with the default shift from diffusers'
// scheduler_config.json flow_shift when present (Wan's own default 5.0
// otherwise).
PipelineConfig WanConfigFromCheckpoint(const checkpoint::WanCheckpoint& ckpt,
                                       const std::string& name);

// `name` empty = the directory's base name.
absl::StatusOr<std::unique_ptr<Pipeline>> LoadWanPipeline(
    const std::string& dir, PipelineOptions options = {},
    const std::string& name = "");

// Which layout `dir` holds: "dserve", "wan" or "diffusers"; NOT_FOUND
// naming the marker files if none.
absl::StatusOr<std::string> DetectModelLayout(const std::string& dir);

// DetectModelLayout, then Pipeline::LoadFromDirectory (dserve) or
// LoadWanPipeline. `name` overrides the model name ("" = dserve's
// config.json name, or the directory's base name for Wan).
absl::StatusOr<std::unique_ptr<Pipeline>> LoadModelDirectory(
    const std::string& dir, PipelineOptions options = {},
    const std::string& name = "");

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_WAN_PIPELINE_H_
