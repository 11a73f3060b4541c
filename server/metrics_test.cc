#include "server/metrics.h"

#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::server {
namespace {

using ::testing::HasSubstr;

TEST(FormatMetricValueTest, Table) {
  struct Case {
    double value;
    const char* text;
  };
  const Case cases[] = {
      {0, "0"},       {3, "3"},         {-2, "-2"},
      {0.25, "0.25"}, {0.1, "0.1"},     {1e-3, "0.001"},
      {1.0 / 0.0, "+Inf"}, {-1.0 / 0.0, "-Inf"}, {1234567.5, "1234567.5"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(FormatMetricValue(c.value), c.text) << c.value;
  }
  EXPECT_EQ(FormatMetricValue(0.0 / 0.0), "NaN");
}

TEST(EscapeLabelValueTest, EscapesQuoteBackslashNewline) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(CounterTest, IgnoresNegativeDeltas) {
  Counter counter;
  counter.Increment();
  counter.Increment(2.5);
  counter.Increment(-10);
  EXPECT_DOUBLE_EQ(counter.value(), 3.5);
}

TEST(HistogramTest, BucketsAreInclusiveAndCumulative) {
  Histogram histogram({1, 2, 5});
  for (double v : {0.5, 1.0, 1.5, 2.0, 4.0, 7.0}) histogram.Observe(v);
  const Histogram::Snapshot s = histogram.snapshot();
  // le=1: {0.5, 1.0}; le=2: +{1.5, 2.0}; le=5: +{4}; +Inf: +{7}.
  EXPECT_THAT(s.cumulative_counts, ::testing::ElementsAre(2, 4, 5, 6));
  EXPECT_EQ(s.count, 6u);
  EXPECT_DOUBLE_EQ(s.sum, 16.0);
}

TEST(HistogramTest, ConcurrentObservationsAreAllCounted) {
  Histogram histogram(LatencySecondsBuckets());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&histogram] {
      for (int i = 0; i < 1000; ++i) histogram.Observe(0.02);
    });
  }
  for (auto& t : threads) t.join();
  const Histogram::Snapshot s = histogram.snapshot();
  EXPECT_EQ(s.count, 4000u);
  EXPECT_EQ(s.cumulative_counts.back(), 4000u);
  // 0.02 lands in le=0.025 (index 2), not below.
  EXPECT_EQ(s.cumulative_counts[1], 0u);
  EXPECT_EQ(s.cumulative_counts[2], 4000u);
}

TEST(MetricsRegistryTest, SameNameAndLabelsGiveTheSameSeries) {
  MetricsRegistry registry;
  Counter* a = registry.GetCounter("jobs_total", "Jobs.", {{"state", "ok"}});
  Counter* b = registry.GetCounter("jobs_total", "Jobs.", {{"state", "ok"}});
  Counter* c = registry.GetCounter("jobs_total", "Jobs.", {{"state", "bad"}});
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(MetricsRegistryTest, RendersTheTextExpositionFormat) {
  MetricsRegistry registry;
  registry.GetCounter("dserve_jobs_total", "Jobs by terminal state.",
                      {{"state", "SUCCEEDED"}})
      ->Increment(3);
  registry.GetCounter("dserve_jobs_total", "Jobs by terminal state.",
                      {{"state", "CANCELLED"}})
      ->Increment();
  registry.GetGauge("dserve_queue_depth", "Queued jobs.", {{"priority", "0"}})
      ->Set(2);
  Histogram* h = registry.GetHistogram("dserve_step_seconds", "Step time.",
                                       {0.1, 1});
  h->Observe(0.05);
  h->Observe(0.5);
  h->Observe(3);

  EXPECT_EQ(registry.RenderText(),
            "# HELP dserve_jobs_total Jobs by terminal state.\n"
            "# TYPE dserve_jobs_total counter\n"
            "dserve_jobs_total{state=\"CANCELLED\"} 1\n"
            "dserve_jobs_total{state=\"SUCCEEDED\"} 3\n"
            "# HELP dserve_queue_depth Queued jobs.\n"
            "# TYPE dserve_queue_depth gauge\n"
            "dserve_queue_depth{priority=\"0\"} 2\n"
            "# HELP dserve_step_seconds Step time.\n"
            "# TYPE dserve_step_seconds histogram\n"
            "dserve_step_seconds_bucket{le=\"0.1\"} 1\n"
            "dserve_step_seconds_bucket{le=\"1\"} 2\n"
            "dserve_step_seconds_bucket{le=\"+Inf\"} 3\n"
            "dserve_step_seconds_sum 3.55\n"
            "dserve_step_seconds_count 3\n");
}

TEST(MetricsRegistryTest, CollectorsRunBeforeEachRendering) {
  MetricsRegistry registry;
  int depth = 0;
  registry.AddCollector([&registry, &depth] {
    registry.GetGauge("depth", "Depth.")->Set(depth);
  });
  depth = 4;
  EXPECT_THAT(registry.RenderText(), HasSubstr("\ndepth 4\n"));
  depth = 7;
  EXPECT_THAT(registry.RenderText(), HasSubstr("\ndepth 7\n"));
}

TEST(MetricsRegistryDeathTest, TypeClashAborts) {
  MetricsRegistry registry;
  registry.GetCounter("x", "X.");
  EXPECT_DEATH(registry.GetGauge("x", "X."), "different types");
}

}  // namespace
}  // namespace dserve::server
