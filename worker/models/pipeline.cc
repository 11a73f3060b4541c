#include "worker/models/pipeline.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "worker/models/dit.h"
#include "worker/models/safetensors.h"
#include "worker/models/sampler.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "worker/models/text_encoder.h"
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace dserve::models {
namespace {

constexpr int kMaxSteps = 1000;
constexpr int kMaxBatch = 64;
constexpr float kMaxGuidance = 100.0f;
constexpr float kMaxShift = 100.0f;

absl::Status OutOfRange(const std::string& field, const std::string& value,
                        const std::string& allowed) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " = ", value, " is out of range; allowed: ",
                   allowed));
}

absl::Status CheckSize(const std::string& field, int value, int step,
                       int max) {
  if (value < step || value > max || value % step != 0) {
    return OutOfRange(field, absl::StrCat(value),
                      absl::StrCat("a multiple of ", step, " in [", step,
                                   ", ", max, "]"));
  }
  return absl::OkStatus();
}

void AppendUnique(std::vector<std::string>& out,
                  const std::vector<std::string>& words) {
  for (const std::string& w : words) {
    if (std::find(out.begin(), out.end(), w) == out.end()) out.push_back(w);
  }
}

}  // namespace

class Pipeline::Impl {
 public:
  Impl(DiT dit, TextEncoder text) : dit(std::move(dit)), text(std::move(text)) {}
  DiT dit;
  TextEncoder text;
};

Pipeline::Pipeline(PipelineConfig config, WeightMap weights,
                   PipelineOptions options, std::unique_ptr<Impl> impl)
    : config_(std::move(config)),
      weights_(std::move(weights)),
      options_(options),
      impl_(std::move(impl)) {}

Pipeline::~Pipeline() = default;

absl::StatusOr<std::unique_ptr<Pipeline>> Pipeline::Create(
    PipelineConfig config, WeightMap weights, PipelineOptions options) {
  RETURN_IF_ERROR(ValidateConfig(config));
  DiTNumerics numerics;
  numerics.device = options.device;
  numerics.compute_dtype = options.compute_dtype;
  ASSIGN_OR_RETURN(DiT dit, DiT::Create(config.dit, weights, numerics));
  ASSIGN_OR_RETURN(TextEncoder text,
                          TextEncoder::Create(config, weights));
  auto impl = std::make_unique<Impl>(std::move(dit), std::move(text));
  return std::unique_ptr<Pipeline>(
      new Pipeline(std::move(config), std::move(weights), options,
                   std::move(impl)));
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
  const PipelineConfig& c = config_;
  RETURN_IF_ERROR(CheckSize("width", spec.width, c.size_step,
                                   c.max_width));
  RETURN_IF_ERROR(CheckSize("height", spec.height, c.size_step,
                                   c.max_height));
  if (spec.num_frames < 1 || spec.num_frames > c.max_frames) {
    return OutOfRange("num_frames", absl::StrCat(spec.num_frames),
                      absl::StrCat("[1, ", c.max_frames, "]"));
  }
  if (spec.num_steps < 1 || spec.num_steps > kMaxSteps) {
    return OutOfRange("num_inference_steps", absl::StrCat(spec.num_steps),
                      absl::StrCat("[1, ", kMaxSteps, "]"));
  }
  if (!(spec.flow_shift > 0.0f && spec.flow_shift <= kMaxShift)) {
    return OutOfRange("flow_shift", absl::StrCat(spec.flow_shift),
                      absl::StrCat("(0, ", kMaxShift, "]"));
  }
  const int n = static_cast<int>(spec.items.size());
  if (n < 1 || n > kMaxBatch) {
    return OutOfRange("items (batch size)", absl::StrCat(n),
                      absl::StrCat("[1, ", kMaxBatch, "]"));
  }
  const WordTokenizer& tok = impl_->text.tokenizer();
  const int max_words = impl_->text.max_len();
  for (const GenerationItem& item : spec.items) {
    if (!(item.guidance_scale >= 0.0f && item.guidance_scale <= kMaxGuidance)) {
      return OutOfRange("guidance_scale", absl::StrCat(item.guidance_scale),
                        absl::StrCat("[0, ", kMaxGuidance, "]"));
    }
    for (const auto& [field, text] :
         {std::pair<const char*, const std::string*>{"prompt", &item.prompt},
          {"negative_prompt", &item.negative_prompt}}) {
      const size_t words = tok.Encode(*text).ids.size();
      if (words > static_cast<size_t>(max_words)) {
        return OutOfRange(field, absl::StrCat("a text of ", words, " words"),
                          absl::StrCat("[0, ", max_words, "] words"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<DenoiseState> Pipeline::Prepare(
    const GenerationSpec& spec) const {
  RETURN_IF_ERROR(ValidateSpec(spec));
  if (spec.sampler != SamplerKind::kModelDefault &&
      spec.sampler != SamplerKind::kFlowEuler) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sampler = ", static_cast<int>(spec.sampler),
        " is not supported by model '", config_.name,
        "'; allowed: 0 (model default), 1 (SAMPLER_FLOW_EULER)"));
  }
  std::vector<std::string> prompts, negatives;
  for (const GenerationItem& item : spec.items) {
    prompts.push_back(item.prompt);
    negatives.push_back(item.negative_prompt);
  }
  DenoiseState state;
  absl::Status encode_status;
  absl::Status torch_status = CatchTorch("Pipeline::Prepare", [&] {
    absl::StatusOr<TextEncoding> cond = impl_->text.Encode(prompts, "prompt");
    absl::StatusOr<TextEncoding> uncond =
        impl_->text.Encode(negatives, "negative_prompt");
    if (!cond.ok() || !uncond.ok()) {
      encode_status = cond.ok() ? uncond.status() : cond.status();
      return;
    }
    const at::Device device = options_.device;
    state.cond_context = cond->embeddings.to(device);
    state.uncond_context = uncond->embeddings.to(device);
    std::vector<float> guidance;
    std::vector<at::Tensor> noise;
    const int c = config_.latent_channels();
    for (size_t i = 0; i < spec.items.size(); ++i) {
      const GenerationItem& item = spec.items[i];
      // One generator per item, at full shape, so an item's noise does not
      // depend on its batch neighbours or on how ranks shard it later.
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(item.seed);
      noise.push_back(at::randn({c, spec.num_frames, spec.height, spec.width},
                                gen, at::TensorOptions().dtype(at::kFloat)));
      guidance.push_back(item.guidance_scale);
      std::vector<std::string> unknown;
      AppendUnique(unknown, cond->unknown_words[i]);
      AppendUnique(unknown, uncond->unknown_words[i]);
      state.unknown_words.push_back(std::move(unknown));
    }
    state.sigmas = FlowMatchSigmas(spec.num_steps, spec.flow_shift);
    state.latents = (at::stack(noise) * state.sigmas[0]).to(device);
    state.guidance = at::tensor(guidance, at::kFloat);
    state.step = 0;
  });
  RETURN_IF_ERROR(torch_status);
  RETURN_IF_ERROR(encode_status);
  return state;
}

const DiT& Pipeline::dit() const { return impl_->dit; }

absl::Status Pipeline::Step(DenoiseState& state) const {
  return Step(state, nullptr);
}

absl::Status Pipeline::Step(DenoiseState& state,
                            const GuidedPredictor& predictor) const {
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
        at::full({x.size(0)}, SigmaToTimestep(sigma), x.options());
    at::Tensor g = state.guidance.to(at::kFloat).contiguous();
    std::vector<float> guidance(g.data_ptr<float>(),
                                g.data_ptr<float>() + g.numel());
    const bool planes = config_.coordinate_planes;
    const DiT& dit = impl_->dit;
    DenoiseFn model = [&](const at::Tensor& xin, const at::Tensor& t,
                          const at::Tensor& ctx) {
      return dit.Forward(planes ? AppendCoordinatePlanes(xin) : xin, t, ctx);
    };
    at::Tensor pred;
    if (predictor) {
      absl::StatusOr<at::Tensor> p = predictor(
          x, timesteps, state.cond_context, state.uncond_context, guidance);
      if (!p.ok()) {
        predict_status = p.status();
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
    state.latents = EulerStep(x, velocity, sigma, sigma_next);
    state.x0_estimate = x0;
    ++state.step;
  });
  RETURN_IF_ERROR(predict_status);
  return torch_status;
}

at::Tensor Pipeline::Decode(const DenoiseState& state) const {
  // Pixel decoder: latents are RGB in [-1, 1].
  return state.latents.permute({0, 2, 3, 4, 1})
      .add(1.0)
      .mul(0.5)
      .clamp(0.0, 1.0)
      .to(at::kCPU, at::kFloat)
      .contiguous();
}

at::Tensor Pipeline::Preview(const DenoiseState& state, int item) const {
  const at::Tensor& src =
      state.x0_estimate.defined() ? state.x0_estimate : state.latents;
  return src.select(0, item)
      .select(1, 0)
      .permute({1, 2, 0})
      .add(1.0)
      .mul(0.5)
      .clamp(0.0, 1.0)
      .to(at::kCPU, at::kFloat)
      .contiguous();
}

}  // namespace dserve::models
