#ifndef DSERVE_CLIENTS_LOAD_STATS_H_
#define DSERVE_CLIENTS_LOAD_STATS_H_

// What the load generator measures and how it summarises it: latency
// percentiles of successful requests, throughput and a count per gRPC
// status code. Pure functions over collected samples; no state, no
// threads.

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/dserve/v1/diffusion_service.pb.h"

namespace dserve::clients {

struct LoadSample {
  absl::Duration latency;
  // grpc::StatusCode as an int (0 = OK).
  int code = 0;
};

struct LoadSummary {
  int requests = 0;
  int succeeded = 0;
  // Successful requests per second of wall time.
  double throughput = 0;
  // Of successful requests; zero when there were none.
  absl::Duration p50, p90, p99, max;
  // Status code name ("OK", "RESOURCE_EXHAUSTED", ...) -> count.
  std::map<std::string, int> by_code;
};

// Nearest-rank percentile (p in (0, 100]) of `sorted` (ascending); zero
// when empty.
absl::Duration Percentile(const std::vector<absl::Duration>& sorted, double p);

LoadSummary Summarize(const std::vector<LoadSample>& samples,
                      absl::Duration wall);

// "OK", "CANCELLED", ... for gRPC codes 0..16, else "CODE_<n>".
std::string StatusCodeName(int code);

// Human-readable report of `summary` (one block of lines).
std::string FormatSummary(const LoadSummary& summary, int concurrency,
                          absl::Duration wall);

// --mix: comma-separated "WxH:STEPS" entries (e.g. "64x64:4,32x32:2"),
// each a request shape the clients cycle through. INVALID_ARGUMENT naming
// the bad entry.
absl::StatusOr<std::vector<dserve::v1::GenerateRequest>> ParseMix(
    const std::string& mix);

}  // namespace dserve::clients

#endif  // DSERVE_CLIENTS_LOAD_STATS_H_
