#include "clients/load_stats.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::clients {
namespace {

using ::testing::HasSubstr;

std::vector<absl::Duration> Ms(std::vector<int> values) {
  std::vector<absl::Duration> out;
  for (int v : values) out.push_back(absl::Milliseconds(v));
  return out;
}

TEST(PercentileTest, NearestRankTable) {
  const std::vector<absl::Duration> ten = Ms({1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  struct Case {
    double p;
    int want_ms;
  };
  for (const Case& c : {Case{50, 5}, Case{90, 9}, Case{99, 10}, Case{100, 10},
                        Case{10, 1}, Case{1, 1}}) {
    EXPECT_EQ(Percentile(ten, c.p), absl::Milliseconds(c.want_ms)) << c.p;
  }
  EXPECT_EQ(Percentile({}, 50), absl::ZeroDuration());
  EXPECT_EQ(Percentile(Ms({7}), 99), absl::Milliseconds(7));
}

TEST(SummarizeTest, CountsCodesAndUsesOnlySuccessesForLatency) {
  std::vector<LoadSample> samples = {
      {absl::Milliseconds(300), 0}, {absl::Milliseconds(100), 0},
      {absl::Milliseconds(200), 0}, {absl::Milliseconds(1), 8},
      {absl::Milliseconds(2), 8},   {absl::Milliseconds(9000), 4}};
  const LoadSummary s = Summarize(samples, absl::Seconds(2));
  EXPECT_EQ(s.requests, 6);
  EXPECT_EQ(s.succeeded, 3);
  EXPECT_DOUBLE_EQ(s.throughput, 1.5);
  EXPECT_EQ(s.p50, absl::Milliseconds(200));
  EXPECT_EQ(s.p99, absl::Milliseconds(300));
  EXPECT_EQ(s.max, absl::Milliseconds(300));
  EXPECT_EQ(s.by_code.at("OK"), 3);
  EXPECT_EQ(s.by_code.at("RESOURCE_EXHAUSTED"), 2);
  EXPECT_EQ(s.by_code.at("DEADLINE_EXCEEDED"), 1);
  const std::string text = FormatSummary(s, 8, absl::Seconds(2));
  EXPECT_THAT(text, HasSubstr("clients=8"));
  EXPECT_THAT(text, HasSubstr("throughput=1.50 req/s"));
  EXPECT_THAT(text, HasSubstr("RESOURCE_EXHAUSTED=2"));
}

TEST(StatusCodeNameTest, KnownAndUnknown) {
  EXPECT_EQ(StatusCodeName(0), "OK");
  EXPECT_EQ(StatusCodeName(14), "UNAVAILABLE");
  EXPECT_EQ(StatusCodeName(16), "UNAUTHENTICATED");
  EXPECT_EQ(StatusCodeName(42), "CODE_42");
}

TEST(ParseMixTest, Table) {
  auto mix = ParseMix("64x32:4,32x32:2");
  ASSERT_TRUE(mix.ok()) << mix.status();
  ASSERT_EQ(mix->size(), 2u);
  EXPECT_EQ((*mix)[0].width(), 64);
  EXPECT_EQ((*mix)[0].height(), 32);
  EXPECT_EQ((*mix)[0].num_inference_steps(), 4);
  EXPECT_EQ((*mix)[1].num_inference_steps(), 2);
  for (const char* bad : {"", "64x64", "64:4", "64x64:0", "ax64:4", "64x64:4:1"}) {
    auto parsed = ParseMix(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace dserve::clients
