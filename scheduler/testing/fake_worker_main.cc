// fake_worker: a stand-in for dserve_worker that speaks the same process
// protocol (flags, ready pipe, ReplicaLeader RPC) without LibTorch, so
// LocalReplica's process plumbing can be tested in seconds. Its leader is a
// gRPC callback service like the real one (worker/execute_reactor.h).
//
// Rank 0 writes "store <port>" (a dummy port: there is no real store), binds
// ReplicaLeader on --leader_address and writes "leader <port>". Execute
// streams one StepDone per step (--fake_step_ms apart), stopping with
// CANCELLED when the call is cancelled, then a PlanDone with one media per
// item; a plan with no steps is refused with INVALID_ARGUMENT. Other ranks
// just wait to be killed.
//
// --fake_scenario: "ok" (default), "exit_before_ready" (rank 0 exits with
// status 3 before writing anything), "hang_before_ready" (rank 0 never
// writes anything), "model_error" (rank 0 reports a model that did not
// load on its ready pipe and exits with status 2). GetStatus lists one
// model per --model=NAME=DIR flag (the first is the default), or
// "fake-model".

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/program_flags.h"
#include "common/replica_secret.h"
#include "parallel/device_mesh.h"
#include "parallel/mesh_layout.h"
#include "grpcpp/grpcpp.h"
#include "proto/dserve/internal/v1/replica_leader.grpc.pb.h"
#include "worker/execute_reactor.h"
#include "worker/leader_auth.h"
#include "worker/plan_queue.h"

ABSL_FLAG(int, replica, 0, "");
ABSL_FLAG(int, rank, 0, "");
ABSL_FLAG(int, world, 1, "");
ABSL_FLAG(std::string, store, "", "");
ABSL_FLAG(std::string, store_file, "", "");
ABSL_FLAG(std::string, device, "cpu", "");
ABSL_FLAG(std::string, dtype, "", "");
ABSL_FLAG(std::string, comm, "", "");
ABSL_FLAG(std::string, mesh, "", "");
ABSL_FLAG(std::string, model_dir, "", "");
ABSL_FLAG(std::string, model, "", "");
ABSL_FLAG(std::string, default_model, "", "");
ABSL_FLAG(int, threads, 1, "");
ABSL_FLAG(int, ready_fd, -1, "");
ABSL_FLAG(std::string, leader_address, "127.0.0.1:0", "");
ABSL_FLAG(std::string, fake_scenario, "ok", "");
ABSL_FLAG(int, fake_step_ms, 20, "");

namespace {

using dserve::internal::v1::ExecutionEvent;
using dserve::internal::v1::ExecutionPlan;

class FakeLeader final
    : public dserve::internal::v1::ReplicaLeader::CallbackService {
 public:
  // The names of the --model flags it was given ("fake-model" if none).
  explicit FakeLeader(std::vector<std::string> models)
      : models_(std::move(models)) {}

  // Served like the real leader (a PlanCall drained by the Execute
  // reactor); the plan itself runs on a thread of its own.
  grpc::ServerWriteReactor<ExecutionEvent>* Execute(
      grpc::CallbackServerContext*, const ExecutionPlan* plan) override {
    // What a real leader answers for a plan its model limits refuse.
    if (plan->num_inference_steps() < 1) {
      return dserve::worker::FinishedExecuteReactor(
          absl::InvalidArgumentError("num_inference_steps: 0 is out of range"));
    }
    auto call = std::make_shared<dserve::worker::PlanCall>(*plan);
    std::thread([call] {
      const ExecutionPlan& plan = call->plan();
      for (int step = 1; step <= plan.num_inference_steps(); ++step) {
        absl::SleepFor(absl::Milliseconds(absl::GetFlag(FLAGS_fake_step_ms)));
        if (call->cancelled()) {
          call->Finish(absl::CancelledError("cancelled at a step boundary"));
          return;
        }
        ExecutionEvent event;
        event.mutable_step()->set_step(step);
        event.mutable_step()->set_total(plan.num_inference_steps());
        call->Push(std::move(event));
      }
      ExecutionEvent done;
      for (const auto& item : plan.items()) {
        auto* result = done.mutable_done()->add_items();
        result->set_job_id(item.job_id());
        result->add_media()->set_data(absl::StrCat("seed=", item.seed()));
      }
      call->Push(std::move(done));
      call->Finish(absl::OkStatus());
    }).detach();
    return dserve::worker::StartExecuteReactor(call);
  }

  grpc::ServerUnaryReactor* GetStatus(
      grpc::CallbackServerContext* context,
      const dserve::internal::v1::GetStatusRequest*,
      dserve::internal::v1::ReplicaStatus* status) override {
    status->set_world_size(absl::GetFlag(FLAGS_world));
    // The layout it was given, reported as a real leader does.
    const auto mesh =
        dserve::parallel::ParseMeshSpec(absl::GetFlag(FLAGS_mesh));
    if (mesh.ok()) {
      *status->mutable_mesh() = dserve::parallel::MeshLayoutFromDegrees(*mesh);
    }
    for (const std::string& name : models_) {
      auto* model = status->add_models();
      model->set_name(name);
      model->set_is_default(name == models_.front());
    }
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  const std::vector<std::string> models_;
};

void WriteLine(int fd, const std::string& line) {
  const std::string text = line + "\n";
  if (write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    std::perror("fake_worker: write ready line");
    _exit(4);
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // Every rank is spawned with the replica's secret.
  if (std::getenv(dserve::common::kReplicaSecretEnv) == nullptr) return 6;
  if (absl::GetFlag(FLAGS_rank) != 0) {
    while (true) pause();
  }
  if (absl::GetFlag(FLAGS_fake_scenario) == "exit_before_ready") return 3;
  if (absl::GetFlag(FLAGS_fake_scenario) == "model_error") {
    // What dserve_worker does when a model does not load.
    WriteLine(absl::GetFlag(FLAGS_ready_fd), "store 1");
    WriteLine(absl::GetFlag(FLAGS_ready_fd),
              "error model 'wan' (/m/wan) did not load: /m/wan/config.json: "
              "bad json");
    return 2;
  }
  std::vector<std::string> models;
  for (const std::string& flag :
       dserve::common::RepeatedFlagValues(argc, argv, "model")) {
    models.push_back(flag.substr(0, flag.find('=')));
  }
  if (models.empty()) models.push_back("fake-model");
  if (absl::GetFlag(FLAGS_fake_scenario) == "hang_before_ready") {
    while (true) pause();
  }
  const int fd = absl::GetFlag(FLAGS_ready_fd);
  WriteLine(fd, "store 1");
  FakeLeader leader(std::move(models));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_leader_address),
                           grpc::InsecureServerCredentials(), &port);
  // As the real worker: every call must carry the secret the replica put
  // in the environment, so the replica tests fail if a call forgets it.
  const std::string secret = dserve::common::TakeSecretFromEnvironment(
      dserve::common::kReplicaSecretEnv);
  if (secret.empty()) return 6;
  dserve::worker::SecretCheckedLeader checked(&leader, secret);
  builder.RegisterService(&checked);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) return 5;
  WriteLine(fd, absl::StrCat("leader ", port));
  server->Wait();
  return 0;
}
