#ifndef DSERVE_SCHEDULER_DEVICE_PROBE_H_
#define DSERVE_SCHEDULER_DEVICE_PROBE_H_

// What devices the ranks will be able to use, asked of the dserve_worker
// binary itself (`dserve_worker --probe_devices`): it is the worker's
// LibTorch, not the server's, that must reach the GPU, and the server does
// not link LibTorch's CUDA side. Used once at start-up, before any replica
// spawns, so `--devices=cuda:0` on a machine without CUDA fails at once.
//
// Free functions. ProbeWorkerDevices blocks for one short-lived child
// process (LibTorch's load, about a second), at most `timeout`.

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "parallel/devices.h"

namespace dserve::scheduler {

// Parses "cuda_devices N" / "cuda_devices 0 <why>" (worker/device_runtime.h
// FormatProbeLine). INTERNAL for anything else.
absl::StatusOr<parallel::DeviceProbe> ParseProbeLine(const std::string& line);

// Runs `worker_binary --probe_devices` and parses its answer. UNAVAILABLE
// (naming the binary and how it ended) when it fails or does not answer.
absl::StatusOr<parallel::DeviceProbe> ProbeWorkerDevices(
    const std::string& worker_binary, absl::Duration timeout);

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_DEVICE_PROBE_H_
