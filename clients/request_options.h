#ifndef DSERVE_CLIENTS_REQUEST_OPTIONS_H_
#define DSERVE_CLIENTS_REQUEST_OPTIONS_H_

// Turns the CLI's request flags into a GenerateRequest and job-state names
// into JobState values. The CLI deliberately does not re-check ranges: the
// server owns validation and answers INVALID_ARGUMENT naming the field, so a
// client built from an older release never rejects what a newer server
// accepts.
//
// Thread-safety: value types and pure functions. Nothing blocks.

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "proto/dserve/v1/diffusion_service.pb.h"

namespace dserve::clients {

// Request flags shared by `generate` and `submit`; 0 / empty / nullopt mean
// "let the server use the model default", as in the proto.
struct RequestOptions {
  std::string model;
  std::string prompt;
  std::string negative_prompt;
  int32_t width = 0;
  int32_t height = 0;
  int32_t num_frames = 0;
  int32_t num_inference_steps = 0;
  std::optional<float> guidance_scale;
  std::optional<uint64_t> seed;
  std::optional<float> flow_shift;
  int32_t priority = 0;
  std::string client_request_id;
  // OUTPUT_FORMAT_* value; UNSPECIFIED = PNG (or MP4 when --out ends in
  // .mp4, see OutputFormatFor).
  dserve::v1::OutputFormat output_format = dserve::v1::OUTPUT_FORMAT_UNSPECIFIED;
  // MP4 frames per second; 0 = the model's default.
  int32_t fps = 0;
  // --cache: the request's step cache; nullopt = the server's --step_cache.
  std::optional<dserve::v1::StepCache> step_cache;
};

// --cache=PRESET (common/step_cache_presets.h: off, slow, medium, fast):
// the StepCache it stands for (preset name set), or nullopt for "" (the
// server's default). INVALID_ARGUMENT naming --cache for another name.
absl::StatusOr<std::optional<dserve::v1::StepCache>> StepCacheForPreset(
    const std::string& preset);

// --format: "png", "mp4", "raw" (case-insensitive) or "" (then MP4 when
// `out_path` ends in .mp4, else the server's default, PNG).
// INVALID_ARGUMENT for other names, and for png or raw into an .mp4 name
// (refused before any request is sent: an .mp4 file only ever holds MP4).
absl::StatusOr<dserve::v1::OutputFormat> OutputFormatFor(
    const std::string& format, const std::string& out_path);

dserve::v1::GenerateRequest BuildGenerateRequest(const RequestOptions& options);

// Accepts the short lower-case names ("queued", "running", "succeeded",
// "failed", "cancelled", "deadline_exceeded") and the full enum names
// ("JOB_STATE_QUEUED"), case-insensitively. Anything else is
// INVALID_ARGUMENT listing the allowed names.
absl::StatusOr<dserve::v1::JobState> ParseJobState(const std::string& name);

// "queued", "running", ... (the short names ParseJobState accepts).
std::string JobStateName(dserve::v1::JobState state);

// "starting", "ready", "busy", "draining", "failed".
std::string ReplicaStateName(dserve::v1::ReplicaState state);

// "dp=2 cfg=1 ring=1 ulysses=1 pp=1 tp=1".
std::string FormatMesh(const dserve::v1::MeshLayout& mesh);

// One line of timings in milliseconds, e.g.
// "queue 1.0 ms, text 2.0 ms, denoise 300.0 ms (15.0 ms/step), decode 4.0 ms,
// total 310.0 ms".
std::string FormatTimings(const dserve::v1::Timings& timings);

}  // namespace dserve::clients

#endif  // DSERVE_CLIENTS_REQUEST_OPTIONS_H_
