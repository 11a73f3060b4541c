// Fuzzes the umT5 tokenizer path (worker/models/text/umt5_tokenizer.cc and
// sentencepiece_model.cc over Debian's libsentencepiece, reached through the
// dlopen()ed shim): EncodePrompt = CleanPrompt + SentencePiece + truncation.
// The first input byte picks max_len (1..256); the rest is the prompt.
//
// Built with UBSan but not ASan: the shim is dlopen()ed RTLD_DEEPBIND, which
// ASan refuses. The shim comes from $DSERVE_SPM_SHIM (run_fuzzers.sh builds
// it), the model from worker/models/text/testdata/umt5_test_spm.model under
// the working directory (the repository root) or $DSERVE_SPM_MODEL.
//
// Invariants: at most max_len ids, the last one </s>; every id a piece of
// the model; untruncated_length >= length.

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "worker/models/text/sentencepiece_model.h"
#include "worker/models/text/umt5_tokenizer.h"

namespace {

const dserve::models::Umt5Tokenizer& Tokenizer() {
  static const dserve::models::Umt5Tokenizer* const tokenizer = [] {
    const char* model_env = std::getenv("DSERVE_SPM_MODEL");
    const std::string model_path =
        model_env != nullptr
            ? model_env
            : "worker/models/text/testdata/umt5_test_spm.model";
    std::ifstream in(model_path, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    FUZZ_CHECK(in.good() || in.eof(), "cannot read %s", model_path.c_str());
    const char* shim = std::getenv("DSERVE_SPM_SHIM");
    absl::StatusOr<std::unique_ptr<dserve::models::SentencePieceModel>> model =
        dserve::models::SentencePieceModel::Load(bytes.str(),
                                                 shim != nullptr ? shim : "");
    FUZZ_CHECK(model.ok(), "%s", model.status().ToString().c_str());
    absl::StatusOr<std::unique_ptr<dserve::models::Umt5Tokenizer>> t =
        dserve::models::Umt5Tokenizer::FromSerializedModel(bytes.str(),
                                                           model_path);
    FUZZ_CHECK(t.ok(), "%s", t.status().ToString().c_str());
    return t->release();
  }();
  return *tokenizer;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int max_len = 1 + data[0];
  const std::string_view prompt(reinterpret_cast<const char*>(data) + 1,
                                size - 1);
  const dserve::models::Umt5Tokenizer& tokenizer = Tokenizer();
  absl::StatusOr<dserve::models::Umt5Tokens> tokens =
      tokenizer.EncodePrompt(prompt, max_len);
  FUZZ_CHECK(tokens.ok(), "EncodePrompt failed: %s",
             tokens.status().ToString().c_str());
  FUZZ_CHECK(!tokens->ids.empty() && tokens->length() <= max_len,
             "%lld ids for max_len %d",
             static_cast<long long>(tokens->length()), max_len);
  FUZZ_CHECK(tokens->ids.back() == tokenizer.eos_id(), "last id %lld",
             static_cast<long long>(tokens->ids.back()));
  FUZZ_CHECK(tokens->untruncated_length >= tokens->length(),
             "untruncated %lld < %lld",
             static_cast<long long>(tokens->untruncated_length),
             static_cast<long long>(tokens->length()));
  for (int64_t id : tokens->ids) {
    FUZZ_CHECK(id >= 0 && id < tokenizer.piece_size(), "id %lld of %d",
               static_cast<long long>(id), tokenizer.piece_size());
  }
  return 0;
}
