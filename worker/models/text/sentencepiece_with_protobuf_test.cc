// The SentencePiece tokenizer in a process that links LibTorch and
// libprotobuf 3.21 (the worker's situation). Linking libsentencepiece
// directly here crashed before main; through the deep-bound shim it works
// and matches python3-sentencepiece's golden ids.

#include <dlfcn.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "proto/dserve/v1/diffusion_service.pb.h"
#include "worker/models/text/sentencepiece_model.h"
#include "worker/models/text/umt5_tokenizer.h"

namespace dserve::models {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kModel[] = "worker/models/text/testdata/umt5_test_spm.model";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return out;
}

TEST(SentencePieceWithProtobufTest, PromptThroughProtobufAndTorch) {
  // The prompt travels as a real (3.21) protobuf message, as in the worker.
  v1::GenerateRequest request;
  request.set_prompt("A cat walks on the grass.");
  std::string wire;
  ASSERT_TRUE(request.SerializeToString(&wire));
  v1::GenerateRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire));

  auto tok = Umt5Tokenizer::Load(kModel);
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto tokens = (*tok)->Encode(parsed.prompt(), 512);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_THAT(tokens->ids,
              ElementsAre(12, 24, 59, 52, 4, 22, 8, 45, 71, 4, 4, 6, 1));

  const at::Tensor ids = at::tensor(tokens->ids, at::kLong);
  EXPECT_EQ(ids.size(0), 13);
  EXPECT_EQ(ids.sum().item<int64_t>(), 12 + 24 + 59 + 52 + 4 + 22 + 8 + 45 +
                                           71 + 4 + 4 + 6 + 1);
}

TEST(SentencePieceWithProtobufTest, MatchesGoldenIds) {
  auto tok = Umt5Tokenizer::Load(kModel);
  ASSERT_TRUE(tok.ok()) << tok.status();
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
    auto got = mode == "raw" ? (*tok)->Encode(text, std::stoi(max_len))
                             : (*tok)->EncodePrompt(text, std::stoi(max_len));
    ASSERT_TRUE(got.ok()) << got.status();
    ++cases;
    if ((got->ids != want ||
         got->untruncated_length != std::stoll(untruncated)) &&
        ++failures <= 5) {
      ADD_FAILURE() << mode << " max_len " << max_len << " text '" << text
                    << "': want " << ids_text;
    }
  }
  EXPECT_GT(cases, 800);
  EXPECT_EQ(failures, 0) << "of " << cases;
}

TEST(SentencePieceWithProtobufTest, SentencePieceSymbolsStayLocal) {
  auto model = SentencePieceModel::Load(ReadFile(kModel));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->piece_size(), 400);
  EXPECT_EQ((*model)->IdToPiece((*model)->eos_id()), "</s>");
  // Loaded RTLD_LOCAL: neither the shim nor libsentencepiece's (embedded
  // protobuf's) symbols are visible to the rest of the process.
  EXPECT_EQ(dlsym(RTLD_DEFAULT, "dserve_spm_load"), nullptr);
  EXPECT_EQ(
      dlsym(RTLD_DEFAULT, "_ZN13sentencepiece22SentencePieceProcessorC1Ev"),
      nullptr);
}

TEST(SentencePieceWithProtobufTest, ShimErrorsNameThePath) {
  auto missing = SentencePieceModel::Load(ReadFile(kModel),
                                          "/nonexistent/libdserve_spm_shim.so");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("/nonexistent/libdserve_spm_shim.so"));
  // A real shared object without the shim's symbols.
  auto wrong = SentencePieceModel::Load(ReadFile(kModel), "libm.so.6");
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(std::string(wrong.status().message()),
              HasSubstr("libm.so.6: no symbol dserve_spm_abi_version"));
  auto garbage = SentencePieceModel::Load("not a model");
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dserve::models
