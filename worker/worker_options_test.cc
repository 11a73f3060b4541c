#include "worker/worker_options.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace dserve::worker {
namespace {

TEST(ParseHostPortTest, ParsesHostAndPort) {
  absl::StatusOr<HostPort> hp = ParseHostPort("127.0.0.1:29500", "store");
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 29500);
}

TEST(ParseHostPortTest, ParsesBracketedIpv6) {
  absl::StatusOr<HostPort> hp = ParseHostPort("[::1]:0", "store");
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_EQ(hp->host, "::1");
  EXPECT_EQ(hp->port, 0);
}

TEST(ParseHostPortTest, RejectsMissingOrBadPortNamingTheFlag) {
  for (const char* bad :
       {"localhost", ":80", "host:x", "host:70000", "host:-1"}) {
    absl::StatusOr<HostPort> hp = ParseHostPort(bad, "store");
    ASSERT_FALSE(hp.ok()) << bad;
    EXPECT_EQ(hp.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(hp.status().message().find("--store"), absl::string_view::npos)
        << hp.status();
  }
}

WorkerOptions Valid() {
  WorkerOptions o;
  o.rank = 1;
  o.world = 2;
  o.store = {"127.0.0.1", 1234};
  return o;
}

TEST(ValidateWorkerOptionsTest, AcceptsAValidFollower) {
  EXPECT_TRUE(ValidateWorkerOptions(Valid()).ok());
}

TEST(ValidateWorkerOptionsTest, RejectsRankOutsideWorld) {
  WorkerOptions o = Valid();
  o.rank = 2;
  absl::Status s = ValidateWorkerOptions(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--rank=2"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("0 to 1"), absl::string_view::npos) << s;
}

TEST(ValidateWorkerOptionsTest, OnlyRankZeroMayUseStorePortZero) {
  WorkerOptions o = Valid();
  o.store.port = 0;
  EXPECT_EQ(ValidateWorkerOptions(o).code(),
            absl::StatusCode::kInvalidArgument);
  o.rank = 0;
  EXPECT_TRUE(ValidateWorkerOptions(o).ok());
}

TEST(ValidateWorkerOptionsTest, DeviceDtypeAndCommTable) {
  struct Case {
    std::string device, dtype, comm;
    std::string error;  // empty = valid; else a part of the message
    std::string effective_dtype;
  };
  const std::vector<Case> cases = {
      {"cpu", "", "auto", "", "fp32"},
      {"cuda:0", "", "auto", "", "bf16"},
      {"cuda:3", "fp16", "nccl", "", "fp16"},
      {"cuda:1", "fp32", "gloo", "", "fp32"},
      {"cpu", "bf16", "gloo", "", "bf16"},
      {"gpu", "", "auto", "--device: 'gpu' is not a device", ""},
      {"cuda", "", "auto", "allowed: cpu, cuda:N", ""},
      {"cpu", "half", "auto", "--dtype='half' is not a dtype", ""},
      {"cpu", "", "mpi", "--comm='mpi' is not a backend", ""},
      {"cpu", "", "nccl", "--comm=nccl needs a CUDA device", ""},
  };
  for (const Case& c : cases) {
    WorkerOptions o = Valid();
    o.device = c.device;
    o.dtype = c.dtype;
    o.comm = c.comm;
    absl::Status s = ValidateWorkerOptions(o);
    SCOPED_TRACE(c.device + " " + c.dtype + " " + c.comm);
    if (c.error.empty()) {
      EXPECT_TRUE(s.ok()) << s;
      EXPECT_EQ(EffectiveDtype(o), c.effective_dtype);
    } else {
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_NE(s.message().find(c.error), absl::string_view::npos) << s;
    }
  }
}

TEST(ValidateWorkerOptionsTest, RejectsBadThreadCounts) {
  WorkerOptions o = Valid();
  o.threads = 0;
  EXPECT_NE(ValidateWorkerOptions(o).message().find("--threads=0"),
            absl::string_view::npos);
}

TEST(ValidateWorkerOptionsTest, TextCacheIsOffOrAPositiveSize) {
  WorkerOptions o = Valid();
  EXPECT_EQ(o.text_cache_mb, 0);
  o.text_cache_mb = 256;
  EXPECT_TRUE(ValidateWorkerOptions(o).ok());
  o.text_cache_mb = -1;
  EXPECT_NE(ValidateWorkerOptions(o).message().find("--text_cache_mb=-1"),
            absl::string_view::npos);
}

TEST(ValidateWorkerOptionsTest, SpExactStepsIsAtLeastOne) {
  WorkerOptions o = Valid();
  EXPECT_EQ(o.sp_exact_steps, 1);
  o.sp_exact_steps = 10000;
  EXPECT_TRUE(ValidateWorkerOptions(o).ok());
  for (int bad : {0, -3, 10001}) {
    o.sp_exact_steps = bad;
    const absl::Status s = ValidateWorkerOptions(o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find(
                  absl::StrCat("--sp_compression_exact_steps=", bad)),
              absl::string_view::npos)
        << s;
    EXPECT_NE(s.message().find("allowed 1"), absl::string_view::npos) << s;
  }
}

TEST(ValidateWorkerOptionsTest, ModelsAreUniqueValidAndHoldTheDefault) {
  WorkerOptions o = Valid();
  o.models = {{"tiny", "", ""}, {"wan", "/m/wan", ""}};
  o.default_model = "wan";
  EXPECT_TRUE(ValidateWorkerOptions(o).ok());
  o.default_model = "big";
  EXPECT_NE(ValidateWorkerOptions(o).message().find(
                "--default_model=big is not a served model (served: tiny, "
                "wan)"),
            absl::string_view::npos);
  o.default_model = "";
  o.models.push_back({"wan", "/m/other", ""});
  EXPECT_NE(ValidateWorkerOptions(o).message().find("served twice"),
            absl::string_view::npos);
  o.models = {{"tiny", "", ""}};
  o.model_dir = "/m/x";
  EXPECT_NE(ValidateWorkerOptions(o).message().find(
                "--model_dir=/m/x and --model are exclusive"),
            absl::string_view::npos);
  o.models.clear();
  o.default_model = "tiny";
  EXPECT_NE(ValidateWorkerOptions(o).message().find(
                "--default_model=tiny needs --model"),
            absl::string_view::npos);
}

TEST(ValidateWorkerOptionsTest, HeartbeatMustFitTwiceInTheCollectiveTimeout) {
  WorkerOptions o = Valid();
  o.collective_timeout = std::chrono::milliseconds(1000);
  o.heartbeat_interval = std::chrono::milliseconds(600);
  absl::Status s = ValidateWorkerOptions(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--heartbeat_ms=600"), absl::string_view::npos)
      << s;
  o.heartbeat_interval = std::chrono::milliseconds(500);
  EXPECT_TRUE(ValidateWorkerOptions(o).ok());
}

}  // namespace
}  // namespace dserve::worker
