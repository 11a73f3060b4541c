#include "clients/media_output.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::clients {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream data;
  data << file.rdbuf();
  return data.str();
}

std::string TempDir() {
  // Bazel gives every test a private scratch directory.
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

TEST(FramePathTest, SingleFrameKeepsPath) {
  EXPECT_EQ(FramePath("out.png", 0, 1), "out.png");
  EXPECT_EQ(FramePath("dir/out", 0, 1), "dir/out");
}

TEST(FramePathTest, SeveralFramesGetSuffixBeforeExtension) {
  EXPECT_EQ(FramePath("out.png", 0, 3), "out_0000.png");
  EXPECT_EQ(FramePath("out.png", 12, 16), "out_0012.png");
  EXPECT_EQ(FramePath("a/b/out.tar.png", 1, 2), "a/b/out.tar_0001.png");
}

TEST(FramePathTest, NoExtensionOrDotInDirectory) {
  EXPECT_EQ(FramePath("out", 2, 3), "out_0002");
  EXPECT_EQ(FramePath("my.dir/out", 2, 3), "my.dir/out_0002");
  EXPECT_EQ(FramePath("dir/.hidden", 1, 2), "dir/.hidden_0001");
}

dserve::v1::Result MakeResult(int frames) {
  dserve::v1::Result result;
  for (int i = 0; i < frames; ++i) {
    dserve::v1::Media* media = result.add_media();
    media->set_mime_type("image/png");
    media->set_data(std::string("frame") + std::to_string(i) + '\0' + "end");
    media->set_frame_index(i);
  }
  return result;
}

TEST(WriteResultMediaTest, WritesOneFileVerbatim) {
  const std::string out = TempDir() + "/single.png";
  const dserve::v1::Result result = MakeResult(1);
  auto written = WriteResultMedia(result, out);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_THAT(*written, ElementsAre(out));
  EXPECT_EQ(ReadFile(out), result.media(0).data());
}

TEST(WriteResultMediaTest, WritesOneFilePerFrame) {
  const std::string out = TempDir() + "/video.png";
  const dserve::v1::Result result = MakeResult(3);
  auto written = WriteResultMedia(result, out);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_THAT(*written, ElementsAre(TempDir() + "/video_0000.png",
                                    TempDir() + "/video_0001.png",
                                    TempDir() + "/video_0002.png"));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ReadFile((*written)[i]), result.media(i).data());
  }
}

TEST(WriteResultMediaTest, ErrorsNameTheProblem) {
  EXPECT_EQ(WriteResultMedia(MakeResult(1), "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteResultMedia(MakeResult(0), TempDir() + "/x.png")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  const std::string bad = TempDir() + "/no/such/dir/x.png";
  auto written = WriteResultMedia(MakeResult(1), bad);
  ASSERT_FALSE(written.ok());
  EXPECT_THAT(std::string(written.status().message()), HasSubstr(bad));
}

}  // namespace
}  // namespace dserve::clients

namespace dserve::clients {
namespace {

TEST(WriteResultMediaTest, NeverPngBytesUnderAnMp4Name) {
  dserve::v1::Result result;
  auto* png = result.add_media();
  png->set_mime_type("image/png");
  png->set_data("\x89PNG");
  auto written = WriteResultMedia(result, "/tmp/clip.MP4");
  ASSERT_FALSE(written.ok());
  EXPECT_THAT(std::string(written.status().message()),
              ::testing::HasSubstr("--format mp4"));
  EXPECT_TRUE(IsMp4Path("a/b.mp4"));
  EXPECT_FALSE(IsMp4Path("a.mp4/b.png"));
}

TEST(WriteResultMediaTest, RefusesMediaWhoseBytesWereLeftOut) {
  dserve::v1::Result result;
  auto* big = result.add_media();
  big->set_mime_type("video/mp4");
  big->set_chunked_size(5 << 20);
  auto written = WriteResultMedia(result, "/tmp/clip.mp4");
  ASSERT_FALSE(written.ok());
  EXPECT_THAT(std::string(written.status().message()),
              ::testing::HasSubstr("watch JOB --out"));
}

TEST(MediaAssemblerTest, ReassemblesChunksInOrder) {
  MediaAssembler assembler;
  const std::string bytes = "0123456789";
  for (int offset = 0; offset < 10; offset += 4) {
    dserve::v1::MediaChunk chunk;
    chunk.set_media_index(1);
    chunk.set_offset(offset);
    chunk.set_total_bytes(10);
    chunk.set_data(bytes.substr(offset, 4));
    ASSERT_TRUE(assembler.Add(chunk).ok());
  }
  dserve::v1::Result result;
  result.add_media()->set_data("inline");
  result.add_media()->set_chunked_size(10);
  ASSERT_TRUE(assembler.Complete(&result).ok());
  EXPECT_EQ(result.media(0).data(), "inline");
  EXPECT_EQ(result.media(1).data(), bytes);
  EXPECT_EQ(result.media(1).chunked_size(), 0);
}

TEST(MediaAssemblerTest, RefusesGapsOverflowAndMissingBytes) {
  MediaAssembler assembler;
  dserve::v1::MediaChunk chunk;
  chunk.set_media_index(0);
  chunk.set_offset(4);  // gap: nothing received yet
  chunk.set_total_bytes(10);
  chunk.set_data("abcd");
  EXPECT_EQ(assembler.Add(chunk).code(), absl::StatusCode::kInvalidArgument);
  chunk.set_offset(0);
  chunk.set_data(std::string(11, 'x'));  // beyond total_bytes
  EXPECT_EQ(assembler.Add(chunk).code(), absl::StatusCode::kInvalidArgument);
  chunk.set_data("abcd");
  ASSERT_TRUE(assembler.Add(chunk).ok());
  dserve::v1::Result result;
  result.add_media()->set_chunked_size(10);
  EXPECT_EQ(assembler.Complete(&result).code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace dserve::clients
