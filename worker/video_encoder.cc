#include "worker/video_encoder.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

namespace dserve::worker {
namespace {

std::string AvError(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, text, sizeof(text));
  return text;
}

absl::Status AvFailed(const char* call, int code) {
  return absl::InternalError(
      absl::StrCat("MP4 encoding: ", call, " failed: ", AvError(code)));
}

// A seekable in-memory file for the MP4 muxer (it seeks back to patch box
// sizes once the frames are written).
struct MemoryFile {
  std::string data;
  int64_t pos = 0;

  static int Write(void* opaque, uint8_t* buf, int size) {
    auto* f = static_cast<MemoryFile*>(opaque);
    const size_t end = static_cast<size_t>(f->pos) + size;
    if (end > f->data.size()) f->data.resize(end);
    std::memcpy(&f->data[static_cast<size_t>(f->pos)], buf, size);
    f->pos += size;
    return size;
  }
  static int Read(void* opaque, uint8_t* buf, int size) {
    auto* f = static_cast<MemoryFile*>(opaque);
    const int64_t left = static_cast<int64_t>(f->data.size()) - f->pos;
    if (left <= 0) return AVERROR_EOF;
    const int n = static_cast<int>(std::min<int64_t>(left, size));
    std::memcpy(buf, f->data.data() + f->pos, n);
    f->pos += n;
    return n;
  }
  static int64_t Seek(void* opaque, int64_t offset, int whence) {
    auto* f = static_cast<MemoryFile*>(opaque);
    const int64_t size = static_cast<int64_t>(f->data.size());
    switch (whence & ~AVSEEK_FORCE) {
      case AVSEEK_SIZE:
        return size;
      case SEEK_SET:
        f->pos = offset;
        break;
      case SEEK_CUR:
        f->pos += offset;
        break;
      case SEEK_END:
        f->pos = size + offset;
        break;
      default:
        return -1;
    }
    return f->pos;
  }
};

struct FormatDeleter {
  void operator()(AVFormatContext* c) const {
    if (c == nullptr) return;
    if (c->pb != nullptr) {
      av_freep(&c->pb->buffer);
      avio_context_free(&c->pb);
    }
    avformat_free_context(c);
  }
};
struct CodecDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsDeleter {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};

// Sends `frame` (null = flush) and writes every packet the encoder has.
absl::Status EncodeAndMux(AVCodecContext* codec, AVFrame* frame,
                          AVFormatContext* format, AVStream* stream,
                          AVPacket* packet) {
  int rc = avcodec_send_frame(codec, frame);
  if (rc < 0) return AvFailed("avcodec_send_frame", rc);
  while (true) {
    rc = avcodec_receive_packet(codec, packet);
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return absl::OkStatus();
    if (rc < 0) return AvFailed("avcodec_receive_packet", rc);
    av_packet_rescale_ts(packet, codec->time_base, stream->time_base);
    packet->stream_index = stream->index;
    rc = av_interleaved_write_frame(format, packet);
    if (rc < 0) return AvFailed("av_interleaved_write_frame", rc);
  }
}

}  // namespace

absl::StatusOr<std::string> EncodeMp4(const uint8_t* rgb, int frames,
                                      int width, int height, int fps) {
  if (frames < 1 || width < 2 || height < 2 || width > 16384 ||
      height > 16384) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MP4 encoding: ", frames, " frames of ", width, "x", height,
        " cannot be encoded (allowed: at least 1 frame of 2x2 to 16384x16384)"));
  }
  if (fps < 1 || fps > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("MP4 encoding: fps ", fps, " is out of range (1..1000)"));
  }
  // libx264 reports every encode at info level; keep worker logs quiet.
  static std::once_flag quiet;
  std::call_once(quiet, [] { av_log_set_level(AV_LOG_ERROR); });
  const int even_w = width + (width & 1);
  const int even_h = height + (height & 1);

  const AVCodec* h264 = avcodec_find_encoder_by_name("libx264");
  if (h264 == nullptr) h264 = avcodec_find_encoder(AV_CODEC_ID_H264);
  if (h264 == nullptr) {
    return absl::FailedPreconditionError(
        "MP4 encoding: this libavcodec has no H.264 encoder (Debian's "
        "libavcodec59 brings libx264)");
  }
  AVFormatContext* raw_format = nullptr;
  int rc = avformat_alloc_output_context2(&raw_format, nullptr, "mp4", nullptr);
  if (rc < 0 || raw_format == nullptr) {
    return AvFailed("avformat_alloc_output_context2", rc);
  }
  std::unique_ptr<AVFormatContext, FormatDeleter> format(raw_format);
  MemoryFile file;
  constexpr int kIoBuffer = 1 << 16;
  auto* io_buffer = static_cast<unsigned char*>(av_malloc(kIoBuffer));
  format->pb = avio_alloc_context(io_buffer, kIoBuffer, /*write_flag=*/1,
                                  &file, &MemoryFile::Read, &MemoryFile::Write,
                                  &MemoryFile::Seek);
  if (format->pb == nullptr) {
    av_free(io_buffer);
    return absl::ResourceExhaustedError("MP4 encoding: avio_alloc_context");
  }
  format->flags |= AVFMT_FLAG_CUSTOM_IO;

  std::unique_ptr<AVCodecContext, CodecDeleter> codec(
      avcodec_alloc_context3(h264));
  if (codec == nullptr) {
    return absl::ResourceExhaustedError("MP4 encoding: avcodec_alloc_context3");
  }
  codec->width = even_w;
  codec->height = even_h;
  codec->pix_fmt = AV_PIX_FMT_YUV420P;
  codec->time_base = AVRational{1, fps};
  codec->framerate = AVRational{fps, 1};
  codec->gop_size = std::max(1, fps);
  codec->max_b_frames = 2;
  if (format->oformat->flags & AVFMT_GLOBALHEADER) {
    codec->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  }
  av_opt_set(codec->priv_data, "preset", "veryfast", 0);
  av_opt_set(codec->priv_data, "crf", "18", 0);
  rc = avcodec_open2(codec.get(), h264, nullptr);
  if (rc < 0) return AvFailed("avcodec_open2", rc);

  AVStream* stream = avformat_new_stream(format.get(), nullptr);
  if (stream == nullptr) {
    return absl::ResourceExhaustedError("MP4 encoding: avformat_new_stream");
  }
  stream->time_base = codec->time_base;
  stream->avg_frame_rate = codec->framerate;
  rc = avcodec_parameters_from_context(stream->codecpar, codec.get());
  if (rc < 0) return AvFailed("avcodec_parameters_from_context", rc);

  rc = avformat_write_header(format.get(), nullptr);
  if (rc < 0) return AvFailed("avformat_write_header", rc);

  std::unique_ptr<SwsContext, SwsDeleter> sws(sws_getContext(
      even_w, even_h, AV_PIX_FMT_RGB24, even_w, even_h, AV_PIX_FMT_YUV420P,
      SWS_BICUBIC, nullptr, nullptr, nullptr));
  std::unique_ptr<AVFrame, FrameDeleter> frame(av_frame_alloc());
  std::unique_ptr<AVPacket, PacketDeleter> packet(av_packet_alloc());
  if (sws == nullptr || frame == nullptr || packet == nullptr) {
    return absl::ResourceExhaustedError(
        "MP4 encoding: sws_getContext/av_frame_alloc/av_packet_alloc");
  }
  frame->format = AV_PIX_FMT_YUV420P;
  frame->width = even_w;
  frame->height = even_h;
  rc = av_frame_get_buffer(frame.get(), 0);
  if (rc < 0) return AvFailed("av_frame_get_buffer", rc);

  // One padded RGB frame: odd sizes repeat their last column / row.
  std::vector<uint8_t> padded(static_cast<size_t>(even_w) * even_h * 3);
  const size_t frame_bytes = static_cast<size_t>(width) * height * 3;
  for (int f = 0; f < frames; ++f) {
    const uint8_t* src = rgb + frame_bytes * f;
    for (int y = 0; y < even_h; ++y) {
      const uint8_t* row = src + static_cast<size_t>(std::min(y, height - 1)) *
                                     width * 3;
      uint8_t* out = padded.data() + static_cast<size_t>(y) * even_w * 3;
      std::memcpy(out, row, static_cast<size_t>(width) * 3);
      if (even_w != width) std::memcpy(out + width * 3, row + (width - 1) * 3, 3);
    }
    rc = av_frame_make_writable(frame.get());
    if (rc < 0) return AvFailed("av_frame_make_writable", rc);
    const uint8_t* planes[1] = {padded.data()};
    const int strides[1] = {even_w * 3};
    sws_scale(sws.get(), planes, strides, 0, even_h, frame->data,
              frame->linesize);
    frame->pts = f;
    if (absl::Status s = EncodeAndMux(codec.get(), frame.get(), format.get(),
                                      stream, packet.get());
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = EncodeAndMux(codec.get(), nullptr, format.get(), stream,
                                    packet.get());
      !s.ok()) {
    return s;
  }
  rc = av_write_trailer(format.get());
  if (rc < 0) return AvFailed("av_write_trailer", rc);
  avio_flush(format->pb);
  return std::move(file.data);
}

}  // namespace dserve::worker
