#ifndef DSERVE_CLIENTS_MEDIA_OUTPUT_H_
#define DSERVE_CLIENTS_MEDIA_OUTPUT_H_

// Writes the media of a generation Result to files named after the user's
// --out path. A single frame goes to exactly --out; several frames go to
// --out with a zero-padded frame suffix before the extension:
//
//   out.png, 3 frames  ->  out_0000.png, out_0001.png, out_0002.png
//
// Thread-safety: free functions, safe from any thread.
// Blocking: WriteResultMedia does blocking file I/O.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/dserve/v1/diffusion_service.pb.h"

namespace dserve::clients {

// The file for frame `frame_index` of `num_media` items written to `out`.
// With one item the path is `out` unchanged. The suffix goes before the
// extension of the last path component only ("a.b/c" -> "a.b/c_0001").
std::string FramePath(const std::string& out, int frame_index, int num_media);

// Writes every Media of `result` (their bytes verbatim: PNG files, one MP4
// video, or the raw float32 tensor) and returns the paths written, in frame
// order. Fails with INVALID_ARGUMENT when `out` is empty, the result has no
// media, a media's bytes are missing (chunked_size set but data empty: a
// GetJob reply of a large result), or `out` ends in ".mp4" while the media
// are not video/mp4 (never PNG bytes under an .mp4 name); with the I/O
// error (naming the path) when a file cannot be written.
absl::StatusOr<std::vector<std::string>> WriteResultMedia(
    const dserve::v1::Result& result, const std::string& out);

// True when `path` ends in ".mp4" (any case).
bool IsMp4Path(const std::string& path);

// Reassembles media that arrived as MediaChunk events (see the proto): Add
// every chunk in stream order, then Complete the Result that follows them.
// Not thread-safe; nothing blocks.
class MediaAssembler {
 public:
  // INVALID_ARGUMENT for a chunk that does not continue its media where the
  // previous one ended, exceeds total_bytes, or announces more than 4 GiB.
  absl::Status Add(const dserve::v1::MediaChunk& chunk);
  // Moves the reassembled bytes into every Media of `result` that has
  // chunked_size > 0. DATA_LOSS when a media's bytes are incomplete.
  absl::Status Complete(dserve::v1::Result* result);
  bool empty() const { return parts_.empty(); }

 private:
  std::vector<std::string> parts_;
};

}  // namespace dserve::clients

#endif  // DSERVE_CLIENTS_MEDIA_OUTPUT_H_
