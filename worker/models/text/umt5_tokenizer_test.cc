#include "worker/models/text/umt5_tokenizer.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dserve::models {
namespace {

using ::testing::ElementsAre;

constexpr char kModel[] = "worker/models/text/testdata/umt5_test_spm.model";

std::unique_ptr<Umt5Tokenizer> LoadTestModel() {
  auto tokenizer = Umt5Tokenizer::Load(kModel);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? std::move(*tokenizer) : nullptr;
}

TEST(Umt5TokenizerTest, GoldenIdsOfTheInTreeModel) {
  auto tok = LoadTestModel();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->piece_size(), 400);
  EXPECT_EQ(tok->eos_id(), 1);
  EXPECT_EQ(tok->pad_id(), 0);
  auto a = tok->Encode("A cat walks on the grass.", 512);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(a->ids, ElementsAre(12, 24, 59, 52, 4, 22, 8, 45, 71, 4, 4, 6, 1));
  EXPECT_EQ(a->length(), 13);
  EXPECT_FALSE(a->truncated());
  auto cjk = tok->Encode("一只猫在草地上散步", 512);
  ASSERT_TRUE(cjk.ok());
  EXPECT_THAT(cjk->ids, ElementsAre(195, 166, 51, 165, 276, 64, 301, 306, 1));
  auto empty = tok->Encode("", 512);
  ASSERT_TRUE(empty.ok());
  EXPECT_THAT(empty->ids, ElementsAre(1));
}

TEST(Umt5TokenizerTest, TruncationKeepsEosWithinMaxLen) {
  auto tok = LoadTestModel();
  ASSERT_NE(tok, nullptr);
  auto t = tok->Encode("A cat walks on the grass.", 5);
  ASSERT_TRUE(t.ok());
  EXPECT_THAT(t->ids, ElementsAre(12, 24, 59, 52, 1));
  EXPECT_EQ(t->untruncated_length, 13);
  EXPECT_TRUE(t->truncated());
  auto one = tok->Encode("A cat", 1);
  ASSERT_TRUE(one.ok());
  EXPECT_THAT(one->ids, ElementsAre(1));
  EXPECT_FALSE(tok->Encode("A cat", 0).ok());
}

TEST(Umt5TokenizerTest, LoadErrorsNameThePath) {
  auto missing = Umt5Tokenizer::Load("/nonexistent/spiece.model");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()),
              ::testing::HasSubstr("/nonexistent/spiece.model"));
  auto garbage = Umt5Tokenizer::FromSerializedModel("not a model", "junk.model");
  ASSERT_FALSE(garbage.ok());
  EXPECT_THAT(std::string(garbage.status().message()),
              ::testing::HasSubstr("junk.model"));
}

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return out;
}

// python3-sentencepiece's ids (gen_tokenizer_golden.py) for raw text and for
// Wan's cleaning + tokenization, at several max_len.
TEST(Umt5TokenizerTest, MatchesPythonSentencePiece) {
  auto tok = LoadTestModel();
  ASSERT_NE(tok, nullptr);
  std::ifstream in("worker/models/text/testdata/tokenizer_golden.tsv");
  ASSERT_TRUE(in) << "testdata/tokenizer_golden.tsv not in the runfiles";
  int cases = 0, failures = 0;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string mode, max_len, hex, ids_text, untruncated;
    std::getline(fields, mode, '\t');
    std::getline(fields, max_len, '\t');
    std::getline(fields, hex, '\t');
    std::getline(fields, ids_text, '\t');
    std::getline(fields, untruncated, '\t');
    std::vector<int64_t> want;
    std::istringstream id_stream(ids_text);
    for (int64_t id; id_stream >> id;) want.push_back(id);
    const std::string text = FromHex(hex);
    auto got = mode == "raw" ? tok->Encode(text, std::stoi(max_len))
                             : tok->EncodePrompt(text, std::stoi(max_len));
    ASSERT_TRUE(got.ok()) << got.status();
    ++cases;
    if ((got->ids != want ||
         got->untruncated_length != std::stoll(untruncated)) &&
        ++failures <= 5) {
      ADD_FAILURE() << mode << " max_len " << max_len << " text '" << text
                    << "': want " << ids_text << " (" << untruncated << ")";
    }
  }
  EXPECT_GT(cases, 800);
  EXPECT_EQ(failures, 0) << "of " << cases;
}

}  // namespace
}  // namespace dserve::models
