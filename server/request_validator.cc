#include "server/request_validator.h"

#include <cmath>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

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

absl::Status CheckSize(const std::string& field, int value, int step,
                       int max) {
  const std::string allowed = absl::StrCat("(allowed: ", step, "..", max,
                                           ", multiples of ", step, ")");
  if (value < step || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", value, " is out of range ", allowed));
  }
  if (value % step != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", value, " is not a multiple of ", step, " ", allowed));
  }
  return absl::OkStatus();
}

absl::Status CheckIntRange(const std::string& field, int64_t value, int64_t lo,
                           int64_t hi, const std::string& note = "") {
  if (value >= lo && value <= hi) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": ", value, " is out of range (allowed: ", lo, "..", hi, note,
      ")"));
}

absl::Status CheckFloatRange(const std::string& field, float value, float lo,
                             float hi) {
  if (std::isfinite(value) && value >= lo && value <= hi) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": ", value, " is out of range (allowed: ", lo, "..", hi, ")"));
}

}  // namespace

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

RequestValidator::RequestValidator(ValidationLimits limits,
                                   std::function<uint64_t()> seed_source)
    : limits_(limits), seed_source_(std::move(seed_source)) {}

absl::StatusOr<GenerateRequest> RequestValidator::Resolve(
    const GenerateRequest& request, const std::vector<ModelInfo>& models) const {
  const ModelInfo* model = FindModel(models, request.model());
  if (model == nullptr) {
    std::vector<std::string> names;
    for (const ModelInfo& m : models) names.push_back(m.name());
    return absl::NotFoundError(absl::StrCat(
        "model: \"", request.model(), "\" is not served here (known models: ",
        names.empty() ? "none yet" : absl::StrJoin(names, ", "), ")"));
  }
  GenerateRequest out = request;
  out.set_model(model->name());

  if (absl::Status s =
          CheckText("prompt", request.prompt(), 1, limits_.max_prompt_chars);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckText("negative_prompt", request.negative_prompt(),
                                 0, limits_.max_prompt_chars);
      !s.ok()) {
    return s;
  }

  const int step = model->size_step() > 0 ? model->size_step() : 8;
  out.set_width(request.width() == 0 ? model->default_width() : request.width());
  out.set_height(request.height() == 0 ? model->default_height()
                                       : request.height());
  if (absl::Status s = CheckSize("width", out.width(), step, model->max_width());
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckSize("height", out.height(), step, model->max_height());
      !s.ok()) {
    return s;
  }

  int max_frames = model->max_frames() > 0 ? model->max_frames() : 1;
  std::string frames_note = ", 0 = 1 frame";
  if (limits_.max_frames > 0 && limits_.max_frames < max_frames) {
    max_frames = limits_.max_frames;
    frames_note = ", 0 = 1 frame; the server's --max_frames";
  }
  out.set_num_frames(request.num_frames() == 0 ? 1 : request.num_frames());
  if (absl::Status s = CheckIntRange("num_frames", request.num_frames(), 0,
                                     max_frames, frames_note);
      !s.ok()) {
    return s;
  }
  const int64_t pixels = static_cast<int64_t>(out.width()) * out.height() *
                         out.num_frames();
  if (limits_.max_pixels > 0 && pixels > limits_.max_pixels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "width * height * num_frames: ", out.width(), " * ", out.height(),
        " * ", out.num_frames(), " = ", pixels,
        " pixels is over the server's --max_pixels=", limits_.max_pixels));
  }

  if (absl::Status s =
          CheckIntRange("num_inference_steps", request.num_inference_steps(), 0,
                        limits_.max_steps,
                        absl::StrCat(", 0 = model default ",
                                     model->default_steps()));
      !s.ok()) {
    return s;
  }
  out.set_num_inference_steps(request.num_inference_steps() == 0
                                  ? model->default_steps()
                                  : request.num_inference_steps());
  if (out.num_inference_steps() < 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model \"", model->name(), "\" reports default_steps ",
        model->default_steps(), "; set num_inference_steps (allowed: 1..",
        limits_.max_steps, ")"));
  }

  if (request.has_guidance_scale()) {
    if (absl::Status s =
            CheckFloatRange("guidance_scale", request.guidance_scale(), 0.0f,
                            ValidationLimits::kMaxGuidance);
        !s.ok()) {
      return s;
    }
  } else {
    out.set_guidance_scale(model->default_guidance_scale());
  }

  if (!request.has_seed()) out.set_seed(seed_source_());

  if (!dserve::v1::Sampler_IsValid(request.sampler())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sampler: ", request.sampler(),
        " is not a known sampler (allowed: 0 = SAMPLER_UNSPECIFIED, 1 = "
        "SAMPLER_FLOW_EULER)"));
  }
  if (request.sampler() == dserve::v1::SAMPLER_UNSPECIFIED) {
    out.set_sampler(dserve::v1::SAMPLER_FLOW_EULER);
  }

  if (request.has_flow_shift()) {
    if (absl::Status s = CheckFloatRange("flow_shift", request.flow_shift(),
                                         ValidationLimits::kMinFlowShift,
                                         ValidationLimits::kMaxFlowShift);
        !s.ok()) {
      return s;
    }
  } else {
    out.set_flow_shift(model->default_flow_shift());
  }

  if (!dserve::v1::OutputFormat_IsValid(request.output_format())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "output_format: ", request.output_format(),
        " is not a known format (allowed: 0 = OUTPUT_FORMAT_UNSPECIFIED, 1 = "
        "OUTPUT_FORMAT_PNG, 2 = OUTPUT_FORMAT_RAW_TENSOR)"));
  }
  if (request.output_format() == dserve::v1::OUTPUT_FORMAT_UNSPECIFIED) {
    out.set_output_format(dserve::v1::OUTPUT_FORMAT_PNG);
  }

  if (absl::Status s = CheckIntRange("priority", request.priority(),
                                     ValidationLimits::kMinPriority,
                                     ValidationLimits::kMaxPriority);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckIntRange(
          "preview_every_n_steps", request.preview_every_n_steps(), 0,
          out.num_inference_steps(), ", at most num_inference_steps; 0 = none");
      !s.ok()) {
    return s;
  }
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
