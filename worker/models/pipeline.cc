#include "worker/models/pipeline.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "worker/models/dit.h"
#include "worker/models/latent_decoder.h"
#include "worker/models/prompt_broadcast.h"
#include "worker/models/prompt_encoder.h"
#include "worker/models/safetensors.h"
#include "worker/models/sampler.h"
#include "common/generation_limits.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "worker/models/text_encoder.h"
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace dserve::models {
namespace {

constexpr int kMaxBatch = 64;

absl::Status OutOfRange(const std::string& field, const std::string& value,
                        const std::string& allowed) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " = ", value, " is out of range; allowed: ",
                   allowed));
}

void AppendUnique(std::vector<std::string>& out,
                  const std::vector<std::string>& words) {
  for (const std::string& w : words) {
    if (std::find(out.begin(), out.end(), w) == out.end()) out.push_back(w);
  }
}

// The weights of `all` under `prefix`, with the prefix removed (shallow
// tensor copies).
WeightMap WithPrefix(const WeightMap& all, const std::string& prefix) {
  WeightMap out;
  for (auto it = all.lower_bound(prefix);
       it != all.end() && it->first.compare(0, prefix.size(), prefix) == 0;
       ++it) {
    out.emplace(it->first.substr(prefix.size()), it->second);
  }
  return out;
}

}  // namespace

int64_t CountParameters(const WeightMap& weights) {
  int64_t n = 0;
  for (const auto& [key, t] : weights) {
    if (t.defined()) n += t.numel();
  }
  return n;
}

class Pipeline::Impl {
 public:
  Impl(DiTShard dit, std::unique_ptr<PromptEncoder> prompts,
       std::unique_ptr<LatentDecoder> decoder)
      : dit(std::move(dit)),
        prompts(std::move(prompts)),
        decoder(std::move(decoder)) {}
  DiTShard dit;
  std::unique_ptr<PromptEncoder> prompts;
  std::unique_ptr<LatentDecoder> decoder;
};

namespace {

absl::StatusOr<std::unique_ptr<LatentDecoder>> MakeDecoder(
    const PipelineConfig& config, const WeightMap& vae_weights,
    const PipelineOptions& options) {
  if (config.decoder != "wan_vae") return MakePixelDecoder();
  return MakeWanVaeDecoder(vae_weights, options.device,
                           config.latent_channels());
}

}  // namespace

Pipeline::Pipeline(PipelineConfig config, WeightMap weights,
                   PipelineOptions options, std::unique_ptr<Impl> impl)
    : config_(std::move(config)),
      weights_(std::move(weights)),
      options_(options),
      impl_(std::move(impl)) {}

Pipeline::~Pipeline() = default;

absl::StatusOr<std::unique_ptr<Pipeline>> Pipeline::Assemble(
    PipelineConfig config, WeightMap weights, PipelineOptions options,
    std::unique_ptr<PromptEncoder> prompts,
    std::unique_ptr<LatentDecoder> decoder, ComponentSizes sizes) {
  RETURN_IF_ERROR(ValidateConfig(config));
  if (prompts == nullptr || decoder == nullptr) {
    return absl::InvalidArgumentError(
        "Pipeline::Assemble: the prompt encoder and the decoder are required");
  }
  DiTNumerics numerics;
  numerics.device = options.device;
  numerics.compute_dtype = options.compute_dtype;
  ASSIGN_OR_RETURN(DiTShard dit, LoadDiTShard(config.dit, weights, numerics,
                                              options.dit_share));
  auto impl = std::make_unique<Impl>(std::move(dit), std::move(prompts),
                                     std::move(decoder));
  std::unique_ptr<Pipeline> pipeline(new Pipeline(
      std::move(config), std::move(weights), options, std::move(impl)));
  pipeline->sizes_ = sizes;
  // Every part is built: what was read of mapped weights is now held (or
  // not needed) and leaves the RSS.
  ReleaseMappedPages(pipeline->weights_);
  return pipeline;
}

absl::StatusOr<std::unique_ptr<Pipeline>> Pipeline::Create(
    PipelineConfig config, WeightMap weights, PipelineOptions options) {
  RETURN_IF_ERROR(ValidateConfig(config));
  if (config.text_encoder_type != "word") {
    return absl::InvalidArgumentError(absl::StrCat(
        "Pipeline::Create: text_encoder_type = \"", config.text_encoder_type,
        "\" needs CreateWanPipeline (wan_pipeline.h: tokenizer and umT5)"));
  }
  ASSIGN_OR_RETURN(
      std::unique_ptr<PromptEncoder> prompts,
      MakeRankPromptEncoder(
          config, options.prompts, options.device, options.compute_dtype,
          [&]() -> absl::StatusOr<std::unique_ptr<PromptEncoder>> {
            ASSIGN_OR_RETURN(TextEncoder text,
                             TextEncoder::Create(config, weights));
            return MakeWordPromptEncoder(std::move(text));
          }));
  if (!EncodesPromptsHere(options.prompts)) {
    // A receiving rank holds no text-encoder tensors.
    for (auto it = weights.lower_bound("text_encoder.");
         it != weights.end() && it->first.rfind("text_encoder.", 0) == 0;) {
      it = weights.erase(it);
    }
  }
  const WeightMap vae = WithPrefix(weights, "vae.");
  ASSIGN_OR_RETURN(std::unique_ptr<LatentDecoder> decoder,
                   MakeDecoder(config, vae, options));
  // The word encoder and the VAE keep fp32 weights.
  ComponentSizes sizes;
  sizes.text_encoder_parameters =
      CountParameters(WithPrefix(weights, "text_encoder."));
  sizes.text_encoder_bytes = sizes.text_encoder_parameters * 4;
  if (config.decoder == "wan_vae") {
    sizes.decoder_parameters = CountParameters(vae);
    sizes.decoder_bytes = sizes.decoder_parameters * 4;
  }
  return Assemble(std::move(config), std::move(weights), options,
                  std::move(prompts), std::move(decoder), sizes);
}

absl::StatusOr<std::unique_ptr<Pipeline>> Pipeline::LoadFromDirectory(
    const std::string& dir, PipelineOptions options) {
  ASSIGN_OR_RETURN(PipelineConfig config,
                          ReadConfigFile(dir + "/config.json"));
  absl::StatusOr<WeightMap> read = ReadSafetensors(dir + "/model.safetensors");
  if (absl::IsNotFound(read.status())) {
    // Large checkpoints ship as shards listed in an index file.
    absl::StatusOr<WeightMap> sharded =
        ReadSafetensorsIndex(dir + "/model.safetensors.index.json");
    if (!absl::IsNotFound(sharded.status())) read = std::move(sharded);
  }
  ASSIGN_OR_RETURN(WeightMap weights, std::move(read));
  absl::StatusOr<std::unique_ptr<Pipeline>> pipeline =
      Create(std::move(config), std::move(weights), options);
  if (!pipeline.ok()) {
    return absl::Status(pipeline.status().code(),
                        absl::StrCat(dir, ": ", pipeline.status().message()));
  }
  return pipeline;
}

absl::Status Pipeline::ValidateSpec(const GenerationSpec& spec) const {
  // The frontend admits requests with the same function and the same
  // numbers (ModelInfo carries RequestLimits), so this fails only for a
  // plan that bypassed admission.
  const common::GenerationLimits limits = RequestLimits(config_);
  RETURN_IF_ERROR(common::CheckGenerationShape(
      limits, {spec.width, spec.height, spec.num_frames, spec.num_steps,
               spec.flow_shift, static_cast<int>(spec.sampler)}));
  const int n = static_cast<int>(spec.items.size());
  if (n < 1 || n > kMaxBatch) {
    return OutOfRange("items (batch size)", absl::StrCat(n),
                      absl::StrCat("[1, ", kMaxBatch, "]"));
  }
  for (const GenerationItem& item : spec.items) {
    RETURN_IF_ERROR(common::CheckGenerationItem(
        limits, item.guidance_scale, item.prompt, item.negative_prompt));
  }
  if (spec.step_cache.enabled) {
    RETURN_IF_ERROR(common::CheckStepCache(
        {static_cast<float>(spec.step_cache.threshold),
         spec.step_cache.warmup_steps, spec.step_cache.max_reused_in_a_row},
        spec.num_steps));
  }
  return absl::OkStatus();
}

absl::StatusOr<DenoiseState> Pipeline::Prepare(
    const GenerationSpec& spec) const {
  RETURN_IF_ERROR(ValidateSpec(spec));
  const SamplerKind sampler = spec.sampler == SamplerKind::kModelDefault
                                  ? config_.default_sampler
                                  : spec.sampler;
  const bool unipc_ok = config_.schedule == ScheduleKind::kWan;
  if (sampler != SamplerKind::kFlowEuler &&
      !(sampler == SamplerKind::kFlowUniPC && unipc_ok)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sampler = ", static_cast<int>(spec.sampler),
        " is not supported by model '", config_.name, "'; allowed: 0 (model "
        "default), 1 (SAMPLER_FLOW_EULER)",
        unipc_ok ? ", 2 (SAMPLER_FLOW_UNIPC)" : ""));
  }
  if (config_.decoder == "wan_vae" && (spec.num_frames - 1) % 4 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_frames = ", spec.num_frames, " is not 4k+1 (1, 5, 9, ...), "
        "which model '", config_.name, "'s VAE needs"));
  }
  std::vector<std::string> prompts, negatives;
  for (const GenerationItem& item : spec.items) {
    prompts.push_back(item.prompt);
    negatives.push_back(item.negative_prompt.empty()
                            ? config_.default_negative_prompt
                            : item.negative_prompt);
  }
  DenoiseState state;
  absl::Status encode_status;
  absl::Status torch_status = CatchTorch("Pipeline::Prepare", [&] {
    absl::StatusOr<PromptEncoding> cond =
        impl_->prompts->Encode(prompts, "prompt");
    absl::StatusOr<PromptEncoding> uncond =
        impl_->prompts->Encode(negatives, "negative_prompt");
    if (!cond.ok() || !uncond.ok()) {
      encode_status = cond.ok() ? uncond.status() : cond.status();
      return;
    }
    const at::Device device = options_.device;
    state.text_cache_hits = cond->cache_hits + uncond->cache_hits;
    state.text_cache_misses = cond->cache_misses + uncond->cache_misses;
    state.cond_context = cond->context.to(device);
    state.uncond_context = uncond->context.to(device);
    std::vector<float> guidance;
    std::vector<at::Tensor> noise;
    const std::vector<int64_t> shape = impl_->decoder->LatentShape(
        config_.latent_channels(), spec.num_frames, spec.height, spec.width);
    for (size_t i = 0; i < spec.items.size(); ++i) {
      const GenerationItem& item = spec.items[i];
      // One generator per item, at full shape, so an item's noise does not
      // depend on its batch neighbours or on how ranks shard it later. The
      // same numbers as Python's torch.randn(shape,
      // generator=torch.Generator().manual_seed(seed)).
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(item.seed);
      noise.push_back(
          at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat)));
      guidance.push_back(item.guidance_scale);
      std::vector<std::string> unknown;
      AppendUnique(unknown, cond->unknown_words[i]);
      AppendUnique(unknown, uncond->unknown_words[i]);
      state.unknown_words.push_back(std::move(unknown));
    }
    FlowSchedule schedule =
        MakeFlowSchedule(config_.schedule, spec.num_steps, spec.flow_shift);
    state.sigmas = std::move(schedule.sigmas);
    state.timesteps = std::move(schedule.timesteps);
    state.sampler = sampler;
    // The initial latent is the noise itself (both schedules: σ_0 is 1 for
    // kDserve, and Wan does not scale by its 0.9998 either).
    state.latents = at::stack(noise).to(device);
    state.guidance = at::tensor(guidance, at::kFloat);
    state.step = 0;
    state.step_cache_config = spec.step_cache;
  });
  RETURN_IF_ERROR(torch_status);
  RETURN_IF_ERROR(encode_status);
  return state;
}

const DiT& Pipeline::dit() const { return impl_->dit.dit; }

const DiTShard& Pipeline::dit_shard() const { return impl_->dit; }

absl::Status Pipeline::Step(DenoiseState& state) const {
  return Step(state, nullptr);
}

absl::Status Pipeline::Step(DenoiseState& state,
                            const GuidedPredictor& predictor) const {
  if (!predictor && !options_.dit_share.whole()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Pipeline::Step: this rank holds only its share of the DiT (",
        DiTShareString(options_.dit_share),
        "); step it through a ParallelDiT made for that share"));
  }
  const int num_steps = static_cast<int>(state.sigmas.size()) - 1;
  if (state.step < 0 || state.step >= num_steps) {
    return absl::FailedPreconditionError(
        absl::StrCat("Pipeline::Step: step ", state.step,
                     " is outside [0, ", num_steps, ")"));
  }
  absl::Status predict_status;
  absl::Status torch_status = CatchTorch("Pipeline::Step", [&] {
    const double sigma = state.sigmas[state.step];
    const double sigma_next = state.sigmas[state.step + 1];
    const at::Tensor& x = state.latents;
    at::Tensor timesteps =
        at::full({x.size(0)}, state.timesteps[state.step], x.options());
    at::Tensor g = state.guidance.to(at::kFloat).contiguous();
    std::vector<float> guidance(g.data_ptr<float>(),
                                g.data_ptr<float>() + g.numel());
    const bool planes = config_.coordinate_planes;
    const DiT& dit = impl_->dit.dit;
    DenoiseFn model = [&](const at::Tensor& xin, const at::Tensor& t,
                          const at::Tensor& ctx) {
      const at::Tensor in = planes ? AppendCoordinatePlanes(xin) : xin;
      if (state.step_cache_config.enabled) {
        // GuidedPrediction calls the model once per step (both CFG
        // branches in one batch), so one decision covers both.
        return CachedDiTForward(dit, in, t, ctx, state.step_cache_config,
                                state.step, num_steps, state.step_cache);
      }
      return dit.Forward(in, t, ctx);
    };
    at::Tensor pred;
    if (predictor) {
      // The predictor decides collectively over its mesh and records the
      // outcome in state.step_cache (ParallelDiT).
      StepCacheStep cache{&state.step_cache_config, state.step, num_steps,
                          &state.step_cache};
      const bool cached = state.step_cache_config.enabled;
      const int recorded =
          state.step_cache.steps_computed + state.step_cache.steps_reused;
      absl::StatusOr<at::Tensor> p =
          predictor(x, timesteps, state.cond_context, state.uncond_context,
                    guidance, cached ? &cache : nullptr);
      if (!p.ok()) {
        predict_status = p.status();
        return;
      }
      if (cached && state.step_cache.steps_computed +
                            state.step_cache.steps_reused !=
                        recorded + 1) {
        predict_status = absl::FailedPreconditionError(absl::StrCat(
            "Pipeline::Step: step ", state.step,
            ": the predictor did not record one step-cache decision (",
            state.step_cache.steps_computed + state.step_cache.steps_reused -
                recorded,
            " recorded); it must apply the StepCacheStep it is given"));
        return;
      }
      pred = *std::move(p);
    } else {
      pred = GuidedPrediction(model, x, timesteps, state.cond_context,
                              state.uncond_context, guidance);
    }
    at::Tensor velocity, x0;
    if (config_.prediction_type == "x0") {
      x0 = pred;
      velocity = VelocityFromX0(x, x0, sigma);
    } else {
      velocity = pred;
      x0 = X0FromVelocity(x, velocity, sigma);
    }
    if (state.sampler == SamplerKind::kFlowUniPC) {
      state.latents = UniPCStep(state.sigmas, state.step, x, x0, state.unipc);
    } else {
      state.latents = EulerStep(x, velocity, sigma, sigma_next);
    }
    state.x0_estimate = x0;
    ++state.step;
  });
  RETURN_IF_ERROR(predict_status);
  return torch_status;
}

at::Tensor Pipeline::Decode(const DenoiseState& state) const {
  return impl_->decoder->Decode(state.latents, nullptr);
}

at::Tensor Pipeline::Decode(
    const DenoiseState& state,
    const std::function<void(int, int, int)>& progress) const {
  return impl_->decoder->Decode(state.latents, progress);
}

at::Tensor Pipeline::Preview(const DenoiseState& state, int item) const {
  const at::Tensor& src =
      state.x0_estimate.defined() ? state.x0_estimate : state.latents;
  return impl_->decoder->DecodeFirstFrame(src.select(0, item));
}

}  // namespace dserve::models
