#include "server/openai_json.h"

#include <cmath>
#include <limits>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "server/request_validator.h"

namespace dserve::server {
namespace {

using json = nlohmann::json;

absl::Status Invalid(absl::string_view param, std::string message) {
  return WithParam(absl::InvalidArgumentError(std::move(message)), param);
}

// Reads an integer field that may arrive as a JSON number or (multipart
// form) a decimal string.
absl::StatusOr<int64_t> IntField(const json& v, absl::string_view name) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::floor(d) == d && std::abs(d) < 9e15) return static_cast<int64_t>(d);
  }
  int64_t out = 0;
  if (v.is_string() && absl::SimpleAtoi(v.get<std::string>(), &out)) {
    return out;
  }
  return Invalid(name, absl::StrCat(name, ": ", v.dump(),
                                    " is not an integer"));
}

absl::StatusOr<uint64_t> SeedField(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  uint64_t out = 0;
  if (v.is_string() && absl::SimpleAtoi(v.get<std::string>(), &out)) {
    return out;
  }
  return Invalid("seed", absl::StrCat("seed: ", v.dump(),
                                      " is not an integer 0 to 2^64-1"));
}

absl::StatusOr<int32_t> Int32Field(const json& v, absl::string_view name) {
  ASSIGN_OR_RETURN(const int64_t x, IntField(v, name));
  if (x < std::numeric_limits<int32_t>::min() ||
      x > std::numeric_limits<int32_t>::max()) {
    return Invalid(name, absl::StrCat(name, ": ", x, " is out of range"));
  }
  return static_cast<int32_t>(x);
}

absl::StatusOr<float> FloatField(const json& v, absl::string_view name) {
  if (v.is_number()) return v.get<float>();
  float out = 0;
  if (v.is_string() && absl::SimpleAtof(v.get<std::string>(), &out)) {
    return out;
  }
  return Invalid(name, absl::StrCat(name, ": ", v.dump(), " is not a number"));
}

absl::StatusOr<std::string> StringField(const json& v, absl::string_view name) {
  if (v.is_string()) return v.get<std::string>();
  return Invalid(name, absl::StrCat(name, ": ", v.dump(), " is not a string"));
}

absl::StatusOr<json> ParseObject(absl::string_view body) {
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return absl::InvalidArgumentError(
        "the request body is not valid JSON (send Content-Type: "
        "application/json with a JSON object)");
  }
  if (!parsed.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request body must be a JSON object, not ", parsed.type_name()));
  }
  return parsed;
}

// Fields shared by images and videos: model, prompt and dserve's extras.
// Returns false when `key` is not one of them.
absl::StatusOr<bool> ApplyCommonField(const std::string& key, const json& v,
                                      dserve::v1::GenerateRequest& r) {
  if (key == "model") {
    ASSIGN_OR_RETURN(*r.mutable_model(), StringField(v, key));
  } else if (key == "prompt") {
    ASSIGN_OR_RETURN(*r.mutable_prompt(), StringField(v, key));
  } else if (key == "negative_prompt") {
    ASSIGN_OR_RETURN(*r.mutable_negative_prompt(), StringField(v, key));
  } else if (key == "seed") {
    ASSIGN_OR_RETURN(const uint64_t seed, SeedField(v));
    r.set_seed(seed);
  } else if (key == "steps" || key == "num_inference_steps") {
    ASSIGN_OR_RETURN(const int32_t steps, Int32Field(v, key));
    r.set_num_inference_steps(steps);
  } else if (key == "guidance" || key == "guidance_scale") {
    ASSIGN_OR_RETURN(const float g, FloatField(v, key));
    r.set_guidance_scale(g);
  } else if (key == "size") {
    ASSIGN_OR_RETURN(const std::string size, StringField(v, key));
    ASSIGN_OR_RETURN(const auto wh, ParseSize(size));
    r.set_width(wh.first);
    r.set_height(wh.second);
  } else {
    return false;
  }
  return true;
}

absl::Status UnknownField(const std::string& key,
                          const std::set<std::string>& allowed) {
  return Invalid(key, absl::StrCat("unknown field \"", key, "\"; allowed: ",
                                   absl::StrJoin(allowed, ", ")));
}

std::string LowerCodeName(absl::StatusCode code) {
  return absl::AsciiStrToLower(absl::StatusCodeToString(code));
}

}  // namespace

absl::Status WithParam(absl::Status status, absl::string_view param) {
  status.SetPayload(kParamPayloadUrl, absl::Cord(param));
  return status;
}

absl::StatusOr<std::pair<int, int>> ParseSize(absl::string_view size) {
  if (size.empty() || size == "auto") return std::make_pair(0, 0);
  const std::vector<absl::string_view> parts = absl::StrSplit(size, 'x');
  int w = 0, h = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &w) ||
      !absl::SimpleAtoi(parts[1], &h) || w <= 0 || h <= 0) {
    return Invalid("size", absl::StrCat("size: \"", size,
                                        "\" is not \"WIDTHxHEIGHT\" (e.g. "
                                        "\"256x128\") or \"auto\""));
  }
  return std::make_pair(w, h);
}

absl::StatusOr<ImageGenerationRequest> ParseImageGenerationRequest(
    absl::string_view body) {
  ASSIGN_OR_RETURN(const json obj, ParseObject(body));
  static const std::set<std::string> kAllowed = {
      "model", "prompt", "n", "size", "response_format", "output_format",
      "user", "negative_prompt", "seed", "steps", "num_inference_steps",
      "guidance", "guidance_scale"};
  ImageGenerationRequest out;
  out.request.set_output_format(dserve::v1::OUTPUT_FORMAT_PNG);
  for (const auto& [key, v] : obj.items()) {
    if (v.is_null()) continue;  // SDKs send null for "not set".
    ASSIGN_OR_RETURN(const bool common, ApplyCommonField(key, v, out.request));
    if (common) continue;
    if (key == "n") {
      ASSIGN_OR_RETURN(const int64_t n, IntField(v, key));
      if (n < 1 || n > kMaxImagesPerRequest) {
        return Invalid("n", absl::StrCat("n: ", n, " is outside 1 to ",
                                         kMaxImagesPerRequest));
      }
      out.n = static_cast<int>(n);
    } else if (key == "response_format") {
      ASSIGN_OR_RETURN(const std::string f, StringField(v, key));
      if (f != "b64_json") {
        return Invalid(key, absl::StrCat(
            "response_format: \"", f, "\" is not supported; dserve returns "
            "images inline, use \"b64_json\""));
      }
    } else if (key == "output_format") {
      ASSIGN_OR_RETURN(const std::string f, StringField(v, key));
      if (f != "png") {
        return Invalid(key, absl::StrCat("output_format: \"", f,
                                         "\" is not supported; use \"png\""));
      }
    } else if (key == "user") {
      RETURN_IF_ERROR(StringField(v, key).status());
    } else {
      return UnknownField(key, kAllowed);
    }
  }
  if (!obj.contains("prompt")) {
    return Invalid("prompt", "prompt: required");
  }
  return out;
}

absl::StatusOr<dserve::v1::GenerateRequest> ParseVideoRequest(
    const json& fields, const std::vector<dserve::v1::ModelInfo>& models) {
  if (!fields.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request body must be a JSON object, not ", fields.type_name()));
  }
  static const std::set<std::string> kAllowed = {
      "model", "prompt", "size", "seconds", "negative_prompt", "seed",
      "steps", "num_inference_steps", "guidance", "guidance_scale",
      "num_frames", "fps"};
  dserve::v1::GenerateRequest r;
  r.set_output_format(dserve::v1::OUTPUT_FORMAT_MP4);
  std::optional<float> seconds;
  for (const auto& [key, v] : fields.items()) {
    if (v.is_null()) continue;
    ASSIGN_OR_RETURN(const bool common, ApplyCommonField(key, v, r));
    if (common) continue;
    if (key == "seconds") {
      ASSIGN_OR_RETURN(const float s, FloatField(v, key));
      if (!(s > 0)) {
        return Invalid(key, absl::StrCat("seconds: ", v.dump(),
                                         " must be greater than 0"));
      }
      seconds = s;
    } else if (key == "num_frames") {
      ASSIGN_OR_RETURN(const int32_t f, Int32Field(v, key));
      r.set_num_frames(f);
    } else if (key == "fps") {
      ASSIGN_OR_RETURN(const int32_t f, Int32Field(v, key));
      r.set_fps(f);
    } else {
      return UnknownField(key, kAllowed);
    }
  }
  if (!fields.contains("prompt")) {
    return Invalid("prompt", "prompt: required");
  }
  if (seconds.has_value() && r.num_frames() == 0) {
    const dserve::v1::ModelInfo* model = FindModel(models, r.model());
    if (model == nullptr) {
      // The gRPC validator's message: the name echoed cut, the served list.
      return WithParam(UnknownModelError(r.model(), models), "model");
    }
    const int fps = r.fps() > 0 ? r.fps() : std::max(1, model->default_fps());
    const int step = std::max(1, model->frame_step());
    const int frames = static_cast<int>(std::floor(*seconds * fps));
    // frame_step*k + 1 frames, at least one.
    r.set_num_frames(std::max(0, (frames - 1) / step) * step + 1);
  }
  return r;
}

json ModelsJson(const std::vector<dserve::v1::ModelInfo>& models,
                int64_t created_s) {
  json data = json::array();
  for (const auto& m : models) {
    data.push_back({{"id", m.name()},
                    {"object", "model"},
                    {"created", created_s},
                    {"owned_by", "dserve"},
                    {"description", m.description()},
                    {"is_default", m.is_default()},
                    {"default_size", absl::StrCat(m.default_width(), "x",
                                                  m.default_height())},
                    {"size_step", m.size_step()},
                    {"max_width", m.max_width()},
                    {"max_height", m.max_height()},
                    {"default_steps", m.default_steps()},
                    {"max_steps", m.max_steps()},
                    {"max_frames", m.max_frames()},
                    {"frame_step", m.frame_step()},
                    {"default_fps", m.default_fps()}});
  }
  return {{"object", "list"}, {"data", std::move(data)}};
}

json ImagesResponseJson(const std::vector<dserve::v1::Result>& results,
                        int64_t created_s) {
  json data = json::array();
  for (const auto& result : results) {
    json item = {{"b64_json", result.media_size() > 0
                                  ? absl::Base64Escape(result.media(0).data())
                                  : std::string()},
                 {"revised_prompt", result.effective_request().prompt()},
                 {"seed", result.seed()}};
    data.push_back(std::move(item));
  }
  return {{"created", created_s}, {"data", std::move(data)}};
}

json VideoJson(const dserve::v1::Job& job) {
  // The values used once known (a snapshot with its result), else the
  // request as submitted (0 = the model's default, reported as null).
  const dserve::v1::GenerateRequest& req =
      job.has_result() ? job.result().effective_request() : job.request();
  std::string status = "queued";
  json error = nullptr;
  int progress = 0;
  switch (job.state()) {
    case dserve::v1::JOB_STATE_RUNNING:
      status = "in_progress";
      progress = job.total_steps() > 0 ? 100 * job.step() / job.total_steps()
                                       : 0;
      break;
    case dserve::v1::JOB_STATE_SUCCEEDED:
      status = "completed";
      progress = 100;
      break;
    case dserve::v1::JOB_STATE_FAILED:
    case dserve::v1::JOB_STATE_CANCELLED:
    case dserve::v1::JOB_STATE_DEADLINE_EXCEEDED:
      status = "failed";
      error = {{"code", LowerCodeName(static_cast<absl::StatusCode>(
                            job.status_code()))},
               {"message", job.status_message()}};
      break;
    default:
      break;
  }
  json seconds = nullptr;
  if (req.num_frames() > 0 && req.fps() > 0) {
    seconds = absl::StrCat(static_cast<double>(req.num_frames()) / req.fps());
  }
  auto secs_or_null = [](int64_t ms) -> json {
    if (ms <= 0) return nullptr;
    return ms / 1000;
  };
  return {{"id", job.job_id()},
          {"object", "video"},
          {"model", req.model()},
          {"status", status},
          {"progress", progress},
          {"created_at", job.create_time_ms() / 1000},
          {"completed_at", job.state() == dserve::v1::JOB_STATE_SUCCEEDED
                               ? secs_or_null(job.end_time_ms())
                               : json(nullptr)},
          {"expires_at", nullptr},
          {"prompt", job.request().prompt()},
          {"seconds", seconds},
          {"size", req.width() > 0 ? json(absl::StrCat(req.width(), "x",
                                                       req.height()))
                                   : json(nullptr)},
          {"remixed_from_video_id", nullptr},
          {"error", error}};
}

HttpError HttpErrorFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return {200, ""};
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return {400, "invalid_request_error"};
    case absl::StatusCode::kUnauthenticated:
      return {401, "authentication_error"};
    case absl::StatusCode::kPermissionDenied:
      return {403, "permission_error"};
    case absl::StatusCode::kNotFound:
      return {404, "not_found_error"};
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return {409, "conflict_error"};
    case absl::StatusCode::kResourceExhausted:
      return {429, "rate_limit_error"};
    case absl::StatusCode::kCancelled:
      return {499, "cancelled_error"};
    case absl::StatusCode::kUnimplemented:
      return {501, "not_implemented_error"};
    case absl::StatusCode::kUnavailable:
      return {503, "service_unavailable_error"};
    case absl::StatusCode::kDeadlineExceeded:
      return {504, "timeout_error"};
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kDataLoss:
    default:
      return {500, "server_error"};
  }
}

json ErrorJson(const absl::Status& status) {
  const auto param = status.GetPayload(kParamPayloadUrl);
  return {{"error",
           {{"message", std::string(status.message())},
            {"type", HttpErrorFor(status.code()).type},
            {"param", param.has_value() ? json(std::string(*param))
                                        : json(nullptr)},
            {"code", LowerCodeName(status.code())}}}};
}

}  // namespace dserve::server
