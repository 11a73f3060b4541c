#include "clients/media_output.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dserve::clients {

std::string FramePath(const std::string& out, int frame_index, int num_media) {
  if (num_media <= 1) return out;
  const size_t slash = out.find_last_of('/');
  const size_t base_start = slash == std::string::npos ? 0 : slash + 1;
  size_t dot = out.find_last_of('.');
  // A dot in a directory name or a leading dot (".png", a hidden file) is not
  // an extension.
  if (dot == std::string::npos || dot <= base_start) dot = out.size();
  return absl::StrCat(out.substr(0, dot), absl::StrFormat("_%04d", frame_index),
                      out.substr(dot));
}

absl::StatusOr<std::vector<std::string>> WriteResultMedia(
    const dserve::v1::Result& result, const std::string& out) {
  if (out.empty()) {
    return absl::InvalidArgumentError("--out is empty; give a file path");
  }
  if (result.media_size() == 0) {
    return absl::InvalidArgumentError("the server's result has no media");
  }
  std::vector<std::string> written;
  const int n = result.media_size();
  for (int i = 0; i < n; ++i) {
    const dserve::v1::Media& media = result.media(i);
    // Files are numbered by position (the server sends frames in order), so
    // a server that leaves frame_index unset cannot make two frames collide.
    const std::string path = FramePath(out, i, n);
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    if (!file) {
      return absl::UnavailableError(
          absl::StrCat("cannot open ", path, " for writing: ",
                       std::strerror(errno)));
    }
    file.write(media.data().data(),
               static_cast<std::streamsize>(media.data().size()));
    file.close();
    if (!file) {
      return absl::DataLossError(
          absl::StrCat("failed writing ", media.data().size(), " bytes to ",
                       path, ": ", std::strerror(errno)));
    }
    written.push_back(path);
  }
  return written;
}

}  // namespace dserve::clients
