#ifndef DSERVE_WORKER_DEVICE_RUNTIME_H_
#define DSERVE_WORKER_DEVICE_RUNTIME_H_

// The device side of one worker process: what this process's LibTorch can
// reach (the server's start-up probe), putting the rank on its device with a
// dedicated stream before the first allocation, the compute dtype, and the
// GPU memory it reports in GetStatus.
//
// Everything goes through LibTorch's device-generic API (at::hasCUDA,
// c10::impl::DeviceGuardImplInterface), so the CPU-only LibTorch compiles
// it and a CUDA device fails cleanly at run time. Only the memory figures
// and the raw stream handle for NCCL need the CUDA libraries; they are
// compiled when DSERVE_TORCH_CUDA (a CUDA LibTorch, set by
// //third_party/torch and cmake/dependencies.cmake) and DSERVE_WITH_CUDA
// (--config=cuda) are both defined, and read as zero / null otherwise.
//
// Free functions; SelectDevice changes the calling thread's current device
// and stream (call it on the thread that runs the model, before anything is
// allocated). Nothing blocks.

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "parallel/devices.h"
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

struct CUstream_st;  // cudaStream_t, without CUDA headers

namespace dserve::worker {

// What this process can use: at::hasCUDA() and the CUDA device count, with
// the reason when there is none.
parallel::DeviceProbe ProbeDevices();

// "cuda_devices N" or "cuda_devices 0 <why>": the line --probe_devices
// prints, and its parser (the server side, scheduler/device_probe.cc, has
// its own copy of the parser to stay free of LibTorch).
std::string FormatProbeLine(const parallel::DeviceProbe& probe);

// Makes `device` current for the calling thread. For CUDA also makes a
// stream from LibTorch's pool the thread's current stream, so every kernel
// of the model (and NCCL, which enqueues on the current stream) runs on a
// dedicated stream rather than the legacy default one. FAILED_PRECONDITION
// naming what is missing when the device cannot be had (CPU-only LibTorch,
// no GPU visible, ordinal out of range).
absl::StatusOr<at::Device> SelectDevice(const parallel::Device& device);

// "bf16" / "fp16" / "fp32" -> dtype (INVALID_ARGUMENT otherwise), and back.
absl::StatusOr<at::ScalarType> ParseDtype(const std::string& name);
std::string DtypeName(at::ScalarType dtype);

// GPU memory of `device` in bytes: LibTorch's caching allocator (allocated
// by tensors, reserved from the driver) and the device's total. All zero
// with available = false on the CPU or where the CUDA libraries are not
// compiled in.
struct DeviceMemory {
  bool available = false;
  int64_t allocated_bytes = 0;
  int64_t reserved_bytes = 0;
  int64_t total_bytes = 0;
};
DeviceMemory QueryDeviceMemory(const at::Device& device);

// The raw current CUDA stream of the calling thread, for NcclOptions;
// null (the legacy default stream) in builds without the CUDA libraries.
std::function<CUstream_st*()> CurrentCudaStreamFn();

}  // namespace dserve::worker

#endif  // DSERVE_WORKER_DEVICE_RUNTIME_H_
