#include "worker/model_info.h"

namespace dserve::worker {

dserve::v1::ModelInfo ModelInfoFromConfig(const models::PipelineConfig& config,
                                          bool is_default) {
  dserve::v1::ModelInfo info;
  info.set_name(config.name);
  info.set_description(config.description);
  info.set_is_default(is_default);
  info.set_default_width(config.default_width);
  info.set_default_height(config.default_height);
  info.set_max_width(config.max_width);
  info.set_max_height(config.max_height);
  info.set_size_step(config.size_step);
  info.set_max_frames(config.max_frames);
  info.set_default_steps(config.default_steps);
  info.set_default_guidance_scale(config.default_guidance);
  info.set_default_flow_shift(config.default_shift);
  info.set_prediction_type(config.prediction_type);
  info.set_dim(config.dit.dim);
  info.set_num_heads(config.dit.num_heads);
  info.set_num_layers(config.dit.num_layers);
  for (const std::string& word : config.vocabulary) {
    info.add_vocabulary(word);
  }
  return info;
}

}  // namespace dserve::worker
