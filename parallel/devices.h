#ifndef DSERVE_PARALLEL_DEVICES_H_
#define DSERVE_PARALLEL_DEVICES_H_

// Which device each rank of a deployment runs on: the server's
// --devices=auto|cpu|cuda:0,cuda:1,... parsed, checked against what the
// machine offers, and cut into data-parallel replicas in mesh order.
//
// A deployment of `dp` replicas of `world` ranks each runs dp*world ranks;
// the device list names one device per rank in rank order (DP slowest, as in
// device_mesh.h), so rank k of replica r runs on entry r*world + k. The same
// device may be named more than once (two replicas sharing one GPU, or the
// ranks of one replica sharing a GPU over Gloo in tests). A count that does
// not match is refused in TeleFuser's words: "device num 4 and world size 2
// not match".
//
// What the machine offers is a DeviceProbe value, handed in by the caller
// (the server asks its dserve_worker binary, see scheduler/device_probe.h),
// so every rule here is a pure function, tested as a table. Plain values; no
// thread-safety concerns; nothing blocks.

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dserve::parallel {

// One device: the CPU or CUDA device `index`.
struct Device {
  enum class Kind { kCpu, kCuda };
  Kind kind = Kind::kCpu;
  // CUDA ordinal (0 for the CPU).
  int index = 0;

  bool is_cuda() const { return kind == Kind::kCuda; }
  // "cpu" or "cuda:N": the form ParseDevice reads and a worker's --device.
  std::string ToString() const;

  friend bool operator==(const Device& a, const Device& b) {
    return a.kind == b.kind && a.index == b.index;
  }
  friend bool operator!=(const Device& a, const Device& b) { return !(a == b); }
};

// Parses "cpu" or "cuda:N" (N a non-negative integer below 1024). INVALID_
// ARGUMENT naming `field`, the text and the accepted forms otherwise.
absl::StatusOr<Device> ParseDevice(absl::string_view text,
                                   absl::string_view field = "device");

// What the machine (as the worker binary sees it) offers.
struct DeviceProbe {
  // Usable CUDA devices (0 = none).
  int cuda_device_count = 0;
  // Why there are none, e.g. "LibTorch 1.13.1 was built without CUDA";
  // named in the FAILED_PRECONDITION of a CUDA device that cannot be had.
  std::string why_no_cuda;
};

// The devices of every rank of the deployment, rank order, dp*world entries.
//   "cpu"   every rank on the CPU
//   "auto"  every visible CUDA device (cuda:0..n-1) if there is one, else
//           every rank on the CPU; the GPU count must then equal dp*world
//   "cuda:0,cuda:1,cpu,..."  one entry per rank, repeats allowed
// INVALID_ARGUMENT for a malformed list or a count other than dp*world
// ("device num N and world size M not match: ..."); FAILED_PRECONDITION
// for a CUDA device the probe does not offer (its message names the device,
// how many the machine has and probe.why_no_cuda).
absl::StatusOr<std::vector<Device>> ResolveDevices(absl::string_view spec,
                                                   int dp, int world,
                                                   const DeviceProbe& probe);

// True when `spec` may name a CUDA device, i.e. a probe is worth its cost
// (anything but "cpu" and lists of "cpu" entries).
bool DevicesSpecMayUseCuda(absl::string_view spec);

// Cuts a rank-ordered list into replicas: result[r][k] = devices[r*world+k].
// INVALID_ARGUMENT when the size is not dp*world (same message as above).
absl::StatusOr<std::vector<std::vector<Device>>> DevicesByReplica(
    const std::vector<Device>& devices, int dp, int world);

// True when one CUDA device appears twice in `devices` (the ranks of one
// replica): NCCL refuses such a group, so those ranks need Gloo.
bool HasRepeatedCudaDevice(const std::vector<Device>& devices);

// "cuda:0,cuda:0,cpu": the inverse of the explicit list form.
std::string FormatDevices(const std::vector<Device>& devices);

}  // namespace dserve::parallel

#endif  // DSERVE_PARALLEL_DEVICES_H_
