#ifndef DSERVE_TESTS_TESTING_SHARED_SERVER_H_
#define DSERVE_TESTS_TESTING_SHARED_SERVER_H_

// One real dserve_server (with real worker replicas) shared by every test of
// an end-to-end binary: starting one costs seconds, so suites whose tests do
// not disturb each other start it once.
//
//   SharedServer* shared = nullptr;
//   ::testing::Environment* const kEnv = ::testing::AddGlobalTestEnvironment(
//       new SharedServerEnvironment(options, &shared));
//
// The environment starts the server before the first test and stops it after
// the last (SIGTERM, expecting exit code 0). Between the two `*slot` points at
// the running server; it stays null when start-up failed, so tests ASSERT it.
// Not thread-safe: gtest calls SetUp/TearDown on the main thread.

#include <memory>

#include "gtest/gtest.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "tests/testing/server_process.h"

namespace dserve::tests {

struct SharedServer {
  std::unique_ptr<ServerProcess> server;
  std::unique_ptr<dserve::v1::DiffusionService::Stub> stub;
  // The server's default model, for building valid requests.
  dserve::v1::ModelInfo model;
};

class SharedServerEnvironment : public ::testing::Environment {
 public:
  SharedServerEnvironment(ServerProcess::Options options, SharedServer** slot)
      : options_(std::move(options)), slot_(slot) {}

  void SetUp() override;
  void TearDown() override;

 private:
  ServerProcess::Options options_;
  SharedServer** slot_;
  std::unique_ptr<SharedServer> owned_;
};

}  // namespace dserve::tests

#endif  // DSERVE_TESTS_TESTING_SHARED_SERVER_H_
