#ifndef DSERVE_WORKER_MODELS_TEXT_SENTENCEPIECE_MODEL_H_
#define DSERVE_WORKER_MODELS_TEXT_SENTENCEPIECE_MODEL_H_

// A thin wrapper over Debian's libsentencepiece, kept in its own target
// because <sentencepiece_processor.h> declares `absl::string_view` as
// std::string_view, which collides with Debian's abseil (built with its own
// string_view class): no translation unit may include both. This header and
// its .cc therefore use only the standard library; umt5_tokenizer.h is the
// API the rest of the code uses.
//
// Owns one SentencePieceProcessor; immutable after Create, so Encode is
// safe from many threads at once. Nothing here blocks on I/O.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}  // namespace sentencepiece

namespace dserve::models {

class SentencePieceModel {
 public:
  // Parses a serialized model (the bytes of spiece.model). On failure
  // returns null and sets *error.
  static std::unique_ptr<SentencePieceModel> Create(
      std::string_view model_proto, std::string* error);

  ~SentencePieceModel();
  SentencePieceModel(const SentencePieceModel&) = delete;
  SentencePieceModel& operator=(const SentencePieceModel&) = delete;

  // Piece ids of `text` (no special tokens added). False + *error on
  // failure.
  bool Encode(std::string_view text, std::vector<int>* ids,
              std::string* error) const;

  int piece_size() const;
  int eos_id() const;  // -1 if the model has none
  int pad_id() const;
  std::string IdToPiece(int id) const;

 private:
  explicit SentencePieceModel(
      std::unique_ptr<sentencepiece::SentencePieceProcessor> processor);
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
};

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_TEXT_SENTENCEPIECE_MODEL_H_
