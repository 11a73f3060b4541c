#include "worker/model_info.h"

#include "common/generation_limits.h"

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

}  // namespace dserve::worker
