#include "parallel/devices.h"

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace dserve::parallel {
namespace {

constexpr int kMaxCudaIndex = 1023;

absl::Status CountMismatch(size_t num_devices, int dp, int world,
                           absl::string_view how) {
  const int64_t needed = static_cast<int64_t>(dp) * world;
  return absl::InvalidArgumentError(absl::StrCat(
      "device num ", num_devices, " and world size ", needed, " not match: ",
      how, " ", num_devices, " device(s) but ", dp, " replica(s) of ", world,
      " rank(s) need ", needed, " (rank k of replica r runs on entry "
      "r*world+k; name a device twice to share it)"));
}

}  // namespace

std::string Device::ToString() const {
  return kind == Kind::kCpu ? std::string("cpu") : absl::StrCat("cuda:", index);
}

absl::StatusOr<Device> ParseDevice(absl::string_view text,
                                   absl::string_view field) {
  const absl::string_view t = absl::StripAsciiWhitespace(text);
  if (t == "cpu") return Device{Device::Kind::kCpu, 0};
  absl::string_view rest = t;
  int index = -1;
  if (absl::ConsumePrefix(&rest, "cuda:") && !rest.empty() &&
      absl::ascii_isdigit(static_cast<unsigned char>(rest.front())) &&
      absl::SimpleAtoi(rest, &index) && index >= 0 && index <= kMaxCudaIndex) {
    return Device{Device::Kind::kCuda, index};
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--", field, ": '", text,
                   "' is not a device; allowed: cpu, cuda:N (N = 0..",
                   kMaxCudaIndex, ")"));
}

bool DevicesSpecMayUseCuda(absl::string_view spec) {
  for (absl::string_view entry : absl::StrSplit(spec, ',')) {
    if (absl::StripAsciiWhitespace(entry) != "cpu") return true;
  }
  return false;
}

absl::StatusOr<std::vector<Device>> ResolveDevices(absl::string_view spec,
                                                   int dp, int world,
                                                   const DeviceProbe& probe) {
  if (dp < 1 || world < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ResolveDevices: dp=", dp, " and world=", world, " must be >= 1"));
  }
  const size_t total = static_cast<size_t>(dp) * world;
  const absl::string_view s = absl::StripAsciiWhitespace(spec);
  if (s == "cpu") return std::vector<Device>(total, Device{});
  if (s == "auto") {
    if (probe.cuda_device_count <= 0) {
      return std::vector<Device>(total, Device{});
    }
    std::vector<Device> gpus;
    for (int i = 0; i < probe.cuda_device_count; ++i) {
      gpus.push_back(Device{Device::Kind::kCuda, i});
    }
    if (gpus.size() != total) {
      return CountMismatch(gpus.size(), dp, world,
                           "--devices=auto found");
    }
    return gpus;
  }
  if (s.empty()) {
    return absl::InvalidArgumentError(
        "--devices is empty; allowed: auto, cpu, or a list like "
        "cuda:0,cuda:1");
  }
  std::vector<Device> devices;
  for (absl::string_view entry : absl::StrSplit(s, ',')) {
    absl::StatusOr<Device> d = ParseDevice(entry, "devices");
    if (!d.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          d.status().message(), " (in --devices='", spec,
          "'; a list may also be just auto or cpu)"));
    }
    devices.push_back(*d);
  }
  if (devices.size() != total) {
    return CountMismatch(devices.size(), dp, world, "--devices lists");
  }
  for (const Device& d : devices) {
    if (d.is_cuda() && d.index >= probe.cuda_device_count) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--devices names ", d.ToString(), " but ",
          probe.cuda_device_count == 0
              ? std::string("no CUDA device is usable")
              : absl::StrCat("only ", probe.cuda_device_count,
                             " CUDA device(s) are usable (cuda:0..cuda:",
                             probe.cuda_device_count - 1, ")"),
          probe.why_no_cuda.empty() ? std::string()
                                    : absl::StrCat(": ", probe.why_no_cuda)));
    }
  }
  return devices;
}

absl::StatusOr<std::vector<std::vector<Device>>> DevicesByReplica(
    const std::vector<Device>& devices, int dp, int world) {
  if (dp < 1 || world < 1 ||
      devices.size() != static_cast<size_t>(dp) * world) {
    return CountMismatch(devices.size(), dp, world, "the list has");
  }
  std::vector<std::vector<Device>> replicas(dp);
  for (int r = 0; r < dp; ++r) {
    replicas[r].assign(devices.begin() + static_cast<size_t>(r) * world,
                       devices.begin() + static_cast<size_t>(r + 1) * world);
  }
  return replicas;
}

bool HasRepeatedCudaDevice(const std::vector<Device>& devices) {
  for (size_t i = 0; i < devices.size(); ++i) {
    for (size_t j = i + 1; j < devices.size(); ++j) {
      if (devices[i].is_cuda() && devices[i] == devices[j]) return true;
    }
  }
  return false;
}

std::string FormatDevices(const std::vector<Device>& devices) {
  return absl::StrJoin(devices, ",", [](std::string* out, const Device& d) {
    out->append(d.ToString());
  });
}

}  // namespace dserve::parallel
