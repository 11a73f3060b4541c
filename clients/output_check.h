#ifndef DSERVE_CLIENTS_OUTPUT_CHECK_H_
#define DSERVE_CLIENTS_OUTPUT_CHECK_H_

// CheckOutputPath: is `--out` somewhere the CLI can write? Checked before a
// job is sent, so a typo in the directory costs nothing on the server
// instead of a whole generation whose result is then thrown away.
//
// Stateless and thread-safe; blocks on a few stat()/access() calls.

#include <string>

#include "absl/status/status.h"

namespace dserve::clients {

// OK when `out` names a file (existing or not) in an existing directory the
// process may write to. INVALID_ARGUMENT when `out` is empty or is a
// directory; FAILED_PRECONDITION when its directory is missing, is not a
// directory or is not writable. Messages name the path and what is wrong.
absl::Status CheckOutputPath(const std::string& out);

}  // namespace dserve::clients

#endif  // DSERVE_CLIENTS_OUTPUT_CHECK_H_
