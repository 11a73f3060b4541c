#ifndef DSERVE_COMMON_TESTING_PROC_STATUS_H_
#define DSERVE_COMMON_TESTING_PROC_STATUS_H_

// Test-only: one "<Field>:  <n> kB" line of /proc/<pid>/status (Linux), for
// the tests that bound a process's memory (VmRSS, VmHWM).
// Reads the file on every call; thread-safe.

#include <sys/types.h>

#include <cstdint>

#include "absl/strings/string_view.h"

namespace dserve::common::testing {

// `field` of process `pid` (0 = this process) in KiB, e.g.
// ProcStatusKib(0, "VmRSS"); -1 when the process or the field is not there.
int64_t ProcStatusKib(pid_t pid, absl::string_view field);

}  // namespace dserve::common::testing

#endif  // DSERVE_COMMON_TESTING_PROC_STATUS_H_
