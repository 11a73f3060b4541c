#include "worker/models/text/prompt_clean.h"

#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace dserve::models {
namespace {

// Wan's sample_neg_prompt (wan/configs/shared_config.py), exactly.
constexpr char kWanNegativePrompt[] =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，"
    "整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，"
    "画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

TEST(PromptCleanTest, WanNegativePromptCommasBecomeAscii) {
  const std::string in = kWanNegativePrompt;
  ASSERT_EQ(in.size(), 403u);
  ASSERT_EQ(DecodeUtf8(in).size(), 137u);
  const std::string out = CleanPrompt(in);
  EXPECT_EQ(out.find("，"), std::string::npos);
  EXPECT_EQ(out.rfind("色调艳丽,过曝,静态,", 0), 0u) << out;
  // 27 U+FF0C (3 bytes) became ',' (1 byte); nothing else changed.
  EXPECT_EQ(out.size(), 403u - 27u * 2u);
  EXPECT_EQ(DecodeUtf8(out).size(), 137u);
}

TEST(PromptCleanTest, EachFixer) {
  EXPECT_EQ(CleanPrompt("  a \t b\n\nc  "), "a b c");
  EXPECT_EQ(CleanPrompt("Ｈｉ！　ｶﾞ"), "Hi! ガ");
  EXPECT_EQ(CleanPrompt("\xE2\x80\x9Cq\xE2\x80\x9D \xE2\x80\x99"), "\"q\" '");
  EXPECT_EQ(CleanPrompt("ﬁne ﬂour"), "fine flour");
  EXPECT_EQ(CleanPrompt("Tom &amp;amp; Jerry &lt;3"), "Tom & Jerry <3");
  EXPECT_EQ(CleanPrompt("&NTILDE; &notit; &#x4e2d;"), "Ñ ¬it; 中");
  EXPECT_EQ(CleanPrompt("\x1b[31mred\x1b[0m"), "red");
  EXPECT_EQ(CleanPrompt(std::string("a\0b\x7f", 4)), "ab");
  EXPECT_EQ(CleanPrompt("e\xCC\x81"), "\xC3\xA9");  // e + U+0301 -> é
  EXPECT_EQ(CleanPrompt("\xC2\x80"), "\xE2\x82\xAC");  // C1 0x80 -> €
  EXPECT_EQ(CleanPrompt(""), "");
}

TEST(PromptCleanTest, InvalidUtf8IsReplacedNotFatal) {
  EXPECT_EQ(CleanPrompt("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(CleanPrompt("\xE2\x82"), "\xEF\xBF\xBD");
  EXPECT_EQ(CleanPrompt("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(PromptCleanTest, NfcOfHangulIsAlgorithmic) {
  EXPECT_EQ(NormalizeNfc(U"\u1100\u1161\u11A8"), U"\uAC01");
  EXPECT_EQ(NormalizeNfc(U"\uAC00\u11A8"), U"\uAC01");
  EXPECT_EQ(NormalizeNfc(U"\u212B"), U"\u00C5");  // singleton
}

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return out;
}

// Python's answers (gen_clean_golden.py), for every piece and the whole.
TEST(PromptCleanTest, MatchesPythonGolden) {
  std::ifstream in("worker/models/text/testdata/clean_golden.tsv");
  ASSERT_TRUE(in) << "testdata/clean_golden.tsv not in the runfiles";
  std::map<std::string, int> counts, failures;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string kind, in_hex, want_hex;
    std::getline(fields, kind, '\t');
    std::getline(fields, in_hex, '\t');
    std::getline(fields, want_hex, '\t');
    const std::string input = FromHex(in_hex), want = FromHex(want_hex);
    std::string got;
    if (kind == "utf8") {
      got = EncodeUtf8(DecodeUtf8(input));
    } else if (kind == "nfc") {
      got = EncodeUtf8(NormalizeNfc(DecodeUtf8(input)));
    } else if (kind == "html") {
      got = EncodeUtf8(HtmlUnescape(DecodeUtf8(input)));
    } else if (kind == "collapse") {
      got = EncodeUtf8(CollapseWhitespace(DecodeUtf8(input)));
    } else if (kind == "clean") {
      got = CleanPrompt(input);
    } else {
      FAIL() << "unknown kind " << kind;
    }
    ++counts[kind];
    if (got != want && ++failures[kind] <= 5) {
      ADD_FAILURE() << kind << " input hex " << in_hex << "\n  want " << want
                    << "\n  got  " << got;
    }
  }
  for (const char* kind : {"utf8", "nfc", "html", "collapse", "clean"}) {
    EXPECT_GT(counts[kind], 100) << kind;
    EXPECT_EQ(failures[kind], 0) << kind << " of " << counts[kind];
  }
}

}  // namespace
}  // namespace dserve::models
