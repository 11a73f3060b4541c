#ifndef DSERVE_SERVER_OPENAI_JSON_H_
#define DSERVE_SERVER_OPENAI_JSON_H_

// openai_json: the OpenAI-compatible HTTP API's wire shapes, as pure
// functions between OpenAI JSON and dserve.v1 messages (no I/O, no server
// state), so every mapping is unit-tested on its own:
//   * POST /v1/images/generations body -> GenerateRequest (+ n);
//   * POST /v1/videos fields (JSON or multipart form) -> GenerateRequest;
//   * ModelInfo list -> GET /v1/models; Job -> OpenAI "video" object;
//   * absl::Status -> HTTP status + OpenAI's error body
//     {"error": {"message", "type", "param", "code"}} through ONE table.
// dserve's own knobs ride as extra fields: seed, steps (num_inference_steps),
// guidance (guidance_scale), negative_prompt, and for videos num_frames/fps.
// Range checks stay with the RequestValidator (the gRPC path's); these
// functions only refuse what cannot be mapped (bad JSON, wrong types,
// unknown fields, size not "WxH", response_format "url").
// Stateless and thread-safe; nothing blocks.

#include <cstdint>
#include <map>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "proto/dserve/v1/diffusion_service.pb.h"

namespace dserve::server {

// Most images one POST /v1/images/generations may ask for (OpenAI's n).
inline constexpr int kMaxImagesPerRequest = 10;

struct ImageGenerationRequest {
  dserve::v1::GenerateRequest request;
  // Images wanted; image k uses seed + k when a seed is given.
  int n = 1;
};

// A field an error is about, carried to the error body's "param".
// Attached to an absl::Status as payload kParamPayloadUrl.
inline constexpr char kParamPayloadUrl[] = "dserve.openai/param";
absl::Status WithParam(absl::Status status, absl::string_view param);

// The body of POST /v1/images/generations. INVALID_ARGUMENT (param = the
// field) for malformed JSON, a wrong type, an unknown field, a size that is
// not "WxH"/"auto", n outside 1..kMaxImagesPerRequest, or response_format
// other than "b64_json" ("url" is refused: images are returned inline).
absl::StatusOr<ImageGenerationRequest> ParseImageGenerationRequest(
    absl::string_view body);

// The fields of POST /v1/videos (a JSON object; multipart form fields are
// passed as strings). `seconds` becomes num_frames = fps*seconds rounded
// down to the model's frame rule (frame_step*k + 1), fps = the request's or
// the model's default_fps; num_frames given explicitly wins. Output is MP4.
absl::StatusOr<dserve::v1::GenerateRequest> ParseVideoRequest(
    const nlohmann::json& fields,
    const std::vector<dserve::v1::ModelInfo>& models);

// "WxH" -> {W, H}; "auto" or "" -> {0, 0} (model default).
absl::StatusOr<std::pair<int, int>> ParseSize(absl::string_view size);

// GET /v1/models.
nlohmann::json ModelsJson(const std::vector<dserve::v1::ModelInfo>& models,
                          int64_t created_s);

// {"created": ..., "data": [{"b64_json": ..., "revised_prompt": ...}]} from
// the first media of each result.
nlohmann::json ImagesResponseJson(
    const std::vector<dserve::v1::Result>& results, int64_t created_s);

// An OpenAI "video" object for a job: status queued/in_progress/completed/
// failed (cancelled and deadline-exceeded jobs are "failed" with the reason
// in error.code), progress 0..100, created_at/completed_at in seconds.
nlohmann::json VideoJson(const dserve::v1::Job& job);

// The one status table: HTTP status, OpenAI error type.
struct HttpError {
  int http_status;
  const char* type;
};
HttpError HttpErrorFor(absl::StatusCode code);

// {"error": {"message", "type", "param", "code"}}; code = the gRPC code's
// name in lower case (e.g. "invalid_argument"), param from WithParam or null.
nlohmann::json ErrorJson(const absl::Status& status);

}  // namespace dserve::server

#endif  // DSERVE_SERVER_OPENAI_JSON_H_
