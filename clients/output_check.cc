#include "clients/output_check.h"

#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace dserve::clients {

absl::Status CheckOutputPath(const std::string& out) {
  if (out.empty()) {
    return absl::InvalidArgumentError("--out: must name a file");
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path path(out);
  if (fs::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--out=", out, " is a directory; name a file in it, e.g. ", out,
        "/image.png"));
  }
  const fs::path parent =
      path.has_parent_path() ? path.parent_path() : fs::path(".");
  if (!fs::exists(parent, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--out=", out, ": directory ", parent.string(),
        " does not exist (create it first)"));
  }
  if (!fs::is_directory(parent, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--out=", out, ": ", parent.string(), " is not a directory"));
  }
  if (access(parent.c_str(), W_OK | X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--out=", out, ": directory ", parent.string(),
        " is not writable by this user"));
  }
  if (fs::exists(path, ec) && access(path.c_str(), W_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("--out=", out, ": the file exists and is not writable"));
  }
  return absl::OkStatus();
}

}  // namespace dserve::clients
