#include "server/request_validator.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/cost_estimate.h"
#include "common/status_macros.h"

namespace dserve::server {
namespace {

using ::dserve::v1::GenerateRequest;
using ::dserve::v1::ModelInfo;

// Characters as a reader counts them: UTF-8 code points (protobuf already
// rejects strings that are not valid UTF-8).
int64_t CountChars(const std::string& text) {
  int64_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

absl::Status CheckText(const std::string& field, const std::string& text,
                       int min_chars, int max_chars) {
  const int64_t chars = CountChars(text);
  if (chars < min_chars) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": must not be empty (allowed: ", min_chars, "..", max_chars,
        " characters)"));
  }
  if (chars > max_chars) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", chars, " characters is too long (allowed: ", min_chars,
        "..", max_chars, " characters)"));
  }
  return absl::OkStatus();
}

common::TokenGeometry GeometryOf(const dserve::v1::CostModel& c) {
  return {c.pixels_per_token(), c.frames_per_latent_frame(),
          c.frames_per_token()};
}

common::StepCost StepCostOf(const dserve::v1::CostModel& c) {
  return {c.seconds_per_token(), c.seconds_per_token_squared(),
          c.guided_evaluations()};
}

common::JobShape ShapeOf(const GenerateRequest& r) {
  return {r.width(), r.height(), r.num_frames(), r.num_inference_steps(),
          r.guidance_scale() != 1.0f};
}

absl::Status CheckIntRange(const std::string& field, int64_t value, int64_t lo,
                           int64_t hi, const std::string& note = "") {
  if (value >= lo && value <= hi) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": ", value, " is out of range (allowed: ", lo, "..", hi, note,
      ")"));
}

}  // namespace

common::GenerationLimits LimitsFromModelInfo(const ModelInfo& m) {
  common::GenerationLimits l;
  if (m.size_step() > 0) l.size_step = m.size_step();
  if (m.max_width() > 0) l.max_width = m.max_width();
  if (m.max_height() > 0) l.max_height = m.max_height();
  if (m.frame_step() > 0) l.frame_step = m.frame_step();
  if (m.max_frames() > 0) l.max_frames = m.max_frames();
  if (m.max_steps() > 0) l.max_steps = m.max_steps();
  if (m.max_guidance_scale() > 0) {
    l.min_guidance = m.min_guidance_scale();
    l.max_guidance = m.max_guidance_scale();
  }
  if (m.max_flow_shift() > 0) {
    l.min_shift = m.min_flow_shift();
    l.max_shift = m.max_flow_shift();
  }
  if (!m.prompt_tokenizer().empty()) {
    l.words_tokenizer = m.prompt_tokenizer() == "words";
  }
  if (m.max_prompt_tokens() > 0) l.max_prompt_tokens = m.max_prompt_tokens();
  if (m.samplers_size() > 0) {
    l.samplers.assign(m.samplers().begin(), m.samplers().end());
  }
  return l;
}

std::optional<double> EstimateJobSeconds(const GenerateRequest& effective,
                                         const ModelInfo& model) {
  if (!model.has_cost()) return std::nullopt;
  return common::EstimateJobSeconds(GeometryOf(model.cost()),
                                    StepCostOf(model.cost()),
                                    ShapeOf(effective));
}

const ModelInfo* FindModel(const std::vector<ModelInfo>& models,
                           const std::string& name) {
  if (name.empty()) {
    for (const ModelInfo& m : models) {
      if (m.is_default()) return &m;
    }
    return models.empty() ? nullptr : &models.front();
  }
  for (const ModelInfo& m : models) {
    if (m.name() == name) return &m;
  }
  return nullptr;
}

absl::Status UnknownModelError(const std::string& name,
                               const std::vector<ModelInfo>& models) {
  constexpr size_t kMaxListed = 16;
  std::vector<std::string> names;
  for (const ModelInfo& m : models) {
    if (names.size() == kMaxListed) {
      names.push_back(absl::StrCat("and ", models.size() - kMaxListed,
                                   " more (ListModels)"));
      break;
    }
    names.push_back(m.name());
  }
  return absl::NotFoundError(absl::StrCat(
      "model: \"", common::EchoValue(name),
      "\" is not served here (served models: ",
      names.empty() ? "none yet" : absl::StrJoin(names, ", "), ")"));
}

RequestValidator::RequestValidator(ValidationLimits limits,
                                   std::function<uint64_t()> seed_source)
    : limits_(limits), seed_source_(std::move(seed_source)) {}

absl::StatusOr<GenerateRequest> RequestValidator::Resolve(
    const GenerateRequest& request, const std::vector<ModelInfo>& models) const {
  const ModelInfo* model = FindModel(models, request.model());
  if (model == nullptr) return UnknownModelError(request.model(), models);
  const common::GenerationLimits limits = LimitsFromModelInfo(*model);
  GenerateRequest out = request;
  out.set_model(model->name());

  RETURN_IF_ERROR(
      CheckText("prompt", request.prompt(), 1, limits_.max_prompt_chars));
  RETURN_IF_ERROR(CheckText("negative_prompt", request.negative_prompt(), 0,
                            limits_.max_prompt_chars));

  // Defaults first: 0 / unset / UNSPECIFIED mean "the model's".
  if (request.width() == 0) out.set_width(model->default_width());
  if (request.height() == 0) out.set_height(model->default_height());
  if (request.num_frames() == 0) {
    out.set_num_frames(std::max(1, model->default_frames()));
  }
  if (request.num_inference_steps() == 0) {
    if (model->default_steps() < 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model \"", model->name(), "\" reports default_steps ",
          model->default_steps(), "; set num_inference_steps (allowed: 1..",
          limits.max_steps, ")"));
    }
    out.set_num_inference_steps(model->default_steps());
  }
  if (!request.has_guidance_scale()) {
    out.set_guidance_scale(model->default_guidance_scale());
  }
  if (!request.has_flow_shift()) {
    out.set_flow_shift(model->default_flow_shift());
  }
  if (!request.has_seed()) out.set_seed(seed_source_());
  if (!dserve::v1::Sampler_IsValid(request.sampler())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sampler: ", request.sampler(), " is not a known sampler (allowed: ",
        common::DescribeSamplers(limits.samplers), ")"));
  }
  if (request.sampler() == dserve::v1::SAMPLER_UNSPECIFIED) {
    out.set_sampler(model->default_sampler() != dserve::v1::SAMPLER_UNSPECIFIED
                        ? model->default_sampler()
                        : static_cast<dserve::v1::Sampler>(
                              limits.samplers.front()));
  }

  // The model's limits: the same check the replica runs.
  RETURN_IF_ERROR(common::CheckGenerationShape(
      limits, {out.width(), out.height(), out.num_frames(),
               out.num_inference_steps(), out.flow_shift(),
               static_cast<int>(out.sampler())}));
  RETURN_IF_ERROR(common::CheckGenerationItem(
      limits, out.guidance_scale(), out.prompt(), out.negative_prompt()));

  // The step cache: the request's own, else the server's default.
  if (!request.has_step_cache() && limits_.default_step_cache.threshold > 0) {
    dserve::v1::StepCache* cache = out.mutable_step_cache();
    cache->set_threshold(limits_.default_step_cache.threshold);
    cache->set_warmup_steps(limits_.default_step_cache.warmup_steps);
    cache->set_max_reused_in_a_row(
        limits_.default_step_cache.max_reused_in_a_row);
    cache->set_preset(limits_.default_step_cache_preset);
  }
  if (out.has_step_cache()) {
    const dserve::v1::StepCache& cache = out.step_cache();
    RETURN_IF_ERROR(common::CheckStepCache(
        {cache.threshold(), cache.warmup_steps(), cache.max_reused_in_a_row()},
        out.num_inference_steps()));
    if (cache.preset().size() >
        static_cast<size_t>(ValidationLimits::kMaxStepCachePresetChars)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "step_cache.preset: \"", common::EchoValue(cache.preset()),
          "\" is longer than ", ValidationLimits::kMaxStepCachePresetChars,
          " characters"));
    }
  }

  // The server's own caps.
  if (limits_.max_steps > 0) {
    RETURN_IF_ERROR(CheckIntRange("num_inference_steps",
                                  out.num_inference_steps(), 1,
                                  limits_.max_steps,
                                  "; the server's --max_steps"));
  }
  if (limits_.max_frames > 0) {
    RETURN_IF_ERROR(CheckIntRange("num_frames", out.num_frames(), 1,
                                  limits_.max_frames,
                                  "; the server's --max_frames"));
  }
  const int64_t pixels = static_cast<int64_t>(out.width()) * out.height() *
                         out.num_frames();
  if (limits_.max_pixels > 0 && pixels > limits_.max_pixels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "width * height * num_frames: ", out.width(), " * ", out.height(),
        " * ", out.num_frames(), " = ", pixels,
        " pixels is over the server's --max_pixels=", limits_.max_pixels));
  }
  // The cost budget, after every field it reads has been checked.
  if (model->has_cost()) {
    const double budget = limits_.max_job_seconds < 0
                              ? model->cost().default_max_job_seconds()
                              : limits_.max_job_seconds;
    RETURN_IF_ERROR(common::CheckJobCost(GeometryOf(model->cost()),
                                         StepCostOf(model->cost()),
                                         ShapeOf(out), budget));
  }

  if (!dserve::v1::OutputFormat_IsValid(request.output_format())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "output_format: ", request.output_format(),
        " is not a known format (allowed: 0 = OUTPUT_FORMAT_UNSPECIFIED, 1 = "
        "OUTPUT_FORMAT_PNG, 2 = OUTPUT_FORMAT_RAW_TENSOR, 3 = "
        "OUTPUT_FORMAT_MP4)"));
  }
  if (request.output_format() == dserve::v1::OUTPUT_FORMAT_UNSPECIFIED) {
    out.set_output_format(dserve::v1::OUTPUT_FORMAT_PNG);
  }
  if (request.fps() == 0) {
    out.set_fps(model->default_fps() > 0 ? model->default_fps() : 16);
  }
  RETURN_IF_ERROR(CheckIntRange("fps", out.fps(), ValidationLimits::kMinFps,
                                ValidationLimits::kMaxFps,
                                "; 0 = the model's default_fps"));

  RETURN_IF_ERROR(CheckIntRange("priority", request.priority(),
                                ValidationLimits::kMinPriority,
                                ValidationLimits::kMaxPriority));
  RETURN_IF_ERROR(CheckIntRange(
      "preview_every_n_steps", request.preview_every_n_steps(), 0,
      out.num_inference_steps(), ", at most num_inference_steps; 0 = none"));
  const int64_t id_chars = CountChars(request.client_request_id());
  if (id_chars > ValidationLimits::kMaxClientRequestIdChars) {
    return absl::InvalidArgumentError(absl::StrCat(
        "client_request_id: ", id_chars,
        " characters is too long (allowed: 0..",
        ValidationLimits::kMaxClientRequestIdChars, " characters)"));
  }
  return out;
}

}  // namespace dserve::server
