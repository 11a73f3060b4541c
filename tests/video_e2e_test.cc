// MP4 output end to end: a real server and worker generate a 5-frame video
// of the default model; ffprobe reads it back (codec, size, frames, fps) and
// its decoded frames match the same request's RAW_TENSOR frames up to the
// H.264 / yuv420p loss.

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "tests/testing/rpc_helpers.h"
#include "tests/testing/server_process.h"

namespace dserve::tests {
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

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir ? dir : "/tmp", "/", name);
}

TEST(VideoE2eTest, FiveFrameMp4MatchesTheRawFrames) {
  ServerProcess::Options options;
  options.replicas = 1;
  auto server = ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = dserve::v1::DiffusionService::NewStub((*server)->channel());
  auto model = DefaultModel(*stub);
  ASSERT_TRUE(model.ok()) << model.status();

  dserve::v1::GenerateRequest request = SmallRequest(*model, 32, 2);
  request.set_num_frames(5);
  request.set_output_format(dserve::v1::OUTPUT_FORMAT_MP4);
  request.set_fps(8);
  const GenerateOutcome video =
      GenerateToEnd(*stub, request, absl::Seconds(120));
  ASSERT_TRUE(video.status.ok()) << video.status.error_message();
  ASSERT_NE(video.result(), nullptr);
  ASSERT_EQ(video.result()->media_size(), 1);
  const dserve::v1::Media& mp4 = video.result()->media(0);
  EXPECT_EQ(mp4.mime_type(), "video/mp4");
  EXPECT_EQ(mp4.num_frames(), 5);
  EXPECT_EQ(mp4.fps(), 8);
  EXPECT_EQ(video.result()->effective_request().fps(), 8);
  const std::string path = TempPath("clip.mp4");
  std::ofstream(path, std::ios::binary) << mp4.data();

  const std::string probe = Shell(absl::StrCat(
      "ffprobe -v error -select_streams v:0 -count_frames -show_entries "
      "stream=codec_name,width,height,pix_fmt,r_frame_rate,nb_read_frames "
      "-of default=noprint_wrappers=1 '",
      path, "'"));
  EXPECT_NE(probe.find("codec_name=h264"), std::string::npos) << probe;
  EXPECT_NE(probe.find("width=32"), std::string::npos) << probe;
  EXPECT_NE(probe.find("height=32"), std::string::npos) << probe;
  EXPECT_NE(probe.find("pix_fmt=yuv420p"), std::string::npos) << probe;
  EXPECT_NE(probe.find("r_frame_rate=8/1"), std::string::npos) << probe;
  EXPECT_NE(probe.find("nb_read_frames=5"), std::string::npos) << probe;

  request.set_output_format(dserve::v1::OUTPUT_FORMAT_RAW_TENSOR);
  const GenerateOutcome raw = GenerateToEnd(*stub, request, absl::Seconds(120));
  ASSERT_TRUE(raw.status.ok()) << raw.status.error_message();
  const dserve::v1::Media& tensor = raw.result()->media(0);
  ASSERT_EQ(tensor.shape_size(), 4);
  EXPECT_EQ(tensor.shape(0), 5);
  const size_t values = 5 * 32 * 32 * 3;
  ASSERT_EQ(tensor.data().size(), values * sizeof(float));
  const std::string decoded = Shell(absl::StrCat(
      "ffmpeg -v error -i '", path, "' -f rawvideo -pix_fmt rgb24 -"));
  ASSERT_EQ(decoded.size(), values);
  double err = 0;
  for (size_t i = 0; i < values; ++i) {
    float v;
    std::memcpy(&v, tensor.data().data() + i * sizeof(float), sizeof(float));
    err += std::abs(std::round(v * 255.0f) -
                    static_cast<float>(static_cast<uint8_t>(decoded[i])));
  }
  // The same seed gives the same frames; what differs is the H.264 loss
  // (CRF 18, 4:2:0 chroma), a few 8-bit levels on average.
  EXPECT_LT(err / values, 12.0);

  absl::StatusOr<int> code = (*server)->Stop();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace dserve::tests
