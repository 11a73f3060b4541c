#include "worker/device_runtime.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/torch_status.h"
#include <ATen/Context.h>
#include <c10/core/Stream.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#if defined(DSERVE_WITH_CUDA) && defined(DSERVE_TORCH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#define DSERVE_CUDA_LIBRARIES 1
#else
#define DSERVE_CUDA_LIBRARIES 0
#endif

namespace dserve::worker {

parallel::DeviceProbe ProbeDevices() {
  parallel::DeviceProbe probe;
  if (!at::hasCUDA()) {
    probe.why_no_cuda =
        "this dserve_worker's LibTorch was built without CUDA "
        "(at::hasCUDA() is false); build with --config=cuda and "
        "DSERVE_LIBTORCH pointing at a CUDA LibTorch";
    return probe;
  }
  absl::Status s = CatchTorch("counting CUDA devices", [&] {
    probe.cuda_device_count =
        c10::impl::getDeviceGuardImpl(at::kCUDA)->deviceCount();
  });
  if (!s.ok()) {
    probe.cuda_device_count = 0;
    probe.why_no_cuda = std::string(s.message());
  } else if (probe.cuda_device_count == 0) {
    probe.why_no_cuda =
        "LibTorch has CUDA but sees no GPU (driver missing, or "
        "CUDA_VISIBLE_DEVICES hides them)";
  }
  return probe;
}

std::string FormatProbeLine(const parallel::DeviceProbe& probe) {
  if (probe.cuda_device_count > 0) {
    return absl::StrCat("cuda_devices ", probe.cuda_device_count);
  }
  return absl::StrCat("cuda_devices 0 ", probe.why_no_cuda);
}

absl::StatusOr<at::Device> SelectDevice(const parallel::Device& device) {
  if (!device.is_cuda()) return at::Device(at::kCPU);
  const parallel::DeviceProbe probe = ProbeDevices();
  if (device.index >= probe.cuda_device_count) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--device=", device.ToString(), " is not usable: ",
        probe.cuda_device_count == 0
            ? probe.why_no_cuda
            : absl::StrCat("only ", probe.cuda_device_count,
                           " CUDA device(s) are visible")));
  }
  const at::Device d(at::kCUDA, static_cast<c10::DeviceIndex>(device.index));
  absl::Status s = CatchTorch(absl::StrCat("selecting ", device.ToString()), [&] {
    const c10::impl::DeviceGuardImplInterface* impl =
        c10::impl::getDeviceGuardImpl(at::kCUDA);
    impl->setDevice(d);
    // A pool stream, not the legacy default stream: the step's kernels and
    // NCCL's collectives queue on it in order, and nothing else in the
    // process (e.g. a gRPC thread copying pixels) serialises against it.
    impl->exchangeStream(impl->getStreamFromGlobalPool(d, false));
  });
  if (!s.ok()) return absl::FailedPreconditionError(s.message());
  return d;
}

absl::StatusOr<at::ScalarType> ParseDtype(const std::string& name) {
  if (name == "bf16") return at::kBFloat16;
  if (name == "fp16") return at::kHalf;
  if (name == "fp32") return at::kFloat;
  return absl::InvalidArgumentError(absl::StrCat(
      "--dtype='", name, "' is not a dtype; allowed: bf16, fp16, fp32"));
}

std::string DtypeName(at::ScalarType dtype) {
  switch (dtype) {
    case at::kBFloat16:
      return "bf16";
    case at::kHalf:
      return "fp16";
    case at::kFloat:
      return "fp32";
    default:
      return c10::toString(dtype);
  }
}

DeviceMemory QueryDeviceMemory(const at::Device& device) {
  DeviceMemory m;
  if (!device.is_cuda()) return m;
#if DSERVE_CUDA_LIBRARIES
  const auto stats =
      c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
  // Index 0 is StatType::AGGREGATE (all pools) in every LibTorch since 1.x.
  m.allocated_bytes = stats.allocated_bytes[0].current;
  m.reserved_bytes = stats.reserved_bytes[0].current;
  // cudaMemGetInfo reads the calling thread's current device (a gRPC
  // thread asks, not the compute thread).
  const c10::cuda::CUDAGuard guard(device.index());
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
    m.total_bytes = static_cast<int64_t>(total_bytes);
  }
  m.available = true;
#endif
  return m;
}

std::function<CUstream_st*()> CurrentCudaStreamFn() {
#if DSERVE_CUDA_LIBRARIES
  return [] { return c10::cuda::getCurrentCUDAStream().stream(); };
#else
  return nullptr;
#endif
}

}  // namespace dserve::worker
