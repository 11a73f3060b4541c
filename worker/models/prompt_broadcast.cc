#include "worker/models/prompt_broadcast.h"

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "worker/models/cached_prompt_encoder.h"
#include <ATen/ATen.h>

namespace dserve::models {
namespace {

constexpr int64_t kHeaderSize = 4;  // {code, B, L, D}

absl::Status CollectiveFailed(const std::string& field, const char* what,
                              const absl::Status& s) {
  return absl::UnavailableError(absl::StrCat(
      field, ": broadcasting the text embeddings (", what,
      ") failed: ", s.message()));
}

class BroadcastingPromptEncoder : public PromptEncoder {
 public:
  BroadcastingPromptEncoder(std::unique_ptr<PromptEncoder> inner,
                            parallel::Communicator& group, PromptWire wire)
      : inner_(std::move(inner)), group_(group), wire_(wire) {}

  absl::StatusOr<PromptEncoding> Encode(
      const std::vector<std::string>& texts,
      const std::string& field) const override {
    // Whatever happens here, the receivers wait for a header: every path
    // below sends one before returning.
    absl::StatusOr<PromptEncoding> encoded = absl::UnknownError("not run");
    absl::Status thrown = CatchTorch("text encoder", [&] {
      encoded = inner_->Encode(texts, field);
    });
    if (!thrown.ok()) encoded = thrown;
    at::Tensor data;
    if (encoded.ok()) {
      absl::Status cast = CatchTorch("text embeddings", [&] {
        data = encoded->context.to(wire_.device, wire_.dtype).contiguous();
      });
      const std::vector<int64_t> want = {static_cast<int64_t>(texts.size()),
                                         wire_.text_len, wire_.text_dim};
      if (cast.ok() && data.sizes().vec() != want) {
        cast = absl::InternalError(absl::StrCat(
            field, ": the text encoder returned shape ",
            c10::str(data.sizes()), "; expected ", c10::str(at::IntArrayRef(want))));
      }
      if (!cast.ok()) encoded = cast;
    }
    const int64_t code = static_cast<int64_t>(encoded.status().code());
    at::Tensor header;
    RETURN_IF_ERROR(CatchTorch("text embeddings header", [&] {
      header = at::tensor(std::vector<int64_t>{code,
                                               static_cast<int64_t>(texts.size()),
                                               wire_.text_len, wire_.text_dim},
                          at::kLong)
                   .to(wire_.device);
    }));
    if (absl::Status s = group_.Broadcast(header, wire_.root); !s.ok()) {
      return CollectiveFailed(field, "header", s);
    }
    if (!encoded.ok()) return encoded.status();
    if (absl::Status s = group_.Broadcast(data, wire_.root); !s.ok()) {
      return CollectiveFailed(field, "context", s);
    }
    // Every rank now holds exactly `data`.
    encoded->context = data;
    return encoded;
  }

 private:
  std::unique_ptr<PromptEncoder> inner_;
  parallel::Communicator& group_;
  const PromptWire wire_;
};

class ReceivingPromptEncoder : public PromptEncoder {
 public:
  ReceivingPromptEncoder(parallel::Communicator& group, PromptWire wire)
      : group_(group), wire_(wire) {}

  absl::StatusOr<PromptEncoding> Encode(
      const std::vector<std::string>& texts,
      const std::string& field) const override {
    at::Tensor header;
    RETURN_IF_ERROR(CatchTorch("text embeddings header", [&] {
      header = at::zeros({kHeaderSize},
                         at::TensorOptions().dtype(at::kLong).device(
                             wire_.device));
    }));
    if (absl::Status s = group_.Broadcast(header, wire_.root); !s.ok()) {
      return CollectiveFailed(field, "header", s);
    }
    std::vector<int64_t> h(kHeaderSize);
    RETURN_IF_ERROR(CatchTorch("text embeddings header", [&] {
      at::Tensor host = header.cpu();
      for (int64_t i = 0; i < kHeaderSize; ++i) h[i] = host[i].item<int64_t>();
    }));
    if (h[0] != 0) {
      const auto code = static_cast<absl::StatusCode>(h[0]);
      return absl::Status(
          code, absl::StrCat(field, ": the encoding rank (", wire_.root,
                             ") could not encode the prompts (",
                             absl::StatusCodeToString(code),
                             "; its leader reports the reason)"));
    }
    const int64_t b = static_cast<int64_t>(texts.size());
    if (h[1] != b || h[2] != wire_.text_len || h[3] != wire_.text_dim) {
      return absl::DataLossError(absl::StrCat(
          field, ": the encoding rank sends [", h[1], ", ", h[2], ", ", h[3],
          "] text embeddings; this rank expects [", b, ", ", wire_.text_len,
          ", ", wire_.text_dim, "] (the ranks disagree about the plan)"));
    }
    PromptEncoding out;
    RETURN_IF_ERROR(CatchTorch("text embeddings", [&] {
      out.context = at::empty({b, wire_.text_len, wire_.text_dim},
                              at::TensorOptions()
                                  .dtype(wire_.dtype)
                                  .device(wire_.device));
    }));
    if (absl::Status s = group_.Broadcast(out.context, wire_.root); !s.ok()) {
      return CollectiveFailed(field, "context", s);
    }
    out.unknown_words.resize(texts.size());
    return out;
  }

 private:
  parallel::Communicator& group_;
  const PromptWire wire_;
};

}  // namespace

std::unique_ptr<PromptEncoder> MakeBroadcastingPromptEncoder(
    std::unique_ptr<PromptEncoder> inner, parallel::Communicator& group,
    PromptWire wire) {
  return std::make_unique<BroadcastingPromptEncoder>(std::move(inner), group,
                                                     wire);
}

std::unique_ptr<PromptEncoder> MakeReceivingPromptEncoder(
    parallel::Communicator& group, PromptWire wire) {
  return std::make_unique<ReceivingPromptEncoder>(group, wire);
}

bool EncodesPromptsHere(const PromptSharing& sharing) {
  return sharing.group == nullptr ||
         sharing.group->rank() == sharing.encoding_rank;
}

absl::StatusOr<std::unique_ptr<PromptEncoder>> MakeRankPromptEncoder(
    const PipelineConfig& config, const PromptSharing& sharing,
    at::Device device, at::ScalarType compute_dtype,
    const std::function<absl::StatusOr<std::unique_ptr<PromptEncoder>>()>&
        make_local) {
  if (sharing.group != nullptr &&
      (sharing.encoding_rank < 0 ||
       sharing.encoding_rank >= sharing.group->size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt sharing: encoding_rank = ", sharing.encoding_rank,
        " is outside the group's ranks [0, ", sharing.group->size(), ")"));
  }
  PromptWire wire;
  wire.root = sharing.encoding_rank;
  wire.device = device;
  wire.dtype = at::kFloat;
  wire.text_len = config.dit.text_len;
  wire.text_dim = config.dit.text_dim;
  if (!EncodesPromptsHere(sharing)) {
    return MakeReceivingPromptEncoder(*sharing.group, wire);
  }
  ASSIGN_OR_RETURN(std::unique_ptr<PromptEncoder> encoder, make_local());
  if (sharing.cache != nullptr && sharing.cache->capacity_bytes() > 0) {
    TextEmbeddingKey identity;
    identity.model = config.name;
    identity.encoder = config.text_encoder_type;
    identity.max_len = config.dit.text_len;
    identity.dtype = compute_dtype;
    identity.device = device.str();
    ASSIGN_OR_RETURN(
        encoder, MakeCachingPromptEncoder(std::move(encoder), sharing.cache,
                                          std::move(identity),
                                          {config.default_negative_prompt}));
  }
  if (sharing.group != nullptr) {
    encoder = MakeBroadcastingPromptEncoder(std::move(encoder),
                                            *sharing.group, wire);
  }
  return encoder;
}

}  // namespace dserve::models
