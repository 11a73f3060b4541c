#include "worker/media_encoder.h"

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/png.h"
#include "worker/video_encoder.h"
#include <ATen/ATen.h>

namespace dserve::worker {
namespace {

absl::Status CheckFrames(const at::Tensor& pixels) {
  if (pixels.dim() != 4 || pixels.size(3) != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("pixels must be [frames, height, width, 3], got ",
                     std::string(c10::str(pixels.sizes()))));
  }
  if (!pixels.is_floating_point()) {
    return absl::InvalidArgumentError("pixels must be a floating-point tensor");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<dserve::v1::Media> EncodePngFrame(const at::Tensor& frame,
                                                 int frame_index) {
  if (frame.dim() != 3 || frame.size(2) != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("frame must be [height, width, 3], got ",
                     std::string(c10::str(frame.sizes()))));
  }
  // Round to nearest so that 0.5/255 steps land on the same byte everywhere.
  at::Tensor rgb = frame.to(at::kFloat)
                       .clamp(0.0, 1.0)
                       .mul(255.0)
                       .round()
                       .to(at::kByte)
                       .contiguous();
  const int height = static_cast<int>(rgb.size(0));
  const int width = static_cast<int>(rgb.size(1));
  absl::StatusOr<std::string> png =
      common::EncodePng(rgb.data_ptr<uint8_t>(), width, height);
  if (!png.ok()) return png.status();
  dserve::v1::Media media;
  media.set_mime_type(kPngMimeType);
  media.set_data(*std::move(png));
  media.set_width(width);
  media.set_height(height);
  media.set_frame_index(frame_index);
  return media;
}

absl::StatusOr<std::vector<dserve::v1::Media>> EncodeMedia(
    const at::Tensor& pixels, dserve::v1::OutputFormat output_format,
    int fps) {
  if (absl::Status s = CheckFrames(pixels); !s.ok()) return s;
  std::vector<dserve::v1::Media> out;
  switch (output_format) {
    case dserve::v1::OUTPUT_FORMAT_UNSPECIFIED:
    case dserve::v1::OUTPUT_FORMAT_PNG: {
      for (int64_t f = 0; f < pixels.size(0); ++f) {
        absl::StatusOr<dserve::v1::Media> media =
            EncodePngFrame(pixels[f], static_cast<int>(f));
        if (!media.ok()) return media.status();
        out.push_back(*std::move(media));
      }
      return out;
    }
    case dserve::v1::OUTPUT_FORMAT_RAW_TENSOR: {
      // x86/ARM hosts are little-endian, which is what the format promises.
      at::Tensor values = pixels.to(at::kFloat).clamp(0.0, 1.0).contiguous();
      dserve::v1::Media media;
      media.set_mime_type(kRawTensorMimeType);
      media.set_data(std::string(static_cast<const char*>(values.data_ptr()),
                                 values.numel() * sizeof(float)));
      media.set_width(static_cast<int>(values.size(2)));
      media.set_height(static_cast<int>(values.size(1)));
      media.set_frame_index(0);
      for (int64_t d : values.sizes()) media.add_shape(d);
      out.push_back(std::move(media));
      return out;
    }
    case dserve::v1::OUTPUT_FORMAT_MP4: {
      // The same rounding as the PNG frames, so a decoded video differs from
      // them only by the H.264 / yuv420p loss.
      at::Tensor rgb = pixels.to(at::kFloat)
                           .clamp(0.0, 1.0)
                           .mul(255.0)
                           .round()
                           .to(at::kByte)
                           .contiguous();
      const int frames = static_cast<int>(rgb.size(0));
      const int height = static_cast<int>(rgb.size(1));
      const int width = static_cast<int>(rgb.size(2));
      absl::StatusOr<std::string> mp4 =
          EncodeMp4(rgb.data_ptr<uint8_t>(), frames, width, height, fps);
      if (!mp4.ok()) return mp4.status();
      dserve::v1::Media media;
      media.set_mime_type(kMp4MimeType);
      media.set_data(*std::move(mp4));
      media.set_width(width);
      media.set_height(height);
      media.set_frame_index(0);
      media.set_num_frames(frames);
      media.set_fps(fps);
      out.push_back(std::move(media));
      return out;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("output_format=", static_cast<int>(output_format),
                       " is not supported; allowed OUTPUT_FORMAT_PNG (1), "
                       "OUTPUT_FORMAT_RAW_TENSOR (2) or OUTPUT_FORMAT_MP4 (3)"));
  }
}

}  // namespace dserve::worker
