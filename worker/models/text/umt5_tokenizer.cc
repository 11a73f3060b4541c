#include "worker/models/text/umt5_tokenizer.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "worker/models/text/prompt_clean.h"

namespace dserve::models {

Umt5Tokenizer::Umt5Tokenizer(std::unique_ptr<SentencePieceModel> model)
    : model_(std::move(model)),
      eos_id_(model_->eos_id()),
      pad_id_(model_->pad_id()) {}

Umt5Tokenizer::~Umt5Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Umt5Tokenizer>> Umt5Tokenizer::Load(
    const std::string& spiece_model_path) {
  std::ifstream in(spiece_model_path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("umT5 tokenizer: cannot open ", spiece_model_path));
  }
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return FromSerializedModel(bytes.str(), spiece_model_path);
}

absl::StatusOr<std::unique_ptr<Umt5Tokenizer>>
Umt5Tokenizer::FromSerializedModel(std::string_view model_proto,
                                   const std::string& name) {
  absl::StatusOr<std::unique_ptr<SentencePieceModel>> loaded =
      SentencePieceModel::Load(model_proto);
  if (!loaded.ok()) {
    return absl::Status(loaded.status().code(),
                        absl::StrCat("umT5 tokenizer: ", name, ": ",
                                     loaded.status().message()));
  }
  std::unique_ptr<SentencePieceModel> model = *std::move(loaded);
  if (model->eos_id() < 0 || model->IdToPiece(model->eos_id()) != "</s>") {
    return absl::FailedPreconditionError(
        absl::StrCat("umT5 tokenizer: ", name,
                     " has no </s> end-of-sequence piece (eos_id ",
                     model->eos_id(), ")"));
  }
  return std::unique_ptr<Umt5Tokenizer>(new Umt5Tokenizer(std::move(model)));
}

absl::StatusOr<Umt5Tokens> Umt5Tokenizer::Encode(std::string_view cleaned_text,
                                                 int max_len) const {
  if (max_len < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "umT5 tokenizer: max_len ", max_len, " must be >= 1 (room for </s>)"));
  }
  std::vector<int> pieces;
  std::string error;
  if (!model_->Encode(cleaned_text, &pieces, &error)) {
    return absl::InternalError(
        absl::StrCat("umT5 tokenizer: encode failed: ", error));
  }
  Umt5Tokens out;
  out.untruncated_length = static_cast<int64_t>(pieces.size()) + 1;
  const size_t keep =
      std::min(pieces.size(), static_cast<size_t>(max_len - 1));
  out.ids.assign(pieces.begin(), pieces.begin() + keep);
  out.ids.push_back(eos_id_);
  return out;
}

absl::StatusOr<Umt5Tokens> Umt5Tokenizer::EncodePrompt(std::string_view prompt,
                                                       int max_len) const {
  return Encode(CleanPrompt(prompt), max_len);
}

int Umt5Tokenizer::piece_size() const { return model_->piece_size(); }

}  // namespace dserve::models
