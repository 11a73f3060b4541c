#include "worker/models/checkpoint/pth_reader.h"

#include <string>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "worker/models/checkpoint/test_util.h"
#include "worker/models/safetensors.h"

namespace dserve::models::checkpoint {
namespace {

using ::testing::HasSubstr;

// Archives written by Debian's python3-torch at test time.
class PthReaderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::FreshDir("pth_cases"));
    std::string out;
    ASSERT_EQ(testing::RunPython("tools/wan/make_pth_cases.py", *dir_, &out),
              0)
        << out;
  }
  static std::string Path(const std::string& name) {
    return *dir_ + "/" + name;
  }
  static std::string* dir_;
};
std::string* PthReaderTest::dir_ = nullptr;

void ExpectSameAsExpected(const WeightMap& got, const std::string& expected) {
  absl::StatusOr<WeightMap> want = ReadSafetensors(expected);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_EQ(got.size(), want->size());
  for (const auto& [key, w] : *want) {
    ASSERT_TRUE(got.count(key)) << key;
    const at::Tensor& g = got.at(key);
    EXPECT_EQ(g.scalar_type(), w.scalar_type()) << key;
    EXPECT_EQ(g.sizes(), w.sizes()) << key;
    EXPECT_TRUE(at::equal(g, w)) << key;
  }
}

TEST_F(PthReaderTest, StateDictMatchesTorchsValues) {
  absl::StatusOr<WeightMap> got = ReadPth(Path("state.pth"));
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSameAsExpected(*got, Path("expected.safetensors"));
  // Views keep torch's strides and share their storage's bytes.
  EXPECT_EQ(got->at("shared.transposed").strides(), at::IntArrayRef({1, 8}));
  EXPECT_FALSE(got->at("shared.transposed").is_contiguous());
  EXPECT_EQ(got->at("shared.cols").strides(), at::IntArrayRef({8, 2}));
  EXPECT_EQ(got->at("shared.rows").data_ptr<float>(),
            got->at("shared.full").data_ptr<float>() + 8);
}

TEST_F(PthReaderTest, Zip64DirectoryReadsTheSame) {
  absl::StatusOr<WeightMap> got = ReadPth(Path("state_zip64.pth"));
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSameAsExpected(*got, Path("expected.safetensors"));
}

TEST_F(PthReaderTest, PlainDictAndKeyFilter) {
  absl::StatusOr<WeightMap> got = ReadPth(Path("plain_dict.pth"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(at::equal(got->at("a"), at::ones({2, 2})));
  EXPECT_TRUE(at::equal(got->at("b"), at::arange(3, at::kInt)));
  absl::StatusOr<WeightMap> some = ReadPth(
      Path("state.pth"),
      [](const std::string& key) { return key.rfind("shared.", 0) == 0; });
  ASSERT_TRUE(some.ok()) << some.status();
  EXPECT_EQ(some->size(), 4u);
}

TEST_F(PthReaderTest, ParametersReadAsTheirTensors) {
  absl::StatusOr<WeightMap> got = ReadPth(Path("parameters.pth"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(at::equal(got->at("p"), at::arange(4, at::kFloat)));
  EXPECT_TRUE(at::equal(got->at("t"), at::ones({1})));
}

TEST_F(PthReaderTest, TensorsOutliveTheMap) {
  at::Tensor kept;
  {
    absl::StatusOr<WeightMap> got = ReadPth(Path("plain_dict.pth"));
    ASSERT_TRUE(got.ok());
    kept = got->at("a");
  }
  EXPECT_TRUE(at::equal(kept, at::ones({2, 2})));
}

TEST_F(PthReaderTest, CompressedEntriesAreRefusedByName) {
  absl::StatusOr<WeightMap> got = ReadPth(Path("compressed.pth"));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(got.status().message(), HasSubstr("compressed"));
  EXPECT_THAT(got.status().message(), HasSubstr("state/"));
}

TEST_F(PthReaderTest, NonStateDictsAreRefused) {
  absl::StatusOr<WeightMap> list = ReadPth(Path("not_a_dict.pth"));
  EXPECT_FALSE(list.ok());
  EXPECT_THAT(list.status().message(), HasSubstr("not_a_dict.pth"));
  absl::StatusOr<WeightMap> foreign = ReadPth(Path("foreign_global.pth"));
  EXPECT_EQ(foreign.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(foreign.status().message(), HasSubstr("NotATensor"));
}

// Found by fuzz/pth_fuzzer: the storage's byte count overflowed 64 bits,
// passed the size check, and the view was mapped past the record and file.
TEST_F(PthReaderTest, StorageSizeOverflowIsRefused) {
  absl::StatusOr<WeightMap> got = ReadPth(Path("storage_overflow.pth"));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(got.status().message(), HasSubstr("tensor \"w\""));
  EXPECT_THAT(got.status().message(), HasSubstr("4611686018427387904"));
}

// Found by fuzz/pth_fuzzer (a leak): a memoised container appended to
// itself is a reference cycle; the reader refuses it and frees it (the
// fuzzer's seed fuzz/corpus/pth_fuzzer/repro_self_list runs under
// LeakSanitizer on every CI run).
TEST_F(PthReaderTest, SelfReferencesAreRefused) {
  absl::StatusOr<WeightMap> list = ReadPth(Path("self_list.pth"));
  EXPECT_EQ(list.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(list.status().message(),
              HasSubstr("entry \"loop\" is a list, expected a tensor"));
  absl::StatusOr<WeightMap> dict = ReadPth(Path("self_dict.pth"));
  EXPECT_EQ(dict.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(dict.status().message(),
              HasSubstr("entry \"self\" is a dict, expected a tensor"));
}

// A list nested a million deep is refused, and freeing it does not recurse
// once per level (which overflowed the stack).
TEST_F(PthReaderTest, DeepNestingIsRefusedWithoutRecursion) {
  absl::StatusOr<WeightMap> got = ReadPth(Path("deep_nesting.pth"));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(got.status().message(), HasSubstr("is a list"));
}

TEST_F(PthReaderTest, NotAZipAndMissingFile) {
  EXPECT_EQ(ReadPth(Path("nope.pth")).status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<WeightMap> st = ReadPth(Path("expected.safetensors"));
  EXPECT_EQ(st.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(st.status().message(), HasSubstr("expected.safetensors"));
}

}  // namespace
}  // namespace dserve::models::checkpoint
