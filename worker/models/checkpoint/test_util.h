#ifndef DSERVE_WORKER_MODELS_CHECKPOINT_TEST_UTIL_H_
#define DSERVE_WORKER_MODELS_CHECKPOINT_TEST_UTIL_H_

// Test helpers: a per-test scratch directory and running Debian's
// /usr/bin/python3 on a tool from the runfiles. Blocking; not thread-safe.

#include <string>

namespace dserve::models::checkpoint::testing {

// $TEST_TMPDIR/<name> (or /tmp/<name>), created empty.
std::string FreshDir(const std::string& name);

// Runs `/usr/bin/python3 <script> <args>` (script relative to the workspace
// root, as Bazel runfiles lay it out); returns its exit status and appends
// its combined output to *output.
int RunPython(const std::string& script, const std::string& args,
              std::string* output);

}  // namespace dserve::models::checkpoint::testing

#endif  // DSERVE_WORKER_MODELS_CHECKPOINT_TEST_UTIL_H_
