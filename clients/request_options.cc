#include "clients/request_options.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "common/step_cache_presets.h"

namespace dserve::clients {
namespace {

using dserve::v1::JobState;

constexpr JobState kTerminalAndLiveStates[] = {
    dserve::v1::JOB_STATE_QUEUED,    dserve::v1::JOB_STATE_RUNNING,
    dserve::v1::JOB_STATE_SUCCEEDED, dserve::v1::JOB_STATE_FAILED,
    dserve::v1::JOB_STATE_CANCELLED, dserve::v1::JOB_STATE_DEADLINE_EXCEEDED,
};

}  // namespace

dserve::v1::GenerateRequest BuildGenerateRequest(
    const RequestOptions& options) {
  dserve::v1::GenerateRequest request;
  request.set_model(options.model);
  request.set_prompt(options.prompt);
  request.set_negative_prompt(options.negative_prompt);
  request.set_width(options.width);
  request.set_height(options.height);
  request.set_num_frames(options.num_frames);
  request.set_num_inference_steps(options.num_inference_steps);
  if (options.guidance_scale.has_value()) {
    request.set_guidance_scale(*options.guidance_scale);
  }
  if (options.seed.has_value()) request.set_seed(*options.seed);
  if (options.flow_shift.has_value()) {
    request.set_flow_shift(*options.flow_shift);
  }
  request.set_priority(options.priority);
  request.set_client_request_id(options.client_request_id);
  request.set_output_format(options.output_format);
  request.set_fps(options.fps);
  if (options.step_cache.has_value()) {
    *request.mutable_step_cache() = *options.step_cache;
  }
  return request;
}

absl::StatusOr<std::optional<dserve::v1::StepCache>> StepCacheForPreset(
    const std::string& preset) {
  if (preset.empty()) return std::nullopt;
  absl::StatusOr<common::StepCacheSettings> settings =
      common::StepCachePreset(preset, "--cache");
  if (!settings.ok()) return settings.status();
  dserve::v1::StepCache cache;
  cache.set_threshold(settings->threshold);
  cache.set_warmup_steps(settings->warmup_steps);
  cache.set_max_reused_in_a_row(settings->max_reused_in_a_row);
  cache.set_preset(preset);
  return cache;
}

absl::StatusOr<dserve::v1::OutputFormat> OutputFormatFor(
    const std::string& format, const std::string& out_path) {
  const std::string f = absl::AsciiStrToLower(format);
  const bool mp4_name =
      absl::EndsWith(absl::AsciiStrToLower(out_path), ".mp4");
  if (mp4_name && (f == "png" || f == "raw")) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--format %s cannot be written to --out %s: an .mp4 file holds only "
        "MP4 video; use --format mp4 or another file name",
        f, out_path));
  }
  if (f == "png") return dserve::v1::OUTPUT_FORMAT_PNG;
  if (f == "mp4") return dserve::v1::OUTPUT_FORMAT_MP4;
  if (f == "raw") return dserve::v1::OUTPUT_FORMAT_RAW_TENSOR;
  if (!f.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--format \"%s\" is not a format; use png, mp4 or raw", format));
  }
  if (mp4_name) return dserve::v1::OUTPUT_FORMAT_MP4;
  return dserve::v1::OUTPUT_FORMAT_UNSPECIFIED;
}

std::string JobStateName(JobState state) {
  const std::string full = dserve::v1::JobState_Name(state);
  absl::string_view name = full;
  absl::ConsumePrefix(&name, "JOB_STATE_");
  return absl::AsciiStrToLower(name);
}

absl::StatusOr<JobState> ParseJobState(const std::string& name) {
  const std::string upper = absl::AsciiStrToUpper(name);
  absl::string_view short_name = upper;
  absl::ConsumePrefix(&short_name, "JOB_STATE_");
  for (JobState state : kTerminalAndLiveStates) {
    if (JobStateName(state) == absl::AsciiStrToLower(short_name)) return state;
  }
  std::vector<std::string> allowed;
  for (JobState state : kTerminalAndLiveStates) {
    allowed.push_back(JobStateName(state));
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("--state \"%s\" is not a job state; use one of: %s",
                      name, absl::StrJoin(allowed, ", ")));
}

std::string ReplicaStateName(dserve::v1::ReplicaState state) {
  const std::string full = dserve::v1::ReplicaState_Name(state);
  absl::string_view name = full;
  absl::ConsumePrefix(&name, "REPLICA_STATE_");
  return absl::AsciiStrToLower(name);
}

std::string FormatMesh(const dserve::v1::MeshLayout& mesh) {
  return absl::StrFormat("dp=%d cfg=%d ring=%d ulysses=%d pp=%d tp=%d",
                         mesh.dp(), mesh.cfg(), mesh.ring(), mesh.ulysses(),
                         mesh.pp(), mesh.tp());
}

std::string FormatTimings(const dserve::v1::Timings& timings) {
  std::string out = absl::StrFormat(
      "queue %.1f ms, text %.1f ms, denoise %.1f ms (%.1f ms/step), "
      "decode %.1f ms, total %.1f ms",
      timings.queue_ms(), timings.text_encode_ms(), timings.denoise_ms(),
      timings.step_ms_mean(), timings.decode_ms(), timings.total_ms());
  if (timings.steps_computed() + timings.steps_reused() > 0) {
    absl::StrAppendFormat(&out, ", steps computed %d, reused %d",
                          timings.steps_computed(), timings.steps_reused());
  }
  return out;
}

}  // namespace dserve::clients
