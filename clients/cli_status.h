#ifndef DSERVE_CLIENTS_CLI_STATUS_H_
#define DSERVE_CLIENTS_CLI_STATUS_H_

// How the dserve CLI reports the outcome of a call: one line for a person and
// one process exit code for a script. Every gRPC status code has its own exit
// code, so a script can tell "fix your request" (INVALID_ARGUMENT, 13) from
// "try again later" (RESOURCE_EXHAUSTED, 18; UNAVAILABLE, 24) without parsing
// text.
//
// Exit code table (documented in `dserve --help` and tested in
// cli_status_test.cc):
//
//   exit  meaning
//   ----  ---------------------------------------------------------------
//      0  OK
//      1  usage error (unknown command or flag, malformed flag value,
//         missing argument); 1 because absl's flag parser already exits 1
//         for an unknown flag or a value it cannot parse
//      3  local failure (could not write an output file, bad server reply)
//     11  CANCELLED            the job was cancelled (CancelJob, drain)
//     12  UNKNOWN
//     13  INVALID_ARGUMENT     a request field is out of range
//     14  DEADLINE_EXCEEDED    --timeout_s or the job's deadline passed
//     15  NOT_FOUND            unknown model or job id
//     16  ALREADY_EXISTS
//     17  PERMISSION_DENIED
//     18  RESOURCE_EXHAUSTED   the server's queue is full; retry later
//     19  FAILED_PRECONDITION
//     20  ABORTED
//     21  OUT_OF_RANGE
//     22  UNIMPLEMENTED
//     23  INTERNAL
//     24  UNAVAILABLE          server unreachable or draining; retry later
//     25  DATA_LOSS
//     26  UNAUTHENTICATED
//
// i.e. 10 + the google.rpc.Code number for every non-OK code. The codes stay
// below 64 so they never collide with sysexits.h or signal exits (128+n).
//
// Thread-safety: pure functions, safe from any thread. Nothing blocks.

#include <string>

#include <grpcpp/support/status.h>

namespace dserve::clients {

// Exit codes that do not come from a gRPC status.
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 1;
inline constexpr int kExitLocalFailure = 3;

// The exit code for a gRPC status code (table above). Codes outside the
// google.rpc.Code range map to UNKNOWN's exit code.
int ExitCodeForStatusCode(grpc::StatusCode code);

// The exit code for a status code carried as an int32 in a Job or JobEnded
// message (google.rpc.Code numbering).
int ExitCodeForStatusCode(int code);

// The canonical upper-case name of a status code, e.g. "INVALID_ARGUMENT".
// Unknown numbers give "CODE_<n>".
std::string StatusCodeName(int code);

// One line describing a failed call for a person, e.g.
//   "error: INVALID_ARGUMENT: width 7 is not a multiple of 8 (fix the
//    request)".
// The hint in parentheses says what the caller should do next. The server's
// message is kept verbatim because it names the field, value and range.
std::string DescribeStatus(const grpc::Status& status);
std::string DescribeStatus(int code, const std::string& message);

}  // namespace dserve::clients

#endif  // DSERVE_CLIENTS_CLI_STATUS_H_
