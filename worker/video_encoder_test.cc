#include "worker/video_encoder.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::worker {
namespace {

std::string Shell(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  pclose(pipe);
  return out;
}

std::string WriteTemp(const std::string& name, const std::string& bytes) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = absl::StrCat(dir ? dir : "/tmp", "/", name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// A moving diagonal gradient: frame f, pixel (y, x).
std::vector<uint8_t> Frames(int frames, int width, int height) {
  std::vector<uint8_t> rgb(static_cast<size_t>(frames) * width * height * 3);
  size_t i = 0;
  for (int f = 0; f < frames; ++f) {
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        rgb[i++] = static_cast<uint8_t>((x * 255) / width);
        rgb[i++] = static_cast<uint8_t>((y * 255) / height);
        rgb[i++] = static_cast<uint8_t>((f * 40) % 256);
      }
    }
  }
  return rgb;
}

struct Probe {
  std::string codec, pix_fmt, rate;
  int width = 0, height = 0, frames = 0;
};

Probe FfProbe(const std::string& path) {
  const std::string out = Shell(absl::StrCat(
      "ffprobe -v error -select_streams v:0 -count_frames -show_entries "
      "stream=codec_name,width,height,pix_fmt,r_frame_rate,nb_read_frames "
      "-of default=noprint_wrappers=1 '",
      path, "' 2>&1"));
  Probe p;
  size_t start = 0;
  while (start < out.size()) {
    size_t end = out.find('\n', start);
    if (end == std::string::npos) end = out.size();
    const std::string line = out.substr(start, end - start);
    const size_t eq = line.find('=');
    if (eq != std::string::npos) {
      const std::string k = line.substr(0, eq), v = line.substr(eq + 1);
      if (k == "codec_name") p.codec = v;
      if (k == "pix_fmt") p.pix_fmt = v;
      if (k == "r_frame_rate") p.rate = v;
      if (k == "width") p.width = std::atoi(v.c_str());
      if (k == "height") p.height = std::atoi(v.c_str());
      if (k == "nb_read_frames") p.frames = std::atoi(v.c_str());
    }
    start = end + 1;
  }
  return p;
}

TEST(VideoEncoderTest, FfprobeReadsFramesSizeCodecAndFps) {
  const std::vector<uint8_t> rgb = Frames(17, 64, 48);
  absl::StatusOr<std::string> mp4 = EncodeMp4(rgb.data(), 17, 64, 48, 16);
  ASSERT_TRUE(mp4.ok()) << mp4.status();
  EXPECT_EQ(mp4->substr(4, 4), "ftyp");
  const Probe p = FfProbe(WriteTemp("a.mp4", *mp4));
  EXPECT_EQ(p.codec, "h264");
  EXPECT_EQ(p.pix_fmt, "yuv420p");
  EXPECT_EQ(p.width, 64);
  EXPECT_EQ(p.height, 48);
  EXPECT_EQ(p.frames, 17);
  EXPECT_EQ(p.rate, "16/1");
}

TEST(VideoEncoderTest, DecodedPixelsMatchTheInput) {
  const int w = 64, h = 48, n = 5;
  const std::vector<uint8_t> rgb = Frames(n, w, h);
  absl::StatusOr<std::string> mp4 = EncodeMp4(rgb.data(), n, w, h, 24);
  ASSERT_TRUE(mp4.ok()) << mp4.status();
  const std::string path = WriteTemp("b.mp4", *mp4);
  const std::string decoded = Shell(absl::StrCat(
      "ffmpeg -v error -i '", path, "' -f rawvideo -pix_fmt rgb24 - 2>/dev/null"));
  ASSERT_EQ(decoded.size(), rgb.size());
  double err = 0;
  for (size_t i = 0; i < rgb.size(); ++i) {
    err += std::abs(static_cast<int>(static_cast<uint8_t>(decoded[i])) -
                    static_cast<int>(rgb[i]));
  }
  // CRF 18 on yuv420p: a few levels of mean error on a smooth gradient.
  EXPECT_LT(err / rgb.size(), 4.0);
}

TEST(VideoEncoderTest, OddSizesArePaddedToEven) {
  const std::vector<uint8_t> rgb = Frames(3, 33, 17);
  absl::StatusOr<std::string> mp4 = EncodeMp4(rgb.data(), 3, 33, 17, 8);
  ASSERT_TRUE(mp4.ok()) << mp4.status();
  const Probe p = FfProbe(WriteTemp("c.mp4", *mp4));
  EXPECT_EQ(p.width, 34);
  EXPECT_EQ(p.height, 18);
  EXPECT_EQ(p.frames, 3);
  EXPECT_EQ(p.rate, "8/1");
}

TEST(VideoEncoderTest, TinyAndSingleFrame) {
  const std::vector<uint8_t> rgb = Frames(1, 4, 4);
  absl::StatusOr<std::string> mp4 = EncodeMp4(rgb.data(), 1, 4, 4, 16);
  ASSERT_TRUE(mp4.ok()) << mp4.status();
  const Probe p = FfProbe(WriteTemp("d.mp4", *mp4));
  EXPECT_EQ(p.frames, 1);
  EXPECT_EQ(p.width, 4);
}

TEST(VideoEncoderTest, RefusesWhatCannotBeEncoded) {
  const std::vector<uint8_t> rgb = Frames(1, 4, 4);
  EXPECT_EQ(EncodeMp4(rgb.data(), 0, 4, 4, 16).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeMp4(rgb.data(), 1, 1, 4, 16).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeMp4(rgb.data(), 1, 4, 4, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dserve::worker
