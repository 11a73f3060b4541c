#include "scheduler/device_probe.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::scheduler {
namespace {

using ::testing::HasSubstr;

TEST(ParseProbeLineTest, Table) {
  absl::StatusOr<parallel::DeviceProbe> p = ParseProbeLine("cuda_devices 8");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->cuda_device_count, 8);
  EXPECT_EQ(p->why_no_cuda, "");

  p = ParseProbeLine("cuda_devices 0 LibTorch was built without CUDA");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->cuda_device_count, 0);
  EXPECT_EQ(p->why_no_cuda, "LibTorch was built without CUDA");

  for (const std::string bad : {"", "cuda_devices", "cuda_devices -1",
                                "cuda_devices x", "gpus 2"}) {
    EXPECT_EQ(ParseProbeLine(bad).status().code(), absl::StatusCode::kInternal)
        << bad;
  }
}

TEST(ProbeWorkerDevicesTest, ABinaryThatDoesNotAnswerIsUnavailable) {
  absl::StatusOr<parallel::DeviceProbe> p =
      ProbeWorkerDevices("/bin/true", absl::Seconds(5));
  EXPECT_EQ(p.status().code(), absl::StatusCode::kUnavailable) << p.status();
  EXPECT_THAT(p.status().message(), HasSubstr("/bin/true --probe_devices"));
}

}  // namespace
}  // namespace dserve::scheduler
