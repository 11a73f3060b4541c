#include "common/generation_limits.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dserve::common {
namespace {

absl::Status Refuse(absl::string_view field, const std::string& value,
                    absl::string_view problem, const std::string& allowed) {
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": ", value, " ", problem, " (allowed: ", allowed, ")"));
}

absl::Status CheckSize(absl::string_view field, int value, int step, int max) {
  const std::string allowed =
      absl::StrCat(step, "..", max, ", multiples of ", step);
  if (value < step || value > max) {
    return Refuse(field, absl::StrCat(value), "is out of range", allowed);
  }
  if (value % step != 0) {
    return Refuse(field, absl::StrCat(value),
                  absl::StrCat("is not a multiple of ", step), allowed);
  }
  return absl::OkStatus();
}

std::string FramesAllowed(int step, int max) {
  if (step <= 1) return absl::StrCat("1..", max);
  const int largest = (max - 1) / step * step + 1;
  return absl::StrCat(step, "k+1 in 1..", max, ": 1, ", 1 + step, ", ",
                      1 + 2 * step, ", ..., ", largest);
}

bool InRange(float value, float lo, float hi) {
  return std::isfinite(value) && value >= lo && value <= hi;
}

const char* SamplerName(int sampler) {
  switch (sampler) {
    case 1:
      return "SAMPLER_FLOW_EULER";
    case 2:
      return "SAMPLER_FLOW_UNIPC";
    default:
      return "unknown";
  }
}

}  // namespace

std::string DescribeSamplers(const std::vector<int>& samplers) {
  std::vector<std::string> parts;
  for (int s : samplers) parts.push_back(absl::StrCat(s, " = ", SamplerName(s)));
  return absl::StrCat("0 = model default, ", absl::StrJoin(parts, ", "));
}

absl::Status CheckGenerationShape(const GenerationLimits& limits,
                                  const GenerationShape& shape) {
  if (absl::Status s = CheckSize("width", shape.width, limits.size_step,
                                 limits.max_width);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckSize("height", shape.height, limits.size_step,
                                 limits.max_height);
      !s.ok()) {
    return s;
  }
  const int fstep = std::max(1, limits.frame_step);
  if (shape.num_frames < 1 || shape.num_frames > limits.max_frames) {
    return Refuse("num_frames", absl::StrCat(shape.num_frames),
                  "is out of range", FramesAllowed(fstep, limits.max_frames));
  }
  if ((shape.num_frames - 1) % fstep != 0) {
    return Refuse("num_frames", absl::StrCat(shape.num_frames),
                  absl::StrCat("is not of the form ", fstep, "k+1"),
                  FramesAllowed(fstep, limits.max_frames));
  }
  if (shape.num_steps < 1 || shape.num_steps > limits.max_steps) {
    return Refuse("num_inference_steps", absl::StrCat(shape.num_steps),
                  "is out of range", absl::StrCat("1..", limits.max_steps));
  }
  if (!InRange(shape.flow_shift, limits.min_shift, limits.max_shift)) {
    return Refuse("flow_shift", absl::StrCat(shape.flow_shift),
                  "is out of range",
                  absl::StrCat(limits.min_shift, "..", limits.max_shift));
  }
  if (shape.sampler != 0 &&
      std::find(limits.samplers.begin(), limits.samplers.end(),
                shape.sampler) == limits.samplers.end()) {
    return Refuse("sampler", absl::StrCat(shape.sampler),
                  "is not a sampler this model runs",
                  DescribeSamplers(limits.samplers));
  }
  return absl::OkStatus();
}

absl::Status CheckGenerationItem(const GenerationLimits& limits,
                                 float guidance_scale, absl::string_view prompt,
                                 absl::string_view negative_prompt) {
  if (!InRange(guidance_scale, limits.min_guidance, limits.max_guidance)) {
    return Refuse("guidance_scale", absl::StrCat(guidance_scale),
                  "is out of range",
                  absl::StrCat(limits.min_guidance, "..", limits.max_guidance,
                               "; 1 = no guidance"));
  }
  if (!limits.words_tokenizer) return absl::OkStatus();
  for (const auto& [field, text] :
       {std::pair<absl::string_view, absl::string_view>{"prompt", prompt},
        {"negative_prompt", negative_prompt}}) {
    const int words = CountPromptWords(text);
    if (words > limits.max_prompt_tokens) {
      return Refuse(field, absl::StrCat(words, " words"),
                    "is too long for the model's text encoder",
                    absl::StrCat("0..", limits.max_prompt_tokens, " words"));
    }
  }
  return absl::OkStatus();
}

int CountPromptWords(absl::string_view text) {
  auto is_word = [](unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch >= 0x80;
  };
  int words = 0;
  bool in_word = false;
  for (unsigned char ch : text) {
    const bool w = is_word(ch);
    if (w && !in_word) ++words;
    in_word = w;
  }
  return words;
}

std::string EchoValue(absl::string_view value) {
  size_t chars = 0;
  size_t cut = value.size();
  for (size_t i = 0; i < value.size(); ++i) {
    const unsigned char ch = static_cast<unsigned char>(value[i]);
    if ((ch & 0xC0) == 0x80) continue;  // continuation byte
    if (chars == static_cast<size_t>(kMaxEchoChars)) {
      cut = i;
      break;
    }
    ++chars;
  }
  if (cut == value.size()) return std::string(value);
  return absl::StrCat(value.substr(0, cut), "... (", value.size(), " bytes)");
}

absl::Status CheckStepCache(const StepCacheSettings& cache, int num_steps) {
  if (!InRange(cache.threshold, 0.0f, kMaxStepCacheThreshold)) {
    return Refuse("step_cache.threshold", absl::StrCat(cache.threshold),
                  "is out of range",
                  absl::StrCat("0..", kMaxStepCacheThreshold, ", 0 = off"));
  }
  if (cache.warmup_steps < 0 || cache.warmup_steps > num_steps) {
    return Refuse("step_cache.warmup_steps", absl::StrCat(cache.warmup_steps),
                  "is out of range",
                  absl::StrCat("0..", num_steps, " (num_inference_steps)"));
  }
  if (cache.max_reused_in_a_row < 0 ||
      cache.max_reused_in_a_row > kMaxStepCacheReusedInARow) {
    return Refuse("step_cache.max_reused_in_a_row",
                  absl::StrCat(cache.max_reused_in_a_row), "is out of range",
                  absl::StrCat("0..", kMaxStepCacheReusedInARow));
  }
  return absl::OkStatus();
}

}  // namespace dserve::common
