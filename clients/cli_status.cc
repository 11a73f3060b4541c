#include "clients/cli_status.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace dserve::clients {
namespace {

struct CodeInfo {
  const char* name;
  // What the person at the terminal should do next; empty when the name says
  // enough.
  const char* hint;
};

// Indexed by google.rpc.Code number (0..16).
constexpr CodeInfo kCodes[] = {
    {"OK", ""},
    {"CANCELLED", "the job was cancelled"},
    {"UNKNOWN", "unexpected server error"},
    {"INVALID_ARGUMENT", "fix the request"},
    {"DEADLINE_EXCEEDED", "raise --timeout_s or ask for less work"},
    {"NOT_FOUND", "check the name with `dserve models` or `dserve jobs`"},
    {"ALREADY_EXISTS", ""},
    {"PERMISSION_DENIED", ""},
    {"RESOURCE_EXHAUSTED", "the server is busy; retry later"},
    {"FAILED_PRECONDITION", ""},
    {"ABORTED", "retry"},
    {"OUT_OF_RANGE", "fix the request"},
    {"UNIMPLEMENTED", "the server does not support this call"},
    {"INTERNAL", "server bug; see the server log"},
    {"UNAVAILABLE", "server unreachable or draining; check --server or retry"},
    {"DATA_LOSS", ""},
    {"UNAUTHENTICATED", ""},
};
constexpr int kNumCodes = sizeof(kCodes) / sizeof(kCodes[0]);
constexpr int kUnknownCode = 2;
// Non-OK exit codes are this plus the google.rpc.Code number.
constexpr int kStatusExitBase = 10;

bool IsKnownCode(int code) { return code >= 0 && code < kNumCodes; }

}  // namespace

int ExitCodeForStatusCode(int code) {
  if (code == 0) return kExitOk;
  if (!IsKnownCode(code)) code = kUnknownCode;
  return kStatusExitBase + code;
}

int ExitCodeForStatusCode(grpc::StatusCode code) {
  return ExitCodeForStatusCode(static_cast<int>(code));
}

std::string StatusCodeName(int code) {
  if (!IsKnownCode(code)) return absl::StrCat("CODE_", code);
  return kCodes[code].name;
}

std::string DescribeStatus(int code, const std::string& message) {
  std::string line = absl::StrCat("error: ", StatusCodeName(code));
  if (!message.empty()) absl::StrAppend(&line, ": ", message);
  const char* hint = IsKnownCode(code) ? kCodes[code].hint : "";
  if (hint[0] != '\0') absl::StrAppend(&line, " (", hint, ")");
  // One line: a server message with newlines would break scripts that read
  // stderr line by line.
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return line;
}

std::string DescribeStatus(const grpc::Status& status) {
  if (status.ok()) return "ok";
  return DescribeStatus(static_cast<int>(status.error_code()),
                        status.error_message());
}

}  // namespace dserve::clients
