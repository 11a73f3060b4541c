// Fuzzes Wan's prompt cleaning (worker/models/text/prompt_clean.cc): the
// input is a prompt as a client sends it (any bytes; the frontend lets only
// valid UTF-8 through, but the worker's cleaner must not trust that).
//
// Invariants: the result is valid UTF-8 (decoding it replaces nothing that
// was not already U+FFFD); it has no leading, trailing or repeated
// whitespace; NFC is idempotent; UTF-8 decode/encode round-trips.

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "worker/models/text/prompt_clean.h"

namespace {

bool IsSpace(char32_t c) {
  // The whitespace CollapseWhitespace folds (Python str.isspace()) that can
  // survive FixTextSubset; checked only for ASCII and the common ones.
  return c == U' ' || c == U'\t' || c == U'\n' || c == U'\r' || c == U'\v' ||
         c == U'\f' || c == 0x1c || c == 0x1d || c == 0x1e || c == 0x1f ||
         c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
         c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
         c == 0x3000;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::u32string decoded = dserve::models::DecodeUtf8(input);
  const std::string reencoded = dserve::models::EncodeUtf8(decoded);
  FUZZ_CHECK(dserve::models::DecodeUtf8(reencoded) == decoded,
             "decode(encode(decode(x))) != decode(x)");

  const std::string cleaned = dserve::models::CleanPrompt(input);
  const std::u32string chars = dserve::models::DecodeUtf8(cleaned);
  FUZZ_CHECK(dserve::models::EncodeUtf8(chars) == cleaned,
             "CleanPrompt returned invalid UTF-8");
  if (!chars.empty()) {
    FUZZ_CHECK(!IsSpace(chars.front()) && !IsSpace(chars.back()),
               "cleaned prompt starts or ends with whitespace");
  }
  for (size_t i = 1; i < chars.size(); ++i) {
    FUZZ_CHECK(!(IsSpace(chars[i - 1]) && IsSpace(chars[i])),
               "cleaned prompt has repeated whitespace at %zu", i);
    FUZZ_CHECK(!IsSpace(chars[i]) || chars[i] == U' ',
               "cleaned prompt has whitespace U+%04X other than ' '",
               static_cast<unsigned>(chars[i]));
  }

  const std::u32string nfc = dserve::models::NormalizeNfc(decoded);
  FUZZ_CHECK(dserve::models::NormalizeNfc(nfc) == nfc, "NFC not idempotent");
  (void)dserve::models::HtmlUnescape(decoded);
  return 0;
}
