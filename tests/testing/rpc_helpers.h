#ifndef DSERVE_TESTS_TESTING_RPC_HELPERS_H_
#define DSERVE_TESTS_TESTING_RPC_HELPERS_H_

// Small synchronous helpers the end-to-end tests share: run a Generate
// stream to its end, poll a job until a condition holds, pick request sizes
// from what the server's default model allows.
//
// Thread-safety: free functions; the stub may be shared between threads.
// Blocking: every function blocks on RPCs up to its timeout.

#include <functional>
#include <string>
#include <vector>

#include <grpcpp/support/status.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"

namespace dserve::tests {

using Stub = dserve::v1::DiffusionService::StubInterface;

// Everything one Generate call produced.
struct GenerateOutcome {
  std::vector<dserve::v1::GenerateEvent> events;
  grpc::Status status;

  // The Result event's payload; nullptr when there was none.
  const dserve::v1::Result* result() const;
  // The job id of the first event; empty when no event arrived.
  std::string job_id() const;
  // Started.replica, or -1 when no Started event arrived.
  int replica() const;
};

// Runs Generate to its end with a deadline of `timeout`.
GenerateOutcome GenerateToEnd(Stub& stub,
                              const dserve::v1::GenerateRequest& request,
                              absl::Duration timeout);

// GetJob; a failed RPC becomes the matching absl::Status.
absl::StatusOr<dserve::v1::Job> GetJob(Stub& stub, const std::string& job_id);

// Polls GetJob every 10 ms until `done(job)` holds; DEADLINE_EXCEEDED (with
// the last state seen) after `timeout`.
absl::StatusOr<dserve::v1::Job> WaitForJob(
    Stub& stub, const std::string& job_id,
    const std::function<bool(const dserve::v1::Job&)>& done,
    absl::Duration timeout);

bool IsTerminal(dserve::v1::JobState state);

// The server's default model (ListModels entry with is_default, else the
// first one).
absl::StatusOr<dserve::v1::ModelInfo> DefaultModel(Stub& stub);

// A small, quick request: `size`×`size` pixels (rounded to the model's
// size_step), `steps` steps, one frame, guidance 1 (one model evaluation per
// step), a fixed seed.
dserve::v1::GenerateRequest SmallRequest(const dserve::v1::ModelInfo& model,
                                         int size = 32, int steps = 2);

// A request that runs for many steps, each long enough (96x96 with CFG:
// about 0.25 s on one CPU core for the built-in model) that tests can act
// between two steps (cancel, signal, start a second client) while it runs.
dserve::v1::GenerateRequest LongRequest(const dserve::v1::ModelInfo& model,
                                        int steps = 200, int size = 96);

}  // namespace dserve::tests

#endif  // DSERVE_TESTS_TESTING_RPC_HELPERS_H_
