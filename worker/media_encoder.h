#ifndef DSERVE_WORKER_MEDIA_ENCODER_H_
#define DSERVE_WORKER_MEDIA_ENCODER_H_

// Turns decoded pixels into the media a client receives: one PNG per frame,
// one raw little-endian float32 tensor for OUTPUT_FORMAT_RAW_TENSOR, or one
// H.264 MP4 video for OUTPUT_FORMAT_MP4 (video_encoder.h).
//
// Pure functions; thread-safe; block only for the encoding compute.

#include <vector>

#include "absl/status/statusor.h"
#include "proto/dserve/v1/diffusion_service.pb.h"
#include <ATen/core/Tensor.h>

namespace dserve::worker {

inline constexpr char kPngMimeType[] = "image/png";
inline constexpr char kRawTensorMimeType[] = "application/x-dserve-f32";

// `pixels` is one item's [F, H, W, 3] float tensor in [0, 1] (values outside
// are clamped). OUTPUT_FORMAT_UNSPECIFIED means PNG; a value this build
// does not know is INVALID_ARGUMENT naming it. `fps` is the MP4 frame rate
// (ignored otherwise).
absl::StatusOr<std::vector<dserve::v1::Media>> EncodeMedia(
    const at::Tensor& pixels, dserve::v1::OutputFormat output_format,
    int fps = 16);

// One [H, W, 3] float frame in [0, 1] as a PNG Media (previews).
absl::StatusOr<dserve::v1::Media> EncodePngFrame(const at::Tensor& frame,
                                                 int frame_index);

}  // namespace dserve::worker

#endif  // DSERVE_WORKER_MEDIA_ENCODER_H_
