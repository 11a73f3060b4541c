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

// Writes every Media of `result` (their bytes verbatim: PNG files, or the raw
// float32 tensor) and returns the paths written, in frame order. Fails with
// INVALID_ARGUMENT when `out` is empty or the result has no media, and with
// the I/O error (naming the path) when a file cannot be written.
absl::StatusOr<std::vector<std::string>> WriteResultMedia(
    const dserve::v1::Result& result, const std::string& out);

}  // namespace dserve::clients

#endif  // DSERVE_CLIENTS_MEDIA_OUTPUT_H_
