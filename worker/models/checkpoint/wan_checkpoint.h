#ifndef DSERVE_WORKER_MODELS_CHECKPOINT_WAN_CHECKPOINT_H_
#define DSERVE_WORKER_MODELS_CHECKPOINT_WAN_CHECKPOINT_H_

// Loads a Wan2.1 text-to-video checkpoint directory in either published
// layout, unchanged, into Wan ORIGINAL weight names (what every dserve
// component consumes):
//
//   "diffusers" (model_index.json present):
//     transformer/config.json + diffusion_pytorch_model.safetensors (or
//       diffusion_pytorch_model.safetensors.index.json + shards)
//     text_encoder/config.json + model.safetensors (or model.safetensors.
//       index.json + shards)  — transformers UMT5EncoderModel
//     tokenizer/spiece.model
//     vae/config.json + diffusion_pytorch_model.safetensors (or .index.json)
//     scheduler/scheduler_config.json
//   "wan" (config.json with "_class_name": "WanModel"):
//     config.json, diffusion_pytorch_model.safetensors (or .index.json +
//     shards), models_t5_umt5-xxl-enc-bf16.pth, Wan2.1_VAE.pth (torch.save
//     zip archives; pth_reader.h), google/umt5-xxl/spiece.model
//
// Sizes come from the files: the DiT config from config.json (Wan:
// dim/ffn_dim/freq_dim/in_dim/out_dim/num_heads/num_layers/text_len/eps,
// with patch_size and text_dim taken from the patch_embedding and
// text_embedding.0 shapes when absent, as Wan's constructor defaults them;
// diffusers: num_attention_heads x attention_head_dim, ffn_dim, ...,
// text_len 512 (WanPipeline's max_sequence_length) unless config.json has a
// "text_len"); the umT5 and VAE sizes from their tensor shapes. Every tensor
// is checked against the sizes (DiT: DiTWeightShapes), so a missing,
// unexpected or mis-shaped tensor is an error naming the file and the key
// (in the file's own naming, with the Wan name). Tensors keep the file's
// dtype (bf16, fp16 or fp32) and are memory-mapped views (the maps hold the
// mappings): loading reads only headers and the pickles.
//
// LoadWanCheckpoint is stateless and thread-safe; it blocks on the file
// system. WanCheckpoint is a plain value (copies share the tensors).

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "worker/models/model_config.h"
#include "worker/models/safetensors.h"

namespace dserve::models::checkpoint {

// What diffusers' scheduler/scheduler_config.json says (all unset for the
// Wan layout, whose sampler settings live in Wan's code, not its files).
struct WanSchedulerConfig {
  std::string class_name;                  // "UniPCMultistepScheduler"
  std::optional<double> flow_shift;        // 3.0 in the Wan2.1 diffusers repos
  std::optional<int> solver_order;         // 2
  std::optional<std::string> solver_type;  // "bh2"
  std::optional<std::string> prediction_type;  // "flow_prediction"
  std::optional<int> num_train_timesteps;      // 1000
  std::optional<bool> use_flow_sigmas;
};

struct WanCheckpoint {
  std::string layout;  // "wan" or "diffusers"
  std::string dir;
  DiTConfig dit_config;
  // Wan ORIGINAL names, no prefix (wan_contract.md "Weight names").
  WeightMap dit;
  WeightMap t5;   // empty if WanLoadOptions::load_text_encoder is false
  WeightMap vae;  // empty if WanLoadOptions::load_vae is false
  std::string spiece_model_path;
  WanSchedulerConfig scheduler;
  // The files the weights came from (a .safetensors, its .index.json, or a
  // .pth), for messages.
  std::string dit_file;
  std::string t5_file;
  std::string vae_file;
};

struct WanLoadOptions {
  // Which DiT tensors (Wan names) to return; null = all. Only those are
  // checked for presence and shape; a shard holding none of them is not
  // opened. E.g. a pipeline-parallel rank keeps its blocks and the
  // embeddings/head it runs.
  KeyFilter dit_keys;
  bool load_text_encoder = true;
  bool load_vae = true;
};

// NOT_FOUND if `dir` has neither layout's marker file or a required file is
// missing (naming it); INVALID_ARGUMENT for a config or tensor that does not
// fit (naming file, field or key); DATA_LOSS for a corrupt file.
absl::StatusOr<WanCheckpoint> LoadWanCheckpoint(
    const std::string& dir, const WanLoadOptions& options = {});

}  // namespace dserve::models::checkpoint

#endif  // DSERVE_WORKER_MODELS_CHECKPOINT_WAN_CHECKPOINT_H_
