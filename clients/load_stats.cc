#include "clients/load_stats.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace dserve::clients {

absl::Duration Percentile(const std::vector<absl::Duration>& sorted, double p) {
  if (sorted.empty()) return absl::ZeroDuration();
  const double rank = std::ceil(p / 100.0 * static_cast<double>(sorted.size()));
  const size_t index =
      std::min(sorted.size() - 1,
               static_cast<size_t>(std::max(1.0, rank)) - 1);
  return sorted[index];
}

std::string StatusCodeName(int code) {
  static const char* const kNames[] = {
      "OK",        "CANCELLED",          "UNKNOWN",
      "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS",   "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION", "ABORTED",        "OUT_OF_RANGE",
      "UNIMPLEMENTED",    "INTERNAL",          "UNAVAILABLE",
      "DATA_LOSS",        "UNAUTHENTICATED"};
  if (code >= 0 && code <= 16) return kNames[code];
  return absl::StrCat("CODE_", code);
}

LoadSummary Summarize(const std::vector<LoadSample>& samples,
                      absl::Duration wall) {
  LoadSummary summary;
  std::vector<absl::Duration> ok;
  for (const LoadSample& s : samples) {
    ++summary.requests;
    ++summary.by_code[StatusCodeName(s.code)];
    if (s.code == 0) ok.push_back(s.latency);
  }
  std::sort(ok.begin(), ok.end());
  summary.succeeded = static_cast<int>(ok.size());
  if (wall > absl::ZeroDuration()) {
    summary.throughput = summary.succeeded / absl::ToDoubleSeconds(wall);
  }
  summary.p50 = Percentile(ok, 50);
  summary.p90 = Percentile(ok, 90);
  summary.p99 = Percentile(ok, 99);
  summary.max = ok.empty() ? absl::ZeroDuration() : ok.back();
  return summary;
}

std::string FormatSummary(const LoadSummary& summary, int concurrency,
                          absl::Duration wall) {
  auto ms = [](absl::Duration d) { return absl::ToDoubleMilliseconds(d); };
  std::string out = absl::StrFormat(
      "clients=%d wall=%.1fs requests=%d ok=%d throughput=%.2f req/s\n"
      "latency (ok) p50=%.0fms p90=%.0fms p99=%.0fms max=%.0fms\n"
      "status:",
      concurrency, absl::ToDoubleSeconds(wall), summary.requests,
      summary.succeeded, summary.throughput, ms(summary.p50), ms(summary.p90),
      ms(summary.p99), ms(summary.max));
  for (const auto& [name, count] : summary.by_code) {
    absl::StrAppend(&out, " ", name, "=", count);
  }
  absl::StrAppend(&out, "\n");
  return out;
}

absl::StatusOr<std::vector<dserve::v1::GenerateRequest>> ParseMix(
    const std::string& mix) {
  std::vector<dserve::v1::GenerateRequest> requests;
  for (absl::string_view entry : absl::StrSplit(mix, ',', absl::SkipEmpty())) {
    std::vector<absl::string_view> shape_steps = absl::StrSplit(entry, ':');
    int width = 0, height = 0, steps = 0;
    bool ok = shape_steps.size() == 2 &&
              absl::SimpleAtoi(shape_steps[1], &steps) && steps > 0;
    if (ok) {
      std::vector<absl::string_view> wh = absl::StrSplit(shape_steps[0], 'x');
      ok = wh.size() == 2 && absl::SimpleAtoi(wh[0], &width) &&
           absl::SimpleAtoi(wh[1], &height) && width > 0 && height > 0;
    }
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--mix entry \"", entry,
          "\" is not WIDTHxHEIGHT:STEPS with positive numbers (e.g. "
          "64x64:4)"));
    }
    dserve::v1::GenerateRequest request;
    request.set_width(width);
    request.set_height(height);
    request.set_num_inference_steps(steps);
    request.set_num_frames(1);
    requests.push_back(std::move(request));
  }
  if (requests.empty()) {
    return absl::InvalidArgumentError("--mix is empty (e.g. 64x64:4)");
  }
  return requests;
}

}  // namespace dserve::clients
