#include "worker/models/model_config.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include <nlohmann/json.hpp>

namespace dserve::models {
namespace {

using nlohmann::json;

absl::Status Invalid(const std::string& field, const std::string& value,
                     const std::string& allowed) {
  return absl::InvalidArgumentError(absl::StrCat(
      "model config: ", field, " = ", value, " is invalid; allowed: ",
      allowed));
}

json DiTToJson(const DiTConfig& c) {
  return json{{"in_channels", c.in_channels},
              {"out_channels", c.out_channels},
              {"patch", c.patch},
              {"dim", c.dim},
              {"ffn_dim", c.ffn_dim},
              {"num_heads", c.num_heads},
              {"num_layers", c.num_layers},
              {"freq_dim", c.freq_dim},
              {"text_dim", c.text_dim},
              {"text_len", c.text_len},
              {"eps", c.eps}};
}

json TextToJson(const TextEncoderConfig& c) {
  return json{{"vocab_size", c.vocab_size}, {"dim", c.dim},
              {"num_heads", c.num_heads},   {"num_layers", c.num_layers},
              {"ffn_dim", c.ffn_dim},       {"max_len", c.max_len},
              {"eps", c.eps}};
}

// Reads `key` of `obj` into `out`; a missing key keeps the default, a key of
// the wrong type is an error that names it.
template <typename T>
absl::Status Get(const json& obj, const std::string& path,
                 const std::string& key, T& out) {
  auto it = obj.find(key);
  if (it == obj.end()) return absl::OkStatus();
  try {
    out = it->get<T>();
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model config: field ", path, key, " has the wrong type: ", e.what()));
  }
  return absl::OkStatus();
}

absl::Status DiTFromJson(const json& j, DiTConfig& c) {
  if (!j.is_object()) return Invalid("dit", j.dump(), "a JSON object");
  const std::string p = "dit.";
  RETURN_IF_ERROR(Get(j, p, "in_channels", c.in_channels));
  RETURN_IF_ERROR(Get(j, p, "out_channels", c.out_channels));
  RETURN_IF_ERROR(Get(j, p, "patch", c.patch));
  RETURN_IF_ERROR(Get(j, p, "dim", c.dim));
  RETURN_IF_ERROR(Get(j, p, "ffn_dim", c.ffn_dim));
  RETURN_IF_ERROR(Get(j, p, "num_heads", c.num_heads));
  RETURN_IF_ERROR(Get(j, p, "num_layers", c.num_layers));
  RETURN_IF_ERROR(Get(j, p, "freq_dim", c.freq_dim));
  RETURN_IF_ERROR(Get(j, p, "text_dim", c.text_dim));
  RETURN_IF_ERROR(Get(j, p, "text_len", c.text_len));
  RETURN_IF_ERROR(Get(j, p, "eps", c.eps));
  return absl::OkStatus();
}

absl::Status TextFromJson(const json& j, TextEncoderConfig& c) {
  if (!j.is_object()) return Invalid("text_encoder", j.dump(), "a JSON object");
  const std::string p = "text_encoder.";
  RETURN_IF_ERROR(Get(j, p, "vocab_size", c.vocab_size));
  RETURN_IF_ERROR(Get(j, p, "dim", c.dim));
  RETURN_IF_ERROR(Get(j, p, "num_heads", c.num_heads));
  RETURN_IF_ERROR(Get(j, p, "num_layers", c.num_layers));
  RETURN_IF_ERROR(Get(j, p, "ffn_dim", c.ffn_dim));
  RETURN_IF_ERROR(Get(j, p, "max_len", c.max_len));
  RETURN_IF_ERROR(Get(j, p, "eps", c.eps));
  return absl::OkStatus();
}

absl::Status Positive(const std::string& field, double value) {
  if (value > 0) return absl::OkStatus();
  return Invalid(field, absl::StrCat(value), "> 0");
}

// The size, frame and sampler-default checks shared by every model kind.
absl::Status ValidateLimits(const PipelineConfig& c);

}  // namespace

common::GenerationLimits RequestLimits(const PipelineConfig& c) {
  common::GenerationLimits l;
  l.size_step = c.size_step;
  l.max_width = c.max_width;
  l.max_height = c.max_height;
  l.frame_step = c.decoder == "wan_vae" ? 4 : 1;
  l.max_frames = c.max_frames;
  l.max_steps = c.max_steps;
  l.min_guidance = c.min_guidance;
  l.max_guidance = c.max_guidance;
  l.min_shift = c.min_shift;
  l.max_shift = c.max_shift;
  l.words_tokenizer = c.text_encoder_type == "word";
  l.max_prompt_tokens =
      l.words_tokenizer ? c.text_encoder.max_len : c.dit.text_len;
  if (c.schedule == ScheduleKind::kWan) {
    const int first = static_cast<int>(c.default_sampler);
    l.samplers = {first, first == 1 ? 2 : 1};
  } else {
    l.samplers = {static_cast<int>(SamplerKind::kFlowEuler)};
  }
  return l;
}

PipelineConfig DefaultModelConfig() {
  PipelineConfig c;
  c.name = "dserve-tiny-shapes";
  // Must equal worker/models/default_model/weights/config.json (the shipped
  // weights were trained with exactly this; default_model_test checks it).
  c.description =
      "Small pixel-space Wan2.1-style DiT (dim 128, 4 layers, 4 heads, patch "
      "4) trained by dserve on procedural coloured circles, squares and "
      "triangles at 32x32.";
  c.vocabulary = {"<pad>",  "<unk>",  "red",    "green",  "blue",  "yellow",
                  "orange", "purple", "white",  "black",  "circle", "square",
                  "triangle", "a",    "an",     "the",    "on",    "of",
                  "in",     "at",     "top",    "bottom", "left",  "right",
                  "center", "centre", "background", "shape"};
  c.text_encoder.vocab_size = static_cast<int>(c.vocabulary.size());
  c.text_encoder.dim = 128;
  c.text_encoder.num_heads = 4;
  c.text_encoder.num_layers = 2;
  c.text_encoder.ffn_dim = 512;
  c.text_encoder.max_len = 16;
  c.coordinate_planes = true;
  c.dit.out_channels = 3;
  c.dit.in_channels = 3 + 2;  // RGB + (y, x) coordinate planes
  c.dit.patch = {1, 4, 4};
  c.dit.dim = 128;
  c.dit.ffn_dim = 512;
  c.dit.num_heads = 4;
  c.dit.num_layers = 4;
  c.dit.freq_dim = 256;
  c.dit.text_dim = c.text_encoder.dim;
  c.dit.text_len = c.text_encoder.max_len;
  c.dit.eps = 1e-6;
  // x0 (not velocity): what the default model was trained to predict.
  c.prediction_type = "x0";
  c.decoder = "pixel";
  c.default_width = 32;
  c.default_height = 32;
  c.max_width = 256;
  c.max_height = 256;
  c.size_step = 4;
  c.max_frames = 17;
  c.default_steps = 20;
  c.default_guidance = 4.0f;
  // Matches the trainer's sigma_shift, so sampling spends its steps at the
  // noise levels the model saw most.
  c.default_shift = 3.0f;
  return c;
}

// Exactly Wan's wan/configs/shared_config.py sample_neg_prompt (137
// characters, 403 UTF-8 bytes; its commas are U+FF0C).
const char kWanDefaultNegativePrompt[] =
    "色调艳丽，过曝，静态，细节模糊不清，字幕"
    "，风格，作品，画作，画面，静止，整体发灰"
    "，最差质量，低质量，JPEG压缩残留，丑"
    "陋的，残缺的，多余的手指，画得不好的手部"
    "，画得不好的脸部，畸形的，毁容的，形态畸"
    "形的肢体，手指融合，静止不动的画面，杂乱"
    "的背景，三条腿，背景人很多，倒着走";

PipelineConfig WanPipelineConfig(const DiTConfig& dit) {
  PipelineConfig c;
  c.name = "wan2.1-t2v";
  c.description = "Wan2.1 text-to-video";
  c.dit = dit;
  c.prediction_type = "flow_velocity";
  c.decoder = "wan_vae";
  c.text_encoder_type = "umt5";
  c.schedule = ScheduleKind::kWan;
  c.default_sampler = SamplerKind::kFlowUniPC;
  c.default_negative_prompt = kWanDefaultNegativePrompt;
  c.coordinate_planes = false;
  c.default_width = 832;
  c.default_height = 480;
  c.max_width = 1280;
  c.max_height = 1280;
  c.size_step = 8 * dit.patch[1];
  c.max_frames = 81;
  c.default_frames = 81;
  c.default_steps = 50;
  c.default_guidance = 5.0f;
  c.default_shift = 5.0f;
  return c;
}

absl::Status ValidateConfig(const PipelineConfig& c) {
  const DiTConfig& d = c.dit;
  RETURN_IF_ERROR(Positive("dit.dim", d.dim));
  RETURN_IF_ERROR(Positive("dit.ffn_dim", d.ffn_dim));
  RETURN_IF_ERROR(Positive("dit.num_heads", d.num_heads));
  RETURN_IF_ERROR(Positive("dit.num_layers", d.num_layers));
  RETURN_IF_ERROR(Positive("dit.out_channels", d.out_channels));
  RETURN_IF_ERROR(Positive("dit.text_dim", d.text_dim));
  RETURN_IF_ERROR(Positive("dit.text_len", d.text_len));
  RETURN_IF_ERROR(Positive("dit.eps", d.eps));
  for (int i = 0; i < 3; ++i) {
    RETURN_IF_ERROR(
        Positive(absl::StrCat("dit.patch[", i, "]"), d.patch[i]));
  }
  if (d.dim % d.num_heads != 0) {
    return Invalid("dit.dim", absl::StrCat(d.dim),
                   absl::StrCat("a multiple of dit.num_heads (", d.num_heads,
                                ")"));
  }
  // 3-D RoPE needs an even head_dim with at least one pair per axis.
  const int hd = d.head_dim();
  if (hd % 2 != 0 || hd / 6 < 1) {
    return Invalid("dit.dim / dit.num_heads (head_dim)", absl::StrCat(hd),
                   "an even number >= 6");
  }
  if (d.freq_dim <= 0 || d.freq_dim % 2 != 0) {
    return Invalid("dit.freq_dim", absl::StrCat(d.freq_dim),
                   "a positive even number");
  }
  const int extra = c.coordinate_planes ? 2 : 0;
  if (d.in_channels != d.out_channels + extra) {
    return Invalid("dit.in_channels", absl::StrCat(d.in_channels),
                   absl::StrCat("dit.out_channels + ", extra,
                                " coordinate planes = ",
                                d.out_channels + extra));
  }
  if (c.prediction_type != "flow_velocity" && c.prediction_type != "x0") {
    return Invalid("prediction_type", "\"" + c.prediction_type + "\"",
                   "\"flow_velocity\" or \"x0\"");
  }
  const bool wan_vae = c.decoder == "wan_vae";
  if (c.decoder != "pixel" && !wan_vae) {
    return Invalid("decoder", "\"" + c.decoder + "\"",
                   "\"pixel\" or \"wan_vae\"");
  }
  if (!wan_vae && d.out_channels != 3) {
    return Invalid("dit.out_channels", absl::StrCat(d.out_channels),
                   "3 (RGB) for decoder \"pixel\"");
  }
  if (d.patch[1] != d.patch[2]) {
    return Invalid("dit.patch", absl::StrJoin(d.patch, ","),
                   "equal height and width patch sizes");
  }
  // The DiT's patch applies to latents: 8x smaller than pixels for the VAE.
  const int pixels_per_patch = d.patch[1] * (wan_vae ? 8 : 1);
  if (c.size_step <= 0 || c.size_step % pixels_per_patch != 0) {
    return Invalid("size_step", absl::StrCat(c.size_step),
                   absl::StrCat("a positive multiple of ", pixels_per_patch,
                                " (the patch height in pixels)"));
  }
  if (d.patch[0] != 1) {
    return Invalid("dit.patch[0]", absl::StrCat(d.patch[0]),
                   "1 (every latent frame is its own token row)");
  }
  if (c.schedule == ScheduleKind::kDserve &&
      c.default_sampler == SamplerKind::kFlowUniPC) {
    return Invalid("default_sampler", "\"unipc\"",
                   "\"euler\" with schedule \"dserve\" (sigma starts at 1)");
  }
  if (c.default_sampler != SamplerKind::kFlowEuler &&
      c.default_sampler != SamplerKind::kFlowUniPC) {
    return Invalid("default_sampler", SamplerKindName(c.default_sampler),
                   "\"euler\" or \"unipc\"");
  }
  if (c.default_frames < 1 || c.default_frames > c.max_frames ||
      (wan_vae && (c.default_frames - 1) % 4 != 0)) {
    return Invalid("default_frames", absl::StrCat(c.default_frames),
                   absl::StrCat("[1, max_frames = ", c.max_frames, "]",
                                wan_vae ? ", 4k+1 for decoder \"wan_vae\"" : ""));
  }
  if (c.text_encoder_type == "umt5") {
    // umT5 shapes come from its weights; Pipeline::Create checks them
    // against dit.text_dim.
    return ValidateLimits(c);
  }
  if (c.text_encoder_type != "word") {
    return Invalid("text_encoder_type", "\"" + c.text_encoder_type + "\"",
                   "\"word\" or \"umt5\"");
  }
  const TextEncoderConfig& t = c.text_encoder;
  RETURN_IF_ERROR(Positive("text_encoder.dim", t.dim));
  RETURN_IF_ERROR(Positive("text_encoder.num_heads", t.num_heads));
  RETURN_IF_ERROR(Positive("text_encoder.num_layers", t.num_layers));
  RETURN_IF_ERROR(Positive("text_encoder.ffn_dim", t.ffn_dim));
  RETURN_IF_ERROR(Positive("text_encoder.max_len", t.max_len));
  RETURN_IF_ERROR(Positive("text_encoder.eps", t.eps));
  if (t.dim % t.num_heads != 0) {
    return Invalid("text_encoder.dim", absl::StrCat(t.dim),
                   absl::StrCat("a multiple of text_encoder.num_heads (",
                                t.num_heads, ")"));
  }
  if (t.vocab_size != static_cast<int>(c.vocabulary.size())) {
    return Invalid("text_encoder.vocab_size", absl::StrCat(t.vocab_size),
                   absl::StrCat("the vocabulary size (", c.vocabulary.size(),
                                ")"));
  }
  if (c.vocabulary.size() < 2 || c.vocabulary[0] != "<pad>" ||
      c.vocabulary[1] != "<unk>") {
    return Invalid("vocabulary", absl::StrCat(c.vocabulary.size(), " words"),
                   "a list starting with \"<pad>\", \"<unk>\"");
  }
  if (d.text_dim != t.dim) {
    return Invalid("dit.text_dim", absl::StrCat(d.text_dim),
                   absl::StrCat("text_encoder.dim (", t.dim, ")"));
  }
  if (d.text_len != t.max_len) {
    return Invalid("dit.text_len", absl::StrCat(d.text_len),
                   absl::StrCat("text_encoder.max_len (", t.max_len, ")"));
  }
  return ValidateLimits(c);
}

namespace {

absl::Status ValidateLimits(const PipelineConfig& c) {
  const DiTConfig& d = c.dit;
  if (c.max_width < c.size_step || c.max_width % c.size_step != 0) {
    return Invalid("max_width", absl::StrCat(c.max_width),
                   absl::StrCat("a positive multiple of size_step (",
                                c.size_step, ")"));
  }
  if (c.max_height < c.size_step || c.max_height % c.size_step != 0) {
    return Invalid("max_height", absl::StrCat(c.max_height),
                   absl::StrCat("a positive multiple of size_step (",
                                c.size_step, ")"));
  }
  if (c.default_width < c.size_step || c.default_width > c.max_width ||
      c.default_width % c.size_step != 0) {
    return Invalid("default_width", absl::StrCat(c.default_width),
                   absl::StrCat("a multiple of ", c.size_step, " in [",
                                c.size_step, ", ", c.max_width, "]"));
  }
  if (c.default_height < c.size_step || c.default_height > c.max_height ||
      c.default_height % c.size_step != 0) {
    return Invalid("default_height", absl::StrCat(c.default_height),
                   absl::StrCat("a multiple of ", c.size_step, " in [",
                                c.size_step, ", ", c.max_height, "]"));
  }
  // RoPE tables cover 1024 positions per axis.
  if (c.max_width / d.patch[2] > 1024 || c.max_height / d.patch[1] > 1024 ||
      c.max_frames / d.patch[0] > 1024) {
    return Invalid("max_width/max_height/max_frames",
                   absl::StrCat(c.max_width, "/", c.max_height, "/",
                                c.max_frames),
                   "at most 1024 patches per axis (RoPE table length)");
  }
  RETURN_IF_ERROR(Positive("max_frames", c.max_frames));
  RETURN_IF_ERROR(Positive("default_steps", c.default_steps));
  RETURN_IF_ERROR(Positive("default_shift", c.default_shift));
  if (c.default_guidance < 0) {
    return Invalid("default_guidance", absl::StrCat(c.default_guidance),
                   ">= 0");
  }
  RETURN_IF_ERROR(Positive("default_fps", c.default_fps));
  if (c.max_steps < c.default_steps) {
    return Invalid("max_steps", absl::StrCat(c.max_steps),
                   absl::StrCat(">= default_steps (", c.default_steps, ")"));
  }
  if (!(c.min_guidance >= 0 && c.min_guidance <= c.default_guidance &&
        c.default_guidance <= c.max_guidance)) {
    return Invalid("min_guidance/default_guidance/max_guidance",
                   absl::StrCat(c.min_guidance, "/", c.default_guidance, "/",
                                c.max_guidance),
                   "0 <= min <= default <= max");
  }
  if (!(c.min_shift > 0 && c.min_shift <= c.default_shift &&
        c.default_shift <= c.max_shift)) {
    return Invalid("min_shift/default_shift/max_shift",
                   absl::StrCat(c.min_shift, "/", c.default_shift, "/",
                                c.max_shift),
                   "0 < min <= default <= max");
  }
  return absl::OkStatus();
}

}  // namespace

std::string ConfigToJson(const PipelineConfig& c) {
  json j{{"name", c.name},
         {"description", c.description},
         {"dit", DiTToJson(c.dit)},
         {"text_encoder", TextToJson(c.text_encoder)},
         {"vocabulary", c.vocabulary},
         {"prediction_type", c.prediction_type},
         {"decoder", c.decoder},
         {"default_width", c.default_width},
         {"default_height", c.default_height},
         {"max_width", c.max_width},
         {"max_height", c.max_height},
         {"size_step", c.size_step},
         {"max_frames", c.max_frames},
         {"default_steps", c.default_steps},
         {"default_guidance", c.default_guidance},
         {"default_shift", c.default_shift},
         {"max_steps", c.max_steps},
         {"min_guidance", c.min_guidance},
         {"max_guidance", c.max_guidance},
         {"min_shift", c.min_shift},
         {"max_shift", c.max_shift},
         {"default_fps", c.default_fps},
         {"coordinate_planes", c.coordinate_planes},
         {"text_encoder_type", c.text_encoder_type},
         {"schedule", ScheduleKindName(c.schedule)},
         {"default_sampler", SamplerKindName(c.default_sampler)},
         {"default_negative_prompt", c.default_negative_prompt},
         {"default_frames", c.default_frames}};
  return j.dump(2) + "\n";
}

absl::StatusOr<PipelineConfig> ConfigFromJson(const std::string& text) {
  json j = json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError("model config: not valid JSON");
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        "model config: top level must be a JSON object");
  }
  // Start from the struct defaults (Wan2.1-1.3B DiT shapes), not from the
  // built-in small model, so a checkpoint that omits a field never silently
  // inherits the tiny model's shapes; the four sections below are required
  // and ValidateConfig checks the result is consistent.
  PipelineConfig c;
  for (const char* key : {"name", "dit", "text_encoder", "vocabulary"}) {
    if (!j.contains(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("model config: missing required field \"", key, "\""));
    }
  }
  const std::string p;
  RETURN_IF_ERROR(Get(j, p, "name", c.name));
  RETURN_IF_ERROR(Get(j, p, "description", c.description));
  RETURN_IF_ERROR(DiTFromJson(j["dit"], c.dit));
  RETURN_IF_ERROR(TextFromJson(j["text_encoder"], c.text_encoder));
  RETURN_IF_ERROR(Get(j, p, "vocabulary", c.vocabulary));
  RETURN_IF_ERROR(Get(j, p, "prediction_type", c.prediction_type));
  RETURN_IF_ERROR(Get(j, p, "decoder", c.decoder));
  RETURN_IF_ERROR(Get(j, p, "default_width", c.default_width));
  RETURN_IF_ERROR(Get(j, p, "default_height", c.default_height));
  RETURN_IF_ERROR(Get(j, p, "max_width", c.max_width));
  RETURN_IF_ERROR(Get(j, p, "max_height", c.max_height));
  RETURN_IF_ERROR(Get(j, p, "size_step", c.size_step));
  RETURN_IF_ERROR(Get(j, p, "max_frames", c.max_frames));
  RETURN_IF_ERROR(Get(j, p, "default_steps", c.default_steps));
  RETURN_IF_ERROR(Get(j, p, "default_guidance", c.default_guidance));
  RETURN_IF_ERROR(Get(j, p, "default_shift", c.default_shift));
  RETURN_IF_ERROR(Get(j, p, "max_steps", c.max_steps));
  RETURN_IF_ERROR(Get(j, p, "min_guidance", c.min_guidance));
  RETURN_IF_ERROR(Get(j, p, "max_guidance", c.max_guidance));
  RETURN_IF_ERROR(Get(j, p, "min_shift", c.min_shift));
  RETURN_IF_ERROR(Get(j, p, "max_shift", c.max_shift));
  RETURN_IF_ERROR(Get(j, p, "default_fps", c.default_fps));
  RETURN_IF_ERROR(Get(j, p, "coordinate_planes", c.coordinate_planes));
  RETURN_IF_ERROR(Get(j, p, "text_encoder_type", c.text_encoder_type));
  std::string schedule = ScheduleKindName(c.schedule);
  RETURN_IF_ERROR(Get(j, p, "schedule", schedule));
  ASSIGN_OR_RETURN(c.schedule, ParseScheduleKind(schedule));
  std::string sampler = SamplerKindName(c.default_sampler);
  RETURN_IF_ERROR(Get(j, p, "default_sampler", sampler));
  ASSIGN_OR_RETURN(c.default_sampler, ParseSamplerKind(sampler));
  RETURN_IF_ERROR(
      Get(j, p, "default_negative_prompt", c.default_negative_prompt));
  RETURN_IF_ERROR(Get(j, p, "default_frames", c.default_frames));
  RETURN_IF_ERROR(ValidateConfig(c));
  return c;
}

absl::Status WriteConfigFile(const PipelineConfig& config,
                             const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    return absl::NotFoundError(
        absl::StrCat("cannot open ", path, " for writing"));
  }
  out << ConfigToJson(config);
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<PipelineConfig> ReadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  absl::StatusOr<PipelineConfig> config = ConfigFromJson(buffer.str());
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

}  // namespace dserve::models
