#ifndef DSERVE_SERVER_METRICS_H_
#define DSERVE_SERVER_METRICS_H_

// A small Prometheus metrics registry: counters, gauges and histograms with
// fixed buckets, grouped in families (one name, one type, one help text,
// one series per label set), rendered in the text exposition format 0.0.4
// (what GET /metrics returns).
//
// Ownership: MetricsRegistry owns every family and series; the pointers it
// hands out stay valid for the registry's lifetime. It owns the collectors
// (callbacks run before each rendering, to refresh gauges that mirror
// state kept elsewhere, e.g. queue depth).
// Thread-safety: everything is thread-safe. No call blocks beyond a short
// lock; collectors run under no registry lock, on the rendering thread.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace dserve::server {

// Label name -> value; ordered so a series renders the same every time.
using MetricLabels = std::map<std::string, std::string>;

class Counter {
 public:
  // `delta` must be >= 0 (a counter only goes up); negative deltas are
  // ignored.
  void Increment(double delta = 1);
  double value() const;

 private:
  mutable absl::Mutex mu_;
  double value_ ABSL_GUARDED_BY(mu_) = 0;
};

class Gauge {
 public:
  void Set(double value);
  void Add(double delta);
  double value() const;

 private:
  mutable absl::Mutex mu_;
  double value_ ABSL_GUARDED_BY(mu_) = 0;
};

class Histogram {
 public:
  // `upper_bounds`: strictly increasing, finite; +Inf is implicit.
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<double> upper_bounds;
    // Cumulative counts per bound (Prometheus "le" semantics), then +Inf.
    std::vector<uint64_t> cumulative_counts;
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  const std::vector<double> upper_bounds_;
  mutable absl::Mutex mu_;
  // Per-bucket (not cumulative) counts; the last one is +Inf.
  std::vector<uint64_t> counts_ ABSL_GUARDED_BY(mu_);
  double sum_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

// Bucket bounds for latencies in seconds: 5 ms .. 1 h (video jobs).
std::vector<double> LatencySecondsBuckets();

class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Return the series of family `name` with `labels`, creating the family
  // (with `help`) and the series on first use. Asking for an existing name
  // with another type, or a histogram with other buckets, is a programming
  // error and aborts (CHECK-style): metric names are compile-time constants.
  Counter* GetCounter(const std::string& name, const std::string& help,
                      const MetricLabels& labels = {});
  Gauge* GetGauge(const std::string& name, const std::string& help,
                  const MetricLabels& labels = {});
  Histogram* GetHistogram(const std::string& name, const std::string& help,
                          const std::vector<double>& upper_bounds,
                          const MetricLabels& labels = {});

  // `collector` runs at the start of every RenderText.
  void AddCollector(std::function<void()> collector);

  // Every family, sorted by name, in the Prometheus text format.
  std::string RenderText() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Family {
    Type type;
    std::string help;
    std::vector<double> upper_bounds;  // Histograms only.
    std::map<MetricLabels, std::unique_ptr<Counter>> counters;
    std::map<MetricLabels, std::unique_ptr<Gauge>> gauges;
    std::map<MetricLabels, std::unique_ptr<Histogram>> histograms;
  };
  Family& FamilyFor(const std::string& name, Type type, const std::string& help)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Family> families_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> collectors_ ABSL_GUARDED_BY(mu_);
};

// Formats a sample value the way Prometheus expects ("+Inf", "NaN", shortest
// round-trip decimal otherwise).
std::string FormatMetricValue(double value);
// Escapes a label value (backslash, double quote, newline).
std::string EscapeLabelValue(const std::string& value);

}  // namespace dserve::server

#endif  // DSERVE_SERVER_METRICS_H_
