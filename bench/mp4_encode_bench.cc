// mp4_encode_bench: wall time of worker::EncodeMp4 (libx264 veryfast, CRF 18,
// yuv420p) per frame, for a frame size and count, on smooth moving content
// (a gradient with a moving disc, roughly what a diffusion video looks like
// to the encoder).
//
//   bazel run -c opt //bench:mp4_encode_bench -- --width=832 --height=480 \
//       --frames=81 --repeats=3
//
// Prints one line per repeat and the best ms/frame.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "worker/video_encoder.h"

ABSL_FLAG(int, width, 832, "Frame width in pixels.");
ABSL_FLAG(int, height, 480, "Frame height in pixels.");
ABSL_FLAG(int, frames, 81, "Frames per video.");
ABSL_FLAG(int, fps, 16, "Frames per second.");
ABSL_FLAG(int, repeats, 3, "Videos to encode; the best is reported.");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int w = absl::GetFlag(FLAGS_width), h = absl::GetFlag(FLAGS_height);
  const int n = absl::GetFlag(FLAGS_frames);
  std::vector<uint8_t> rgb(static_cast<size_t>(n) * w * h * 3);
  size_t i = 0;
  for (int f = 0; f < n; ++f) {
    const double cx = w * (0.2 + 0.6 * f / std::max(1, n - 1)), cy = h / 2.0;
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        const bool disc = std::hypot(x - cx, y - cy) < h / 6.0;
        rgb[i++] = disc ? 230 : static_cast<uint8_t>(x * 255 / w);
        rgb[i++] = disc ? 40 : static_cast<uint8_t>(y * 255 / h);
        rgb[i++] = disc ? 40 : 128;
      }
    }
  }
  double best = 1e30;
  for (int r = 0; r < absl::GetFlag(FLAGS_repeats); ++r) {
    const absl::Time start = absl::Now();
    auto mp4 = dserve::worker::EncodeMp4(rgb.data(), n, w, h,
                                         absl::GetFlag(FLAGS_fps));
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
    if (!mp4.ok()) {
      std::fprintf(stderr, "%s\n", mp4.status().ToString().c_str());
      return 1;
    }
    std::printf("%dx%d x %d frames: %.1f ms (%.2f ms/frame), %zu bytes\n", w,
                h, n, ms, ms / n, mp4->size());
    best = std::min(best, ms / n);
  }
  std::printf("best: %.2f ms/frame\n", best);
  return 0;
}
