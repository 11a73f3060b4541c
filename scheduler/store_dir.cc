#include "scheduler/store_dir.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/strip.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "spdlog/spdlog.h"

namespace dserve::scheduler {
namespace {

constexpr absl::string_view kPrefix = "dserve-replica";

}  // namespace

std::string DefaultStoreBase() {
  std::error_code ec;
  std::filesystem::path base = std::filesystem::temp_directory_path(ec);
  return ec ? std::string("/tmp") : base.string();
}

absl::StatusOr<std::string> MakeReplicaStoreDir(const std::string& base,
                                                int replica) {
  std::string path = (std::filesystem::path(base) /
                      absl::StrCat(kPrefix, replica, "-p", getpid(),
                                   "-XXXXXX"))
                         .string();
  if (mkdtemp(path.data()) == nullptr) {
    return absl::InternalError(absl::StrCat(
        "replica ", replica, ": cannot create a private directory for its "
        "store under ", base, ": ", std::strerror(errno)));
  }
  return path;
}

int StoreDirOwnerPid(const std::string& name) {
  // dserve-replica<digits>-p<digits>-<6 mkdtemp characters>
  absl::string_view rest(name);
  if (!absl::ConsumePrefix(&rest, kPrefix)) return -1;
  const size_t dash = rest.find('-');
  if (dash == 0 || dash == absl::string_view::npos) return -1;
  int replica = 0;
  if (!absl::SimpleAtoi(rest.substr(0, dash), &replica) || replica < 0) {
    return -1;
  }
  rest.remove_prefix(dash + 1);
  if (!absl::ConsumePrefix(&rest, "p")) return -1;
  const size_t end = rest.find('-');
  if (end == 0 || end == absl::string_view::npos ||
      rest.size() - end - 1 != 6) {
    return -1;
  }
  for (char c : rest.substr(0, end)) {
    if (c < '0' || c > '9') return -1;
  }
  int pid = 0;
  if (!absl::SimpleAtoi(rest.substr(0, end), &pid) || pid <= 0) return -1;
  return pid;
}

int RemoveStaleReplicaStoreDirs(const std::string& base) {
  int removed = 0;
  std::error_code ec;
  std::filesystem::directory_iterator it(base, ec);
  if (ec) {
    spdlog::warn("cannot list {} for stale replica stores: {}", base,
                 ec.message());
    return 0;
  }
  for (const std::filesystem::directory_entry& entry : it) {
    const std::string name = entry.path().filename().string();
    const int pid = StoreDirOwnerPid(name);
    if (pid < 0) continue;
    struct stat st;
    // lstat: a symlink with a matching name is not ours to follow.
    if (lstat(entry.path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
        st.st_uid != geteuid()) {
      continue;
    }
    if (kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive, or unknown
    std::filesystem::remove_all(entry.path(), ec);
    if (ec) {
      spdlog::warn("cannot remove stale replica store {}: {}",
                   entry.path().string(), ec.message());
      continue;
    }
    spdlog::info("removed {}, left by server pid {} which no longer runs",
                 entry.path().string(), pid);
    ++removed;
  }
  return removed;
}

}  // namespace dserve::scheduler
