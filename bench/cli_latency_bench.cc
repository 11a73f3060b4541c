// Benchmark for the closing note of the foundation issue: end-to-end latency
// of a 64x64, 20-step generation through the dserve CLI (process start,
// connect, queue, workers, PNG, file write), median of 10 runs against a
// warm server with 2 replicas. Run with
//
//   bazel test //bench:cli_latency_bench --test_output=streamed
//
// Tagged manual: it measures, it does not judge, so CI does not run it.

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"
#include "tests/testing/subprocess.h"

namespace dserve::bench {
namespace {

using ::dserve::tests::CapturedRun;
using ::dserve::tests::RunAndCapture;
using ::dserve::tests::RunfilePath;
using ::dserve::tests::ServerProcess;
using ::dserve::tests::TestTempDir;

constexpr int kRuns = 10;

TEST(CliLatencyBench, Generate64x64With20Steps) {
  auto server = ServerProcess::Start(ServerProcess::Options());
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<std::string> cli = RunfilePath("clients/dserve");
  ASSERT_TRUE(cli.ok()) << cli.status();

  std::vector<double> latencies_ms;
  // One unmeasured warm-up run: the first request pays one-time costs
  // (connection, allocator growth) that are not per-request latency.
  for (int run = -1; run < kRuns; ++run) {
    const std::vector<std::string> argv = {
        *cli,          "--server=" + (*server)->address(),
        "--progress=false", "generate",
        "--prompt=a red circle on a blue sky",
        "--width=64",  "--height=64",
        "--steps=20",  absl::StrCat("--seed=", 1000 + run),
        "--out=" + TestTempDir() + "/bench.png"};
    const absl::Time start = absl::Now();
    absl::StatusOr<CapturedRun> result =
        RunAndCapture(argv, absl::Seconds(300));
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_EQ(result->exit_code, 0) << result->stderr_text;
    if (run >= 0) latencies_ms.push_back(ms);
  }
  std::vector<double> sorted = latencies_ms;
  std::sort(sorted.begin(), sorted.end());
  const double median = (sorted[kRuns / 2 - 1] + sorted[kRuns / 2]) / 2;
  std::cout << absl::StrFormat(
                   "dserve generate 64x64, 20 steps, %d runs: median %.1f ms, "
                   "min %.1f ms, max %.1f ms\nruns (ms): %s\n",
                   kRuns, median, sorted.front(), sorted.back(),
                   absl::StrJoin(latencies_ms, ", ",
                                 [](std::string* out, double v) {
                                   absl::StrAppendFormat(out, "%.1f", v);
                                 }))
            << std::flush;
  absl::StatusOr<int> code = (*server)->Stop();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace dserve::bench
