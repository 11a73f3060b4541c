#include "clients/media_output.h"

#include <cctype>
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

bool IsMp4Path(const std::string& path) {
  if (path.size() < 4) return false;
  std::string tail = path.substr(path.size() - 4);
  for (char& c : tail) c = static_cast<char>(std::tolower(c));
  return tail == ".mp4";
}

absl::Status MediaAssembler::Add(const dserve::v1::MediaChunk& chunk) {
  constexpr int64_t kMaxMediaBytes = int64_t{4} << 30;
  if (chunk.media_index() < 0 || chunk.media_index() > 100000 ||
      chunk.total_bytes() < 0 || chunk.total_bytes() > kMaxMediaBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "media chunk for media ", chunk.media_index(), " of ",
        chunk.total_bytes(), " bytes is out of range"));
  }
  if (parts_.size() <= static_cast<size_t>(chunk.media_index())) {
    parts_.resize(chunk.media_index() + 1);
  }
  std::string& part = parts_[chunk.media_index()];
  if (chunk.offset() != static_cast<int64_t>(part.size()) ||
      chunk.offset() + static_cast<int64_t>(chunk.data().size()) >
          chunk.total_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "media chunk for media ", chunk.media_index(), " at offset ",
        chunk.offset(), " (", chunk.data().size(), " bytes of ",
        chunk.total_bytes(), ") does not continue the ", part.size(),
        " bytes received"));
  }
  if (part.empty()) part.reserve(static_cast<size_t>(chunk.total_bytes()));
  part.append(chunk.data());
  return absl::OkStatus();
}

absl::Status MediaAssembler::Complete(dserve::v1::Result* result) {
  for (int i = 0; i < result->media_size(); ++i) {
    dserve::v1::Media* media = result->mutable_media(i);
    if (media->chunked_size() <= 0) continue;
    if (static_cast<size_t>(i) >= parts_.size() ||
        static_cast<int64_t>(parts_[i].size()) != media->chunked_size()) {
      return absl::DataLossError(absl::StrCat(
          "media ", i, ": received ",
          static_cast<size_t>(i) < parts_.size() ? parts_[i].size() : 0,
          " of its ", media->chunked_size(), " bytes"));
    }
    media->set_data(std::move(parts_[i]));
    media->set_chunked_size(0);
  }
  parts_.clear();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> WriteResultMedia(
    const dserve::v1::Result& result, const std::string& out) {
  if (out.empty()) {
    return absl::InvalidArgumentError("--out is empty; give a file path");
  }
  if (result.media_size() == 0) {
    return absl::InvalidArgumentError("the server's result has no media");
  }
  for (const dserve::v1::Media& media : result.media()) {
    if (media.data().empty() && media.chunked_size() > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the result's media bytes (", media.chunked_size(),
          " bytes) were not sent in this reply: it is too large for one "
          "message; use `watch JOB --out FILE`, which streams them"));
    }
    if (IsMp4Path(out) && media.mime_type() != "video/mp4") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--out ", out, " names an MP4 file but the result is ",
          media.mime_type(),
          "; ask for a video with --format mp4 or use another file name"));
    }
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
