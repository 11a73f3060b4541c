#include "worker/model_info.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/generation_limits.h"
#include "common/status_macros.h"
#include "parallel/device_mesh.h"
#include "worker/models/dit_share.h"

namespace dserve::worker {

dserve::v1::ModelInfo ModelInfoFromConfig(const models::PipelineConfig& config,
                                          bool is_default) {
  dserve::v1::ModelInfo info;
  info.set_name(config.name);
  info.set_description(config.description);
  info.set_is_default(is_default);
  info.set_default_width(config.default_width);
  info.set_default_height(config.default_height);
  info.set_default_frames(config.default_frames);
  info.set_default_steps(config.default_steps);
  info.set_default_guidance_scale(config.default_guidance);
  info.set_default_flow_shift(config.default_shift);
  info.set_default_fps(config.default_fps);
  info.set_default_sampler(
      static_cast<dserve::v1::Sampler>(config.default_sampler));
  info.set_prediction_type(config.prediction_type);
  info.set_dim(config.dit.dim);
  info.set_num_heads(config.dit.num_heads);
  info.set_num_layers(config.dit.num_layers);
  for (const std::string& word : config.vocabulary) {
    info.add_vocabulary(word);
  }
  // Every limit, from the one place the pipeline reads them too.
  const common::GenerationLimits limits = models::RequestLimits(config);
  info.set_size_step(limits.size_step);
  info.set_max_width(limits.max_width);
  info.set_max_height(limits.max_height);
  info.set_frame_step(limits.frame_step);
  info.set_max_frames(limits.max_frames);
  info.set_max_steps(limits.max_steps);
  info.set_min_guidance_scale(limits.min_guidance);
  info.set_max_guidance_scale(limits.max_guidance);
  info.set_min_flow_shift(limits.min_shift);
  info.set_max_flow_shift(limits.max_shift);
  info.set_max_prompt_tokens(limits.max_prompt_tokens);
  info.set_prompt_tokenizer(limits.words_tokenizer ? "words" : "sentencepiece");
  for (int sampler : limits.samplers) {
    info.add_samplers(static_cast<dserve::v1::Sampler>(sampler));
  }
  return info;
}

absl::Status AddWeightSizes(const models::Pipeline& pipeline,
                            const parallel::MeshDegrees& replica_mesh,
                            dserve::v1::ModelInfo& info) {
  // Device ids do not change a rank's share.
  ASSIGN_OR_RETURN(const parallel::DeviceMesh mesh,
                   parallel::DeviceMesh::OverRanks(
                       parallel::ReplicaDegrees(replica_mesh)));
  const int world = mesh.world_size();
  const models::DiTConfig& dit = pipeline.config().dit;
  const at::ScalarType dtype = pipeline.options().compute_dtype;
  const models::ComponentSizes& parts = pipeline.component_sizes();
  ASSIGN_OR_RETURN(models::ShareSize whole,
                   models::DiTShareSize(dit, models::DiTShare{}, dtype));
  const models::PromptSharing& prompts = pipeline.options().prompts;
  info.set_parameter_count(whole.parameters + parts.text_encoder_parameters +
                           parts.decoder_parameters);
  info.clear_dit_bytes_per_rank();
  info.clear_weight_bytes_per_rank();
  for (int rank = 0; rank < world; ++rank) {
    ASSIGN_OR_RETURN(models::DiTShare share,
                     models::DiTShareForRank(mesh, rank));
    ASSIGN_OR_RETURN(models::ShareSize size,
                     models::DiTShareSize(dit, share, dtype));
    const bool text_here =
        prompts.group == nullptr || rank == prompts.encoding_rank;
    info.add_dit_bytes_per_rank(size.bytes);
    info.add_weight_bytes_per_rank(
        size.bytes + parts.decoder_bytes +
        (text_here ? parts.text_encoder_bytes : 0));
  }
  return absl::OkStatus();
}

}  // namespace dserve::worker
