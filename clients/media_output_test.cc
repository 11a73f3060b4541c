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
