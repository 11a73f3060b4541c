#ifndef DSERVE_WORKER_MODELS_TEXT_UMT5_TOKENIZER_H_
#define DSERVE_WORKER_MODELS_TEXT_UMT5_TOKENIZER_H_

// The umT5 tokenizer as Wan2.1 calls it (HF AutoTokenizer on google/umt5-xxl,
// padding="max_length", truncation=True, add_special_tokens=True), over
// Debian's libsentencepiece and the checkpoint's spiece.model:
//
//   ids = SentencePiece(text)[: max_len - 1] + [</s>]
//
// i.e. HF's truncation=True on one sequence (cut from the right so that the
// appended </s> still fits): the result never exceeds max_len and always
// ends in </s> (id 1 in umT5; no BOS). Padding is not materialised: the
// encoder runs over the real tokens only (see umt5_encoder.h).
//
// Known difference from HF: text that spells a special token ("</s>",
// "<pad>", "<extra_id_0>") is encoded as ordinary text here, where HF's
// added-token matching would emit the special id. Cleaned prompts
// (prompt_clean.h) are passed as they are.
//
// An Umt5Tokenizer owns its SentencePiece model; it is immutable after Load,
// so Encode may be called from any number of threads at once. Load blocks on
// the file system.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/models/text/sentencepiece_model.h"

namespace dserve::models {

struct Umt5Tokens {
  // At most max_len ids, the last one </s>.
  std::vector<int64_t> ids;
  // Tokens before truncation, </s> included; > ids.size() iff truncated.
  int64_t untruncated_length = 0;

  // The real length Wan trims the encoder output to (mask.sum()).
  int64_t length() const { return static_cast<int64_t>(ids.size()); }
  bool truncated() const { return untruncated_length > length(); }
};

class Umt5Tokenizer {
 public:
  // Loads a SentencePiece model (spiece.model). NOT_FOUND / INVALID_ARGUMENT
  // name the path; FAILED_PRECONDITION if the model has no </s>.
  static absl::StatusOr<std::unique_ptr<Umt5Tokenizer>> Load(
      const std::string& spiece_model_path);
  // The same from the model file's bytes.
  static absl::StatusOr<std::unique_ptr<Umt5Tokenizer>> FromSerializedModel(
      std::string_view model_proto, const std::string& name);

  ~Umt5Tokenizer();
  Umt5Tokenizer(const Umt5Tokenizer&) = delete;
  Umt5Tokenizer& operator=(const Umt5Tokenizer&) = delete;

  // Tokenizes already-cleaned UTF-8 text. INVALID_ARGUMENT if max_len < 1.
  absl::StatusOr<Umt5Tokens> Encode(std::string_view cleaned_text,
                                    int max_len) const;
  // CleanPrompt (prompt_clean.h) then Encode: Wan's whole text path up to
  // the encoder.
  absl::StatusOr<Umt5Tokens> EncodePrompt(std::string_view prompt,
                                          int max_len) const;

  // Pieces in the SentencePiece model (256000 for umT5; the encoder's
  // embedding has more rows, for the <extra_id_k> tokens).
  int piece_size() const;
  int64_t eos_id() const { return eos_id_; }
  int64_t pad_id() const { return pad_id_; }

 private:
  explicit Umt5Tokenizer(std::unique_ptr<SentencePieceModel> model);

  std::unique_ptr<SentencePieceModel> model_;
  int64_t eos_id_ = 1;
  int64_t pad_id_ = 0;
};

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_TEXT_UMT5_TOKENIZER_H_
