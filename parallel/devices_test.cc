#include "parallel/devices.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::parallel {
namespace {

using ::testing::HasSubstr;

const DeviceProbe kNoCuda{0, "LibTorch 1.13.1 was built without CUDA"};
constexpr int kTwoGpus = 2;

TEST(ParseDeviceTest, Table) {
  struct Case {
    std::string text;
    bool ok;
    std::string formatted;
  };
  const std::vector<Case> cases = {
      {"cpu", true, "cpu"},           {"cuda:0", true, "cuda:0"},
      {" cuda:7 ", true, "cuda:7"},   {"cuda:1023", true, "cuda:1023"},
      {"cuda:1024", false, ""},       {"cuda", false, ""},
      {"cuda:", false, ""},           {"cuda:-1", false, ""},
      {"cuda:+1", false, ""},         {"cuda:1x", false, ""},
      {"gpu:0", false, ""},           {"CPU", false, ""},
      {"", false, ""},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Device> d = ParseDevice(c.text, "device");
    EXPECT_EQ(d.ok(), c.ok) << "'" << c.text << "': " << d.status();
    if (d.ok()) {
      EXPECT_EQ(d->ToString(), c.formatted);
    } else {
      EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(d.status().message(), HasSubstr("--device: '" + c.text));
      EXPECT_THAT(d.status().message(), HasSubstr("allowed: cpu, cuda:N"));
    }
  }
}

TEST(ResolveDevicesTest, Table) {
  struct Case {
    std::string spec;
    int dp;
    int world;
    int gpus;
    absl::StatusCode code;
    std::string want;  // FormatDevices on success, a message part otherwise
  };
  const std::vector<Case> cases = {
      {"cpu", 2, 2, 0, absl::StatusCode::kOk, "cpu,cpu,cpu,cpu"},
      {"cpu", 1, 1, kTwoGpus, absl::StatusCode::kOk, "cpu"},
      {"auto", 2, 1, 0, absl::StatusCode::kOk, "cpu,cpu"},
      {"auto", 2, 1, kTwoGpus, absl::StatusCode::kOk, "cuda:0,cuda:1"},
      {"auto", 1, 2, kTwoGpus, absl::StatusCode::kOk, "cuda:0,cuda:1"},
      {"auto", 1, 4, kTwoGpus, absl::StatusCode::kInvalidArgument,
       "device num 2 and world size 4 not match: --devices=auto found 2"},
      {"cuda:0,cuda:0", 2, 1, 1, absl::StatusCode::kOk, "cuda:0,cuda:0"},
      {"cuda:1,cuda:0", 1, 2, kTwoGpus, absl::StatusCode::kOk,
       "cuda:1,cuda:0"},
      {"cuda:0, cpu", 1, 2, 1, absl::StatusCode::kOk, "cuda:0,cpu"},
      {"cuda:0,cuda:1,cuda:2,cuda:3", 1, 2, 4,
       absl::StatusCode::kInvalidArgument,
       "device num 4 and world size 2 not match"},
      {"cuda:0", 2, 1, 1, absl::StatusCode::kInvalidArgument,
       "device num 1 and world size 2 not match"},
      {"cuda:0", 1, 1, 0, absl::StatusCode::kFailedPrecondition,
       "--devices names cuda:0 but no CUDA device is usable: LibTorch 1.13.1 "
       "was built without CUDA"},
      {"cuda:0,cuda:2", 1, 2, kTwoGpus, absl::StatusCode::kFailedPrecondition,
       "--devices names cuda:2 but only 2 CUDA device(s) are usable "
       "(cuda:0..cuda:1)"},
      {"cuda:0,,cuda:1", 1, 3, kTwoGpus, absl::StatusCode::kInvalidArgument,
       "--devices: '' is not a device"},
      {"", 1, 1, 0, absl::StatusCode::kInvalidArgument, "--devices is empty"},
      {"gpu", 1, 1, 0, absl::StatusCode::kInvalidArgument,
       "'gpu' is not a device"},
  };
  for (const Case& c : cases) {
    DeviceProbe probe = kNoCuda;
    probe.cuda_device_count = c.gpus;
    absl::StatusOr<std::vector<Device>> got =
        ResolveDevices(c.spec, c.dp, c.world, probe);
    SCOPED_TRACE("spec '" + c.spec + "' dp " + std::to_string(c.dp) +
                 " world " + std::to_string(c.world) + " gpus " +
                 std::to_string(c.gpus));
    EXPECT_EQ(got.status().code(), c.code) << got.status();
    if (got.ok()) {
      EXPECT_EQ(FormatDevices(*got), c.want);
    } else {
      EXPECT_THAT(got.status().message(), HasSubstr(c.want));
    }
  }
}

TEST(ResolveDevicesTest, RejectsDegenerateMesh) {
  EXPECT_EQ(ResolveDevices("cpu", 0, 1, kNoCuda).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DevicesSpecMayUseCudaTest, Table) {
  EXPECT_FALSE(DevicesSpecMayUseCuda("cpu"));
  EXPECT_FALSE(DevicesSpecMayUseCuda("cpu, cpu"));
  EXPECT_TRUE(DevicesSpecMayUseCuda("auto"));
  EXPECT_TRUE(DevicesSpecMayUseCuda("cpu,cuda:0"));
  EXPECT_TRUE(DevicesSpecMayUseCuda("bogus"));
}

TEST(HasRepeatedCudaDeviceTest, Table) {
  const Device cpu{}, gpu0{Device::Kind::kCuda, 0}, gpu1{Device::Kind::kCuda, 1};
  EXPECT_FALSE(HasRepeatedCudaDevice({}));
  EXPECT_FALSE(HasRepeatedCudaDevice({cpu, cpu}));
  EXPECT_FALSE(HasRepeatedCudaDevice({gpu0, gpu1, cpu}));
  EXPECT_TRUE(HasRepeatedCudaDevice({gpu0, gpu1, gpu0}));
}

TEST(DevicesByReplicaTest, RankKOfReplicaRIsEntryRTimesWPlusK) {
  std::vector<Device> devices;
  for (int i = 0; i < 6; ++i) devices.push_back({Device::Kind::kCuda, i});
  absl::StatusOr<std::vector<std::vector<Device>>> by =
      DevicesByReplica(devices, /*dp=*/3, /*world=*/2);
  ASSERT_TRUE(by.ok()) << by.status();
  ASSERT_EQ(by->size(), 3u);
  for (int r = 0; r < 3; ++r) {
    ASSERT_EQ((*by)[r].size(), 2u);
    for (int k = 0; k < 2; ++k) EXPECT_EQ((*by)[r][k].index, r * 2 + k);
  }
  EXPECT_THAT(DevicesByReplica(devices, 2, 2).status().message(),
              HasSubstr("device num 6 and world size 4 not match"));
}

}  // namespace
}  // namespace dserve::parallel
