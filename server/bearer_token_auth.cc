#include "server/bearer_token_auth.h"

#include <fstream>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"

namespace dserve::server {
namespace {

// Compares in time that depends only on the lengths, so the token cannot be
// guessed byte by byte from response times.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

}  // namespace

BearerTokenAuth::BearerTokenAuth(std::string token) : token_(std::move(token)) {}

absl::Status BearerTokenAuth::Check(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const {
  if (token_.empty()) return absl::OkStatus();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError(
        "missing \"authorization: Bearer <token>\" metadata; this server "
        "requires the token from its --auth_token_file");
  }
  const absl::string_view value(it->second.data(), it->second.size());
  absl::string_view presented = value;
  // The scheme name is case-insensitive (RFC 7235 section 2.1).
  if (presented.size() < 7 ||
      !absl::EqualsIgnoreCase(presented.substr(0, 7), "Bearer ")) {
    return absl::UnauthenticatedError(
        "the authorization metadata must be \"Bearer <token>\"");
  }
  presented.remove_prefix(7);
  if (!ConstantTimeEquals(presented, token_)) {
    return absl::UnauthenticatedError("the bearer token is not valid");
  }
  return absl::OkStatus();
}

std::string CallerPrincipal(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return "anonymous";
  absl::string_view presented(it->second.data(), it->second.size());
  // Scheme names are case-insensitive (RFC 7235).
  if (presented.size() < 7 ||
      !absl::EqualsIgnoreCase(presented.substr(0, 7), "Bearer ")) {
    return "anonymous";
  }
  presented.remove_prefix(7);
  return absl::StrCat("bearer:",
                      absl::Hex(absl::Hash<absl::string_view>{}(presented),
                                absl::kZeroPad16));
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path,
                                          const std::string& flag) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", path, ": cannot read the file"));
  }
  std::string line;
  std::getline(in, line);
  const std::string token(absl::StripAsciiWhitespace(line));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, "=", path, ": the first line holds no token"));
  }
  return token;
}

}  // namespace dserve::server
