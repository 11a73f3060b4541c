#include "scheduler/device_probe.h"

#include <signal.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "scheduler/worker_process.h"

namespace dserve::scheduler {

absl::StatusOr<parallel::DeviceProbe> ParseProbeLine(const std::string& line) {
  absl::string_view rest = line;
  if (absl::ConsumePrefix(&rest, "cuda_devices ")) {
    const size_t space = rest.find(' ');
    const absl::string_view count = rest.substr(0, space);
    parallel::DeviceProbe probe;
    if (absl::SimpleAtoi(count, &probe.cuda_device_count) &&
        probe.cuda_device_count >= 0) {
      if (space != absl::string_view::npos) {
        probe.why_no_cuda = std::string(rest.substr(space + 1));
      }
      return probe;
    }
  }
  return absl::InternalError(absl::StrCat(
      "expected \"cuda_devices N [why]\" from --probe_devices, got \"", line,
      "\""));
}

absl::StatusOr<parallel::DeviceProbe> ProbeWorkerDevices(
    const std::string& worker_binary, absl::Duration timeout) {
  absl::StatusOr<std::unique_ptr<WorkerProcess>> child = WorkerProcess::Spawn(
      worker_binary, {"--probe_devices"}, /*with_ready_pipe=*/true);
  if (!child.ok()) return child.status();
  absl::StatusOr<std::string> line = (*child)->ReadLine(timeout);
  if (!line.ok()) {
    (*child)->Signal(SIGKILL);
    std::optional<std::string> how = (*child)->WaitFor(absl::Seconds(5));
    return absl::UnavailableError(absl::StrCat(
        "asking ", worker_binary, " --probe_devices which devices it can use: ",
        line.status().message(), how ? absl::StrCat(" (it ", *how, ")") : ""));
  }
  (*child)->WaitFor(absl::Seconds(5));
  return ParseProbeLine(*line);
}

}  // namespace dserve::scheduler
