#include "worker/models/wan_pipeline.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/models/latent_decoder.h"
#include "worker/models/prompt_broadcast.h"
#include "worker/models/safetensors.h"
#include "worker/models/wan_prompt_encoder.h"
#include <nlohmann/json.hpp>

namespace dserve::models {
namespace {

bool IsFile(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

std::string BaseName(const std::string& dir) {
  std::filesystem::path p(dir);
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Pipeline>> CreateWanPipeline(
    PipelineConfig config, WeightMap dit_weights, const WeightMap& t5_weights,
    const WeightMap& vae_weights, const std::string& spiece_model,
    PipelineOptions options) {
  RETURN_IF_ERROR(ValidateConfig(config));
  if (config.text_encoder_type != "umt5" || config.decoder != "wan_vae") {
    return absl::InvalidArgumentError(absl::StrCat(
        "CreateWanPipeline: config has text_encoder_type = \"",
        config.text_encoder_type, "\", decoder = \"", config.decoder,
        "\"; need \"umt5\" and \"wan_vae\" (see WanPipelineConfig)"));
  }
  // Only the replica's encoding rank builds umT5 (prompt_broadcast.h).
  ASSIGN_OR_RETURN(
      std::unique_ptr<PromptEncoder> prompts,
      MakeRankPromptEncoder(
          config, options.prompts, options.device, options.compute_dtype,
          [&] {
            return MakeWanPromptEncoder(
                t5_weights, spiece_model, config.dit.text_len,
                config.dit.text_dim, {options.device, options.compute_dtype});
          }));
  ASSIGN_OR_RETURN(std::unique_ptr<LatentDecoder> decoder,
                   MakeWanVaeDecoder(vae_weights, options.device,
                                     config.latent_channels()));
  // umT5 keeps every weight in the compute dtype, the VAE in fp32; the
  // pages read from their mapped files are no longer needed.
  ComponentSizes sizes;
  if (EncodesPromptsHere(options.prompts)) {
    sizes.text_encoder_parameters = CountParameters(t5_weights);
    sizes.text_encoder_bytes =
        sizes.text_encoder_parameters *
        static_cast<int64_t>(c10::elementSize(options.compute_dtype));
  }
  sizes.decoder_parameters = CountParameters(vae_weights);
  sizes.decoder_bytes = sizes.decoder_parameters * 4;
  ReleaseMappedPages(t5_weights);
  ReleaseMappedPages(vae_weights);
  return Pipeline::Assemble(std::move(config), std::move(dit_weights), options,
                            std::move(prompts), std::move(decoder), sizes);
}

PipelineConfig WanConfigFromCheckpoint(const checkpoint::WanCheckpoint& ckpt,
                                       const std::string& name) {
  PipelineConfig c = WanPipelineConfig(ckpt.dit_config);
  c.name = name;
  c.description = absl::StrCat("Wan2.1 text-to-video (", ckpt.layout,
                               " layout, dim ", ckpt.dit_config.dim, ", ",
                               ckpt.dit_config.num_layers, " layers)");
  if (ckpt.scheduler.flow_shift.has_value()) {
    c.default_shift = static_cast<float>(*ckpt.scheduler.flow_shift);
  }
  return c;
}

absl::StatusOr<std::unique_ptr<Pipeline>> LoadWanPipeline(
    const std::string& dir, PipelineOptions options, const std::string& name) {
  checkpoint::WanLoadOptions load;
  // A rank that receives broadcast embeddings never reads umT5.
  load.load_text_encoder = EncodesPromptsHere(options.prompts);
  ASSIGN_OR_RETURN(checkpoint::WanCheckpoint ckpt,
                   checkpoint::LoadWanCheckpoint(dir, load));
  PipelineConfig config =
      WanConfigFromCheckpoint(ckpt, name.empty() ? BaseName(dir) : name);
  absl::StatusOr<std::unique_ptr<Pipeline>> pipeline = CreateWanPipeline(
      std::move(config), std::move(ckpt.dit), ckpt.t5, ckpt.vae,
      ckpt.spiece_model_path, options);
  if (!pipeline.ok()) {
    return absl::Status(pipeline.status().code(),
                        absl::StrCat(dir, ": ", pipeline.status().message()));
  }
  return pipeline;
}

absl::StatusOr<std::string> DetectModelLayout(const std::string& dir) {
  if (IsFile(dir + "/model_index.json")) return std::string("diffusers");
  const std::string config_path = dir + "/config.json";
  if (IsFile(config_path)) {
    std::ifstream in(config_path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, false);
    if (j.is_object() && j.contains("dit")) return std::string("dserve");
    if (j.is_object() && (j.value("_class_name", "") == "WanModel" ||
                          j.contains("model_type"))) {
      return std::string("wan");
    }
    return absl::InvalidArgumentError(absl::StrCat(
        config_path, ": neither dserve's config (a \"dit\" object) nor Wan's "
        "(\"_class_name\": \"WanModel\")"));
  }
  return absl::NotFoundError(absl::StrCat(
      dir, ": no model_index.json (diffusers layout) or config.json (dserve "
      "or Wan release layout)"));
}

absl::StatusOr<std::unique_ptr<Pipeline>> LoadModelDirectory(
    const std::string& dir, PipelineOptions options, const std::string& name) {
  ASSIGN_OR_RETURN(std::string layout, DetectModelLayout(dir));
  if (layout != "dserve") return LoadWanPipeline(dir, options, name);
  ASSIGN_OR_RETURN(std::unique_ptr<Pipeline> p,
                   Pipeline::LoadFromDirectory(dir, options));
  if (name.empty() || name == p->config().name) return p;
  // A different name: rebuild with the same parts is not possible from
  // outside, so re-create from the same config and weights (views of the
  // mapped file), after the first pipeline is gone so that only one of
  // them is ever materialised.
  PipelineConfig config = p->config();
  config.name = name;
  WeightMap weights = p->weights();
  p.reset();
  return Pipeline::Create(std::move(config), std::move(weights), options);
}

}  // namespace dserve::models
