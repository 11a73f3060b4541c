#include "tests/testing/shared_server.h"

#include <utility>

#include "absl/status/statusor.h"
#include "tests/testing/rpc_helpers.h"

namespace dserve::tests {

void SharedServerEnvironment::SetUp() {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(options_);
  ASSERT_TRUE(server.ok()) << server.status();
  auto shared = std::make_unique<SharedServer>();
  shared->server = std::move(*server);
  shared->stub =
      dserve::v1::DiffusionService::NewStub(shared->server->channel());
  absl::StatusOr<dserve::v1::ModelInfo> model = DefaultModel(*shared->stub);
  ASSERT_TRUE(model.ok()) << model.status();
  shared->model = *std::move(model);
  owned_ = std::move(shared);
  *slot_ = owned_.get();
}

void SharedServerEnvironment::TearDown() {
  *slot_ = nullptr;
  if (owned_ == nullptr) return;
  owned_->stub.reset();
  absl::StatusOr<int> code = owned_->server->Stop();
  EXPECT_TRUE(code.ok()) << code.status();
  if (code.ok()) {
    EXPECT_EQ(*code, 0) << "server exit code after SIGTERM";
  }
  owned_.reset();
}

}  // namespace dserve::tests
