#ifndef DSERVE_WORKER_VIDEO_ENCODER_H_
#define DSERVE_WORKER_VIDEO_ENCODER_H_

// RGB frames → one H.264 (yuv420p, libx264, CRF 18) video in an MP4
// container, built in memory through Debian's libavcodec/libavformat (no
// temporary files). The index (moov) follows the frames: libavformat's
// +faststart needs to reopen a real file.
//
// yuv420p needs even sizes: an odd width or height is padded by one column
// or row that repeats the last one; the video is then that 1 pixel larger
// (Media.width/height still report the generated size).
//
// Pure function; thread-safe (each call owns its codec and muxer); blocks
// for the encoding compute.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace dserve::worker {

inline constexpr char kMp4MimeType[] = "video/mp4";

// `rgb` holds `frames` frames of height x width x 3 bytes, row-major RGB.
// INVALID_ARGUMENT for sizes below 2x2 or above 16384, no frames or fps
// outside 1..1000; INTERNAL naming the libav call that failed otherwise.
absl::StatusOr<std::string> EncodeMp4(const uint8_t* rgb, int frames,
                                      int width, int height, int fps);

}  // namespace dserve::worker

#endif  // DSERVE_WORKER_VIDEO_ENCODER_H_
