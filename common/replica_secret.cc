#include "common/replica_secret.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace dserve::common {

absl::StatusOr<std::string> NewReplicaSecret() {
  char bytes[32];
  size_t filled = 0;
  while (filled < sizeof(bytes)) {
    const ssize_t n = getrandom(bytes + filled, sizeof(bytes) - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat(
          "getrandom for the replica secret failed: ", std::strerror(errno)));
    }
    filled += static_cast<size_t>(n);
  }
  return absl::BytesToHexString(absl::string_view(bytes, sizeof(bytes)));
}

bool SecretsEqual(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]);
  }
  return diff == 0;
}

std::string TakeSecretFromEnvironment(const char* name) {
  char* value = std::getenv(name);
  if (value == nullptr) return std::string();
  std::string secret(value);
  // getenv points into the process's original environment block, which is
  // what /proc/self/environ shows; unsetenv alone would leave it there.
  std::memset(value, 0, secret.size());
  unsetenv(name);
  return secret;
}

}  // namespace dserve::common
