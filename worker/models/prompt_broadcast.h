#ifndef DSERVE_WORKER_MODELS_PROMPT_BROADCAST_H_
#define DSERVE_WORKER_MODELS_PROMPT_BROADCAST_H_

// Text encoding once per replica: one rank of the replica's group (the
// encoding rank, world rank 0) holds the text encoder (umT5-XXL is 5.7 B
// parameters, 11 GB in bf16), encodes each plan's prompts and broadcasts the
// context; every other rank gets a receiving encoder that holds no weights.
//
// Wire protocol, per Encode call (Pipeline::Prepare makes two: "prompt",
// then "negative_prompt", on every rank in the same order):
//   1. header: int64 [4] = {status code, B, L, D} from the encoding rank;
//   2. if the code is OK: the context, [B, L, D] in the wire dtype.
// Both tensors live on the sharing options' device, so on CUDA they travel
// over the group's NCCL communicator on device memory (Gloo on CPU). A
// receiver checks B against its own prompt count and L, D against the
// model's text_len/text_dim (DATA_LOSS if they differ: the ranks disagree
// about the plan). An encoder error on the encoding rank is sent as its code
// and returned on every rank with that code, so the ranks stay in lockstep;
// the full message is only on the encoding rank (the leader reports it). A
// failed collective returns UNAVAILABLE: the group is then unusable.
// The encoding rank returns the very tensor it sent, so every rank's
// context is bit-identical.
//
// Ownership / threading: each encoder borrows the group's Communicator,
// which must outlive it and which is not thread-safe: Encode must run on
// the one thread that drives that communicator (the RankLoop's). Encode
// blocks until the broadcast is complete (on GPU: enqueued, and the 32-byte
// header copied to the host).

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "parallel/communicator.h"
#include "worker/models/model_config.h"
#include "worker/models/prompt_encoder.h"
#include "worker/models/text_embedding_cache.h"
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace dserve::models {

// How the ranks of a replica share prompt embeddings (a field of
// PipelineOptions, pipeline.h): the ranks of `group` share one text
// encoder, on group rank `encoding_rank`; the other ranks receive its
// embeddings and load no text-encoder weights. `cache` (may be shared by
// several models: its key names the model) lets the encoding rank skip
// repeated prompts. `group` is borrowed and must outlive the pipelines
// built with it.
struct PromptSharing {
  // null = the pipeline encodes its own prompts (a 1-rank replica).
  parallel::Communicator* group = nullptr;
  int encoding_rank = 0;
  // null = no cache.
  std::shared_ptr<TextEmbeddingCache> cache;
};

struct PromptWire {
  // Group rank that encodes and sends.
  int root = 0;
  at::Device device = at::kCPU;
  // The context's dtype on the wire (PromptEncoding's contract: fp32).
  at::ScalarType dtype = at::kFloat;
  int text_len = 0;
  int text_dim = 0;
};

// On the encoding rank: runs `inner` and broadcasts its result.
std::unique_ptr<PromptEncoder> MakeBroadcastingPromptEncoder(
    std::unique_ptr<PromptEncoder> inner, parallel::Communicator& group,
    PromptWire wire);

// On every other rank: receives what the encoding rank sends.
std::unique_ptr<PromptEncoder> MakeReceivingPromptEncoder(
    parallel::Communicator& group, PromptWire wire);

// True if this rank builds the real text encoder under `sharing`: no group
// (the pipeline encodes alone), or this rank is the group's encoding rank.
bool EncodesPromptsHere(const PromptSharing& sharing);

// Builds this rank's PromptEncoder for a pipeline of `config` that runs on
// `device` in `compute_dtype`: on an encoding rank, `make_local()` (the real
// encoder), wrapped in a CachingPromptEncoder when sharing.cache is set
// (the config's default negative prompt pinned) and in a broadcasting
// encoder when there is a group; elsewhere a receiving encoder, and
// `make_local` is never called (no text-encoder weights are touched).
absl::StatusOr<std::unique_ptr<PromptEncoder>> MakeRankPromptEncoder(
    const PipelineConfig& config, const PromptSharing& sharing,
    at::Device device, at::ScalarType compute_dtype,
    const std::function<absl::StatusOr<std::unique_ptr<PromptEncoder>>()>&
        make_local);

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_PROMPT_BROADCAST_H_
