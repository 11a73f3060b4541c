#include "parallel/testing/multiprocess.h"

#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::parallel::testing {
namespace {

using ::testing::HasSubstr;

std::vector<uint8_t> Bytes(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

TEST(RunRanksTest, EveryRankRunsInItsOwnProcessAndSharesTheStore) {
  // The body runs again in every rank process, so the parent's pid cannot be
  // captured here; distinct pids across the ranks show separate processes.
  absl::Status run = RunRanks(3, [](int rank, int world, auto store) {
    EXPECT_TRUE(InRankProcess());
    EXPECT_EQ(world, 3);
    store->set(absl::StrCat("rank/", rank), Bytes(std::to_string(getpid())));
    std::vector<std::string> keys = {"rank/0", "rank/1", "rank/2"};
    store->wait(keys, std::chrono::seconds(20));
    // Three distinct processes checked in.
    EXPECT_NE(store->get("rank/0"), store->get("rank/1"));
    EXPECT_NE(store->get("rank/1"), store->get("rank/2"));
  });
  EXPECT_TRUE(run.ok()) << run;
  EXPECT_FALSE(InRankProcess());
}

TEST(RunRanksTest, AFailingRankFailsTheRun) {
  absl::Status run = RunRanks(2, [](int rank, int world, auto store) {
    if (rank == 1) ADD_FAILURE() << "deliberate failure in rank 1";
  });
  EXPECT_EQ(run.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(run.message()), HasSubstr("rank 1: exit code 1"));
}

TEST(RunRanksTest, AHungRankIsKilledAtTheDeadline) {
  absl::Status run = RunRanks(
      2,
      [](int rank, int world, auto store) {
        if (rank == 0) std::this_thread::sleep_for(std::chrono::seconds(30));
      },
      // Long enough for rank 1 to start and exit on a loaded 2-core machine
      // (3 s was not, at load average 12-18), far short of rank 0's sleep.
      absl::Seconds(10));
  EXPECT_EQ(run.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(run.message()),
              HasSubstr("rank 0: killed at the deadline"));
  EXPECT_THAT(std::string(run.message()), HasSubstr("rank 1: exit code 0"));
}

TEST(RunRanksTest, SeveralRunsInOneTestEachGetTheirOwnStore) {
  absl::Status first = RunRanks(2, [](int rank, int world, auto store) {
    store->set(absl::StrCat("first/", rank), Bytes("x"));
  });
  EXPECT_TRUE(first.ok()) << first;
  absl::Status second = RunRanks(2, [](int rank, int world, auto store) {
    EXPECT_FALSE(store->check({"first/0"}));
    EXPECT_FALSE(store->check({"first/1"}));
  });
  EXPECT_TRUE(second.ok()) << second;
}

TEST(RunRanksTest, RejectsEmptyWorld) {
  EXPECT_EQ(RunRanks(0, [](int, int, auto) {}).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dserve::parallel::testing
