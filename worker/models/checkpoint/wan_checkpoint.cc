#include "worker/models/checkpoint/wan_checkpoint.h"

#include <sys/stat.h>

#include <array>
#include <fstream>
#include <functional>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/models/checkpoint/pth_reader.h"
#include "worker/models/checkpoint/wan_component_shapes.h"
#include "worker/models/checkpoint/wan_key_maps.h"
#include "worker/models/dit.h"
#include <nlohmann/json.hpp>

namespace dserve::models::checkpoint {
namespace {

using nlohmann::json;

constexpr char kWanT5File[] = "models_t5_umt5-xxl-enc-bf16.pth";
constexpr char kWanVaeFile[] = "Wan2.1_VAE.pth";
constexpr char kWanSpiece[] = "google/umt5-xxl/spiece.model";
// Keys whose shapes give sizes a Wan config.json leaves to constructor
// defaults; always read (a view costs nothing) and dropped afterwards if the
// caller's filter does not select them.
constexpr char kPatchKey[] = "patch_embedding.weight";
constexpr char kTextKey[] = "text_embedding.0.weight";

bool IsFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

absl::StatusOr<json> ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a JSON object"));
  }
  return j;
}

// Typed field access with errors naming the file and field.
class Fields {
 public:
  Fields(const json& j, std::string file) : j_(j), file_(std::move(file)) {}

  bool Has(const char* name) const {
    return j_.contains(name) && !j_[name].is_null();
  }
  absl::StatusOr<int> Int(const char* name) const {
    if (!Has(name)) return Missing(name);
    const json& v = j_[name];
    if (!v.is_number_integer() || v.get<int64_t>() <= 0 ||
        v.get<int64_t>() > (1 << 30)) {
      return Bad(name, v, "a positive integer");
    }
    return v.get<int>();
  }
  absl::StatusOr<int> IntOr(const char* name, int fallback) const {
    return Has(name) ? Int(name) : absl::StatusOr<int>(fallback);
  }
  absl::StatusOr<double> Number(const char* name) const {
    if (!Has(name)) return Missing(name);
    const json& v = j_[name];
    if (!v.is_number()) return Bad(name, v, "a number");
    return v.get<double>();
  }
  absl::StatusOr<std::string> String(const char* name) const {
    if (!Has(name)) return Missing(name);
    if (!j_[name].is_string()) return Bad(name, j_[name], "a string");
    return j_[name].get<std::string>();
  }
  absl::StatusOr<std::array<int, 3>> Triple(const char* name) const {
    const json& v = j_[name];
    if (!v.is_array() || v.size() != 3) return Bad(name, v, "[t, h, w]");
    std::array<int, 3> out;
    for (int i = 0; i < 3; ++i) {
      if (!v[i].is_number_integer() || v[i].get<int>() <= 0) {
        return Bad(name, v, "three positive integers");
      }
      out[i] = v[i].get<int>();
    }
    return out;
  }
  absl::Status Bad(const char* name, const json& v,
                   const std::string& allowed) const {
    return absl::InvalidArgumentError(absl::StrCat(
        file_, ": field \"", name, "\" is ", v.dump(), ", expected ", allowed));
  }

 private:
  absl::Status Missing(const char* name) const {
    return absl::InvalidArgumentError(
        absl::StrCat(file_, ": missing field \"", name, "\""));
  }
  const json& j_;
  std::string file_;
};

struct Loaded {
  WeightMap weights;
  std::string file;
};

// <dir>/<stem>.safetensors, else <dir>/<stem>.safetensors.index.json.
absl::StatusOr<Loaded> ReadSafetensorsStem(const std::string& dir,
                                           const std::string& stem,
                                           const KeyFilter& keep) {
  Loaded out;
  const std::string single = dir + "/" + stem + ".safetensors";
  const std::string index = single + ".index.json";
  if (IsFile(single)) {
    out.file = single;
    ASSIGN_OR_RETURN(out.weights, ReadSafetensors(single, keep));
  } else if (IsFile(index)) {
    out.file = index;
    ASSIGN_OR_RETURN(out.weights, ReadSafetensorsIndex(index, keep));
  } else {
    return absl::NotFoundError(
        absl::StrCat("neither ", single, " nor ", index, " exists"));
  }
  return out;
}

absl::Status InFile(const std::string& file, const absl::Status& s) {
  if (s.ok() || s.message().find(file) != absl::string_view::npos) return s;
  return absl::Status(s.code(), absl::StrCat(file, ": ", s.message()));
}

// Sizes a Wan config.json omits, from tensor shapes.
absl::Status InferFromShapes(const WeightMap& dit, const std::string& file,
                             const Fields& f, DiTConfig& c) {
  if (f.Has("patch_size")) {
    ASSIGN_OR_RETURN(c.patch, f.Triple("patch_size"));
  } else {
    auto it = dit.find(kPatchKey);
    if (it == dit.end() || it->second.dim() != 5) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": missing tensor \"", kPatchKey,
          "\" [dim, in, pt, ph, pw] (config.json has no patch_size)"));
    }
    for (int i = 0; i < 3; ++i) c.patch[i] = it->second.size(2 + i);
  }
  if (f.Has("text_dim")) {
    ASSIGN_OR_RETURN(c.text_dim, f.Int("text_dim"));
  } else {
    auto it = dit.find(kTextKey);
    if (it == dit.end() || it->second.dim() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": missing tensor \"", kTextKey,
          "\" [dim, text_dim] (config.json has no text_dim)"));
    }
    c.text_dim = static_cast<int>(it->second.size(1));
  }
  return absl::OkStatus();
}

absl::StatusOr<DiTConfig> WanDiTConfig(const json& j, const std::string& file) {
  Fields f(j, file);
  DiTConfig c;
  if (f.Has("model_type")) {
    ASSIGN_OR_RETURN(std::string type, f.String("model_type"));
    if (type != "t2v") {
      return f.Bad("model_type", j["model_type"],
                   "\"t2v\" (only text-to-video is supported)");
    }
  }
  ASSIGN_OR_RETURN(c.dim, f.Int("dim"));
  ASSIGN_OR_RETURN(c.ffn_dim, f.Int("ffn_dim"));
  ASSIGN_OR_RETURN(c.num_heads, f.Int("num_heads"));
  ASSIGN_OR_RETURN(c.num_layers, f.Int("num_layers"));
  ASSIGN_OR_RETURN(c.freq_dim, f.IntOr("freq_dim", 256));
  ASSIGN_OR_RETURN(c.in_channels, f.IntOr("in_dim", 16));
  ASSIGN_OR_RETURN(c.out_channels, f.IntOr("out_dim", 16));
  ASSIGN_OR_RETURN(c.text_len, f.IntOr("text_len", 512));
  if (f.Has("eps")) {
    ASSIGN_OR_RETURN(c.eps, f.Number("eps"));
  }
  return c;
}

absl::StatusOr<DiTConfig> DiffusersDiTConfig(const json& j,
                                             const std::string& file) {
  Fields f(j, file);
  DiTConfig c;
  for (const char* unsupported : {"added_kv_proj_dim", "image_dim"}) {
    if (f.Has(unsupported)) {
      return f.Bad(unsupported, j[unsupported],
                   "null (image conditioning is not supported)");
    }
  }
  if (f.Has("qk_norm")) {
    ASSIGN_OR_RETURN(std::string qk, f.String("qk_norm"));
    if (qk != "rms_norm_across_heads") {
      return f.Bad("qk_norm", j["qk_norm"], "\"rms_norm_across_heads\"");
    }
  }
  if (f.Has("cross_attn_norm") && j["cross_attn_norm"] != true) {
    return f.Bad("cross_attn_norm", j["cross_attn_norm"], "true");
  }
  ASSIGN_OR_RETURN(c.num_heads, f.Int("num_attention_heads"));
  ASSIGN_OR_RETURN(int head_dim, f.Int("attention_head_dim"));
  c.dim = c.num_heads * head_dim;
  ASSIGN_OR_RETURN(c.ffn_dim, f.Int("ffn_dim"));
  ASSIGN_OR_RETURN(c.num_layers, f.Int("num_layers"));
  ASSIGN_OR_RETURN(c.freq_dim, f.IntOr("freq_dim", 256));
  ASSIGN_OR_RETURN(c.in_channels, f.IntOr("in_channels", 16));
  ASSIGN_OR_RETURN(c.out_channels, f.IntOr("out_channels", 16));
  ASSIGN_OR_RETURN(c.text_dim, f.IntOr("text_dim", 4096));
  ASSIGN_OR_RETURN(c.text_len, f.IntOr("text_len", 512));
  if (f.Has("patch_size")) {
    ASSIGN_OR_RETURN(c.patch, f.Triple("patch_size"));
  }
  if (f.Has("eps")) {
    ASSIGN_OR_RETURN(c.eps, f.Number("eps"));
  }
  return c;
}

absl::StatusOr<WanSchedulerConfig> SchedulerConfig(const std::string& path) {
  ASSIGN_OR_RETURN(json j, ReadJson(path));
  Fields f(j, path);
  WanSchedulerConfig s;
  if (f.Has("_class_name")) {
    ASSIGN_OR_RETURN(s.class_name, f.String("_class_name"));
  }
  if (f.Has("flow_shift")) {
    ASSIGN_OR_RETURN(s.flow_shift, f.Number("flow_shift"));
  }
  if (f.Has("solver_order")) {
    ASSIGN_OR_RETURN(s.solver_order, f.Int("solver_order"));
  }
  if (f.Has("solver_type")) {
    ASSIGN_OR_RETURN(s.solver_type, f.String("solver_type"));
  }
  if (f.Has("prediction_type")) {
    ASSIGN_OR_RETURN(s.prediction_type, f.String("prediction_type"));
  }
  if (f.Has("num_train_timesteps")) {
    ASSIGN_OR_RETURN(s.num_train_timesteps, f.Int("num_train_timesteps"));
  }
  if (f.Has("use_flow_sigmas")) {
    if (!j["use_flow_sigmas"].is_boolean()) {
      return f.Bad("use_flow_sigmas", j["use_flow_sigmas"], "a boolean");
    }
    s.use_flow_sigmas = j["use_flow_sigmas"].get<bool>();
  }
  return s;
}

// Wraps a Wan-name filter for a reader that sees file names.
KeyFilter WithExtraKeys(const KeyFilter& keep) {
  if (!keep) return nullptr;
  return [keep](const std::string& key) {
    return key == kPatchKey || key == kTextKey || keep(key);
  };
}

KeyFilter DiffusersFilter(WanComponent component, const KeyFilter& keep) {
  if (!keep) return nullptr;
  return [component, keep](const std::string& key) {
    absl::StatusOr<std::string> wan = WanKeyFromDiffusers(component, key);
    return !wan.ok() || keep(*wan);  // unknown keys stay, to be reported
  };
}

// Checks the DiT against its config and drops the shape-only extra keys.
absl::Status FinishDiT(WanCheckpoint& ckpt, const KeyFilter& keep,
                       const std::function<std::string(const std::string&)>&
                           file_key) {
  RETURN_IF_ERROR(CheckWeights(ckpt.dit, DiTWeightShapes(ckpt.dit_config),
                               ckpt.dit_file, file_key, WithExtraKeys(keep)));
  if (keep) {
    for (const char* extra : {kPatchKey, kTextKey}) {
      if (!keep(extra)) ckpt.dit.erase(extra);
    }
  }
  return absl::OkStatus();
}

absl::Status CheckT5(const WanCheckpoint& ckpt,
                     const std::function<std::string(const std::string&)>&
                         file_key) {
  absl::StatusOr<T5Sizes> sizes = InferT5Sizes(ckpt.t5);
  if (!sizes.ok()) return InFile(ckpt.t5_file, sizes.status());
  return CheckWeights(ckpt.t5, T5WeightShapes(*sizes), ckpt.t5_file, file_key);
}

absl::Status CheckVae(const WanCheckpoint& ckpt,
                      const std::function<std::string(const std::string&)>&
                          file_key) {
  absl::StatusOr<VaeSizes> sizes = InferVaeSizes(ckpt.vae);
  if (!sizes.ok()) return InFile(ckpt.vae_file, sizes.status());
  return CheckWeights(ckpt.vae, VaeWeightShapes(*sizes), ckpt.vae_file,
                      file_key);
}

std::function<std::string(const std::string&)> ToDiffusersName(
    WanComponent component) {
  return [component](const std::string& key) {
    absl::StatusOr<std::string> name = DiffusersKeyFromWan(component, key);
    return name.ok() ? *name : key;
  };
}

absl::StatusOr<WanCheckpoint> LoadWanLayout(const std::string& dir,
                                            const json& config,
                                            const WanLoadOptions& options) {
  WanCheckpoint ckpt;
  ckpt.layout = "wan";
  ckpt.dir = dir;
  const std::string config_path = dir + "/config.json";
  ASSIGN_OR_RETURN(ckpt.dit_config, WanDiTConfig(config, config_path));
  ASSIGN_OR_RETURN(Loaded dit,
                   ReadSafetensorsStem(dir, "diffusion_pytorch_model",
                                       WithExtraKeys(options.dit_keys)));
  ckpt.dit = std::move(dit.weights);
  ckpt.dit_file = dit.file;
  RETURN_IF_ERROR(InferFromShapes(ckpt.dit, ckpt.dit_file,
                                  Fields(config, config_path),
                                  ckpt.dit_config));
  RETURN_IF_ERROR(FinishDiT(ckpt, options.dit_keys, nullptr));
  if (options.load_text_encoder) {
    ckpt.t5_file = dir + "/" + kWanT5File;
    ASSIGN_OR_RETURN(ckpt.t5, ReadPth(ckpt.t5_file));
    RETURN_IF_ERROR(CheckT5(ckpt, nullptr));
  }
  if (options.load_vae) {
    ckpt.vae_file = dir + "/" + kWanVaeFile;
    ASSIGN_OR_RETURN(ckpt.vae, ReadPth(ckpt.vae_file));
    RETURN_IF_ERROR(CheckVae(ckpt, nullptr));
  }
  ckpt.spiece_model_path = dir + "/" + kWanSpiece;
  if (!IsFile(ckpt.spiece_model_path)) {
    return absl::NotFoundError(
        absl::StrCat("missing ", ckpt.spiece_model_path));
  }
  return ckpt;
}

// Reads a diffusers component and renames it to Wan names.
absl::StatusOr<Loaded> ReadDiffusersComponent(const std::string& dir,
                                              const std::string& stem,
                                              WanComponent component,
                                              const KeyFilter& keep) {
  ASSIGN_OR_RETURN(Loaded raw,
                   ReadSafetensorsStem(dir, stem,
                                       DiffusersFilter(component, keep)));
  absl::StatusOr<WeightMap> renamed =
      WanWeightsFromDiffusers(component, raw.weights);
  if (!renamed.ok()) return InFile(raw.file, renamed.status());
  return Loaded{std::move(*renamed), raw.file};
}

absl::StatusOr<WanCheckpoint> LoadDiffusersLayout(
    const std::string& dir, const WanLoadOptions& options) {
  WanCheckpoint ckpt;
  ckpt.layout = "diffusers";
  ckpt.dir = dir;
  ASSIGN_OR_RETURN(json index, ReadJson(dir + "/model_index.json"));
  if (index.contains("transformer") && index["transformer"].is_array() &&
      index["transformer"].size() == 2 &&
      index["transformer"][1] != "WanTransformer3DModel") {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, "/model_index.json: transformer is ",
        index["transformer"].dump(), ", expected WanTransformer3DModel"));
  }
  const std::string tdir = dir + "/transformer";
  ASSIGN_OR_RETURN(json tconfig, ReadJson(tdir + "/config.json"));
  ASSIGN_OR_RETURN(ckpt.dit_config,
                   DiffusersDiTConfig(tconfig, tdir + "/config.json"));
  ASSIGN_OR_RETURN(Loaded dit,
                   ReadDiffusersComponent(tdir, "diffusion_pytorch_model",
                                          WanComponent::kDiT,
                                          WithExtraKeys(options.dit_keys)));
  ckpt.dit = std::move(dit.weights);
  ckpt.dit_file = dit.file;
  RETURN_IF_ERROR(
      FinishDiT(ckpt, options.dit_keys, ToDiffusersName(WanComponent::kDiT)));
  if (options.load_text_encoder) {
    const std::string edir = dir + "/text_encoder";
    ASSIGN_OR_RETURN(json econfig, ReadJson(edir + "/config.json"));
    (void)econfig;  // sizes come from the shapes; the file must exist
    ASSIGN_OR_RETURN(Loaded t5, ReadDiffusersComponent(
                                    edir, "model", WanComponent::kT5, nullptr));
    ckpt.t5 = std::move(t5.weights);
    ckpt.t5_file = t5.file;
    RETURN_IF_ERROR(CheckT5(ckpt, ToDiffusersName(WanComponent::kT5)));
  }
  if (options.load_vae) {
    const std::string vdir = dir + "/vae";
    ASSIGN_OR_RETURN(json vconfig, ReadJson(vdir + "/config.json"));
    (void)vconfig;
    ASSIGN_OR_RETURN(Loaded vae,
                     ReadDiffusersComponent(vdir, "diffusion_pytorch_model",
                                            WanComponent::kVae, nullptr));
    ckpt.vae = std::move(vae.weights);
    ckpt.vae_file = vae.file;
    RETURN_IF_ERROR(CheckVae(ckpt, ToDiffusersName(WanComponent::kVae)));
  }
  ckpt.spiece_model_path = dir + "/tokenizer/spiece.model";
  if (!IsFile(ckpt.spiece_model_path)) {
    return absl::NotFoundError(
        absl::StrCat("missing ", ckpt.spiece_model_path));
  }
  ASSIGN_OR_RETURN(ckpt.scheduler,
                   SchedulerConfig(dir + "/scheduler/scheduler_config.json"));
  return ckpt;
}

}  // namespace

absl::StatusOr<WanCheckpoint> LoadWanCheckpoint(
    const std::string& dir, const WanLoadOptions& options) {
  if (IsFile(dir + "/model_index.json")) {
    return LoadDiffusersLayout(dir, options);
  }
  const std::string config_path = dir + "/config.json";
  if (IsFile(config_path)) {
    ASSIGN_OR_RETURN(json config, ReadJson(config_path));
    if (!config.contains("_class_name") || !config["_class_name"].is_string() ||
        config["_class_name"].get<std::string>() != "WanModel") {
      return absl::InvalidArgumentError(absl::StrCat(
          config_path, ": \"_class_name\" is ",
          config.contains("_class_name") ? config["_class_name"].dump()
                                         : "absent",
          ", expected \"WanModel\" (the Wan release layout)"));
    }
    return LoadWanLayout(dir, config, options);
  }
  return absl::NotFoundError(absl::StrCat(
      dir, " is not a Wan2.1 checkpoint: it has neither model_index.json "
           "(diffusers layout) nor config.json (Wan release layout)"));
}

}  // namespace dserve::models::checkpoint
