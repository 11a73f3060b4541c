#include "worker/models/safetensors.h"

#include <cstdio>
#include <fstream>
#include <string>

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dserve::models {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

WeightMap SampleWeights() {
  at::manual_seed(7);
  WeightMap w;
  w["a.f32"] = at::randn({3, 4});
  w["b.f16"] = at::randn({5}).to(at::kHalf);
  w["c.bf16"] = at::randn({2, 2, 2}).to(at::kBFloat16);
  w["d.i64"] = at::arange(6, at::kLong).view({2, 3}) - 2;
  w["e.scalar"] = at::tensor(3.5f).view({});
  w["f.empty"] = at::zeros({0, 3});
  return w;
}

TEST(SafetensorsTest, RoundTripKeepsDtypeShapeAndValues) {
  const std::string path = TempPath("round_trip.safetensors");
  WeightMap w = SampleWeights();
  ASSERT_TRUE(WriteSafetensors(w, path, {{"format", "pt"}}).ok());
  absl::StatusOr<WeightMap> back = ReadSafetensors(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), w.size());
  for (const auto& [key, t] : w) {
    ASSERT_TRUE(back->count(key)) << key;
    const at::Tensor& r = back->at(key);
    EXPECT_EQ(r.scalar_type(), t.scalar_type()) << key;
    EXPECT_EQ(r.sizes(), t.sizes()) << key;
    EXPECT_TRUE(at::equal(r, t)) << key;
  }
  absl::StatusOr<std::map<std::string, std::string>> meta =
      ReadSafetensorsMetadata(path);
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->at("format"), "pt");
}

TEST(SafetensorsTest, LayoutMatchesTheSpec) {
  const std::string path = TempPath("layout.safetensors");
  WeightMap w;
  w["x"] = at::tensor({1.0f, 2.0f});
  ASSERT_TRUE(WriteSafetensors(w, path).ok());
  const std::string bytes = ReadAll(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  ASSERT_EQ(bytes.size(), 8 + n + 8);
  const std::string header = bytes.substr(8, n);
  EXPECT_THAT(header, HasSubstr("\"dtype\":\"F32\""));
  EXPECT_THAT(header, HasSubstr("\"shape\":[2]"));
  EXPECT_THAT(header, HasSubstr("\"data_offsets\":[0,8]"));
  float values[2];
  std::memcpy(values, bytes.data() + 8 + n, 8);
  EXPECT_EQ(values[0], 1.0f);
  EXPECT_EQ(values[1], 2.0f);
}

TEST(SafetensorsTest, SameWeightsGiveSameBytes) {
  const std::string a = TempPath("same_a.safetensors");
  const std::string b = TempPath("same_b.safetensors");
  ASSERT_TRUE(WriteSafetensors(SampleWeights(), a).ok());
  ASSERT_TRUE(WriteSafetensors(SampleWeights(), b).ok());
  EXPECT_EQ(ReadAll(a), ReadAll(b));
}

TEST(SafetensorsTest, CorruptHeaderIsDataLossNamingTheFile) {
  const std::string path = TempPath("corrupt.safetensors");
  WeightMap w;
  w["layer.weight"] = at::ones({4});
  ASSERT_TRUE(WriteSafetensors(w, path).ok());
  std::string bytes = ReadAll(path);
  bytes[8] = '#';  // first byte of the JSON header
  WriteAll(path, bytes);
  absl::StatusOr<WeightMap> r = ReadSafetensors(path);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(r.status().message(), HasSubstr(path));
}

TEST(SafetensorsTest, HeaderLengthBeyondFileIsRejected) {
  const std::string path = TempPath("long_header.safetensors");
  std::string bytes(16, ' ');
  const uint64_t n = 1000;
  std::memcpy(bytes.data(), &n, 8);
  WriteAll(path, bytes);
  absl::StatusOr<WeightMap> r = ReadSafetensors(path);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(r.status().message(), HasSubstr("header length 1000"));
}

TEST(SafetensorsTest, WrongByteCountNamesTheKey) {
  const std::string path = TempPath("bad_offsets.safetensors");
  const std::string header =
      R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})";
  std::string bytes(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  bytes += header + std::string(8, '\0');
  WriteAll(path, bytes);
  absl::StatusOr<WeightMap> r = ReadSafetensors(path);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(r.status().message(), HasSubstr("\"w\""));
  EXPECT_THAT(r.status().message(), HasSubstr("need 12"));
}

// Found by fuzz/safetensors_fuzzer (UBSan): with a 0 dim the element count
// stays 0, but the other dims' contiguous strides overflowed int64.
TEST(SafetensorsTest, HugeDimsBesideAZeroDimAreTooLarge) {
  const std::string path = TempPath("zero_dim.safetensors");
  const std::string header =
      R"({"w":{"dtype":"F32","shape":[0,1099511627776,1099511627776,)"
      R"(1099511627776],"data_offsets":[0,0]}})";
  std::string bytes(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  bytes += header;
  WriteAll(path, bytes);
  absl::StatusOr<WeightMap> r = ReadSafetensors(path);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(r.status().message(), HasSubstr("shape is too large"));
  EXPECT_THAT(r.status().message(), HasSubstr("\"w\""));
}

TEST(SafetensorsTest, ShardedIndexLoadsEveryShard) {
  WeightMap w = SampleWeights();
  WeightMap first, second;
  for (const auto& [key, t] : w) (key < "c" ? first : second)[key] = t;
  ASSERT_TRUE(WriteSafetensors(first, TempPath("shard-1.safetensors")).ok());
  ASSERT_TRUE(WriteSafetensors(second, TempPath("shard-2.safetensors")).ok());
  std::string index = "{\"metadata\": {}, \"weight_map\": {";
  bool comma = false;
  for (const auto& [key, t] : w) {
    index += (comma ? ", \"" : "\"") + key + "\": \"" +
             (key < "c" ? "shard-1" : "shard-2") + ".safetensors\"";
    comma = true;
  }
  index += "}}";
  WriteAll(TempPath("model.safetensors.index.json"), index);
  absl::StatusOr<WeightMap> back =
      ReadSafetensorsIndex(TempPath("model.safetensors.index.json"));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), w.size());
  for (const auto& [key, t] : w) EXPECT_TRUE(at::equal(back->at(key), t)) << key;

  // A key the index puts in the wrong shard is named.
  WriteAll(TempPath("bad.index.json"),
           R"({"weight_map": {"a.f32": "shard-2.safetensors"}})");
  absl::StatusOr<WeightMap> bad = ReadSafetensorsIndex(TempPath("bad.index.json"));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(bad.status().message(), HasSubstr("\"a.f32\""));
  EXPECT_THAT(bad.status().message(), HasSubstr("shard-2.safetensors"));
}

TEST(SafetensorsTest, ReadTensorsViewTheMappedFileAndOutliveIt) {
  const std::string path = TempPath("mapped.safetensors");
  WeightMap w = SampleWeights();
  ASSERT_TRUE(WriteSafetensors(w, path).ok());
  at::Tensor kept;
  {
    absl::StatusOr<WeightMap> back = ReadSafetensors(path);
    ASSERT_TRUE(back.ok()) << back.status();
    kept = back->at("a.f32");
  }
  // The map is gone; the tensor still holds the mapping.
  std::remove(path.c_str());
  EXPECT_TRUE(at::equal(kept, w.at("a.f32")));
  // In-place writes are copy-on-write, never reaching the file.
  ASSERT_TRUE(WriteSafetensors(w, path).ok());
  {
    absl::StatusOr<WeightMap> back = ReadSafetensors(path);
    ASSERT_TRUE(back.ok());
    back->at("a.f32").add_(1.0f);
  }
  absl::StatusOr<WeightMap> again = ReadSafetensors(path);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(at::equal(again->at("a.f32"), w.at("a.f32")));
}

TEST(SafetensorsTest, KeyFilterSelectsKeys) {
  const std::string path = TempPath("filter.safetensors");
  ASSERT_TRUE(WriteSafetensors(SampleWeights(), path).ok());
  absl::StatusOr<WeightMap> back = ReadSafetensors(
      path, [](const std::string& key) { return key[0] == 'c'; });
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 1u);
  EXPECT_TRUE(back->count("c.bf16"));
}

TEST(SafetensorsTest, IndexShardOutsideTheDirectoryIsRefused) {
  for (const std::string shard :
       {"../escape.safetensors", "/etc/passwd", "sub/../../x.safetensors",
        ".."}) {
    WriteAll(TempPath("escape.index.json"),
             "{\"weight_map\": {\"k\": \"" + shard + "\"}}");
    absl::StatusOr<WeightMap> r =
        ReadSafetensorsIndex(TempPath("escape.index.json"));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << shard;
    EXPECT_THAT(r.status().message(), HasSubstr("\"" + shard + "\""));
  }
}

TEST(SafetensorsTest, MisalignedTensorIsCopiedWithItsValues) {
  const std::string path = TempPath("misaligned.safetensors");
  std::string header =
      R"({"pad":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
      R"("x":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string bytes(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  const float values[2] = {1.5f, -2.0f};
  bytes += header + std::string("\x07\x09", 2) +
           std::string(reinterpret_cast<const char*>(values), 8);
  WriteAll(path, bytes);
  absl::StatusOr<WeightMap> r = ReadSafetensors(path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(at::equal(r->at("x"), at::tensor({1.5f, -2.0f})));
  EXPECT_EQ(r->at("pad")[1].item<uint8_t>(), 9);
}

TEST(SafetensorsTest, MissingFileIsNotFound) {
  EXPECT_EQ(ReadSafetensors(TempPath("nope.safetensors")).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dserve::models
