#include "worker/device_runtime.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <ATen/ATen.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

namespace dserve::worker {
namespace {

using ::testing::HasSubstr;

const parallel::Device kCuda0{parallel::Device::Kind::kCuda, 0};

TEST(DeviceRuntimeTest, CpuIsAlwaysSelectable) {
  absl::StatusOr<at::Device> d = SelectDevice(parallel::Device{});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->is_cpu());
  const DeviceMemory m = QueryDeviceMemory(*d);
  EXPECT_FALSE(m.available);
  EXPECT_EQ(m.allocated_bytes + m.reserved_bytes + m.total_bytes, 0);
}

TEST(DeviceRuntimeTest, ProbeMatchesLibTorch) {
  const parallel::DeviceProbe probe = ProbeDevices();
  if (!at::hasCUDA()) {
    EXPECT_EQ(probe.cuda_device_count, 0);
    EXPECT_THAT(probe.why_no_cuda, HasSubstr("built without CUDA"));
    EXPECT_THAT(FormatProbeLine(probe),
                HasSubstr("cuda_devices 0 this dserve_worker's LibTorch"));
  } else {
    EXPECT_EQ(probe.cuda_device_count,
              c10::impl::getDeviceGuardImpl(at::kCUDA)->deviceCount());
  }
}

// Here (CPU-only LibTorch) the CUDA path must fail cleanly, naming what is
// missing; on a GPU machine it must select the device and a non-default
// stream.
TEST(DeviceRuntimeTest, CudaSelectsDeviceAndStreamOrSaysWhatIsMissing) {
  absl::StatusOr<at::Device> d = SelectDevice(kCuda0);
  if (ProbeDevices().cuda_device_count == 0) {
    EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(d.status().message(), HasSubstr("--device=cuda:0"));
    EXPECT_THAT(d.status().message(), HasSubstr("CUDA"));
    return;
  }
  ASSERT_TRUE(d.ok()) << d.status();
  const auto* impl = c10::impl::getDeviceGuardImpl(at::kCUDA);
  EXPECT_EQ(impl->getDevice(), *d);
  EXPECT_NE(impl->getStream(*d), impl->getDefaultStream(*d));
  at::Tensor t = at::ones({1024, 1024}, at::TensorOptions().device(*d));
  EXPECT_TRUE(t.is_cuda());
  const DeviceMemory m = QueryDeviceMemory(*d);
  if (m.available) {
    EXPECT_GE(m.allocated_bytes, 4 << 20);
    EXPECT_GE(m.reserved_bytes, m.allocated_bytes);
    EXPECT_GT(m.total_bytes, m.reserved_bytes);
  }
}

TEST(DeviceRuntimeTest, DtypesRoundTrip) {
  for (const char* name : {"bf16", "fp16", "fp32"}) {
    absl::StatusOr<at::ScalarType> t = ParseDtype(name);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(DtypeName(*t), name);
  }
  EXPECT_THAT(ParseDtype("fp8").status().message(),
              HasSubstr("--dtype='fp8' is not a dtype; allowed: bf16, fp16, fp32"));
}

}  // namespace
}  // namespace dserve::worker
