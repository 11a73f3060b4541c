#include "server/diffusion_service.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "scheduler/job_table.h"
#include "scheduler/scheduler.h"
#include "scheduler/testing/fake_replica.h"
#include "server/testing/service_fixtures.h"

namespace dserve::server {
namespace {

using ::dserve::server::testing::Eventually;
using ::dserve::server::testing::TinyModel;
using ::dserve::v1::GenerateEvent;
using ::dserve::v1::GenerateRequest;
using ::testing::HasSubstr;
using scheduler::testing::FakeReplica;

class DiffusionServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { Build(2, /*capacity=*/4); }

  void Build(int replicas, int capacity) {
    for (int i = 0; i < replicas; ++i) {
      replicas_.push_back(std::make_unique<FakeReplica>(i));
      replicas_.back()->SetModels({TinyModel()});
    }
    std::vector<scheduler::ReplicaHandle*> handles;
    for (auto& r : replicas_) handles.push_back(r.get());
    scheduler::SchedulerOptions options;
    options.queue_capacity = capacity;
    options.idle_poll = absl::Milliseconds(10);
    scheduler_ = std::make_unique<scheduler::Scheduler>(options, handles, &clock_);
    jobs_ = std::make_unique<scheduler::JobTable>(scheduler::JobTableOptions(),
                                                  &clock_);
    validator_ = std::make_unique<RequestValidator>(ValidationLimits(),
                                                    [] { return uint64_t{5}; });
    DiffusionServiceOptions service_options;
    service_options.instance_id = "test";
    service_options.on_rejected = [this](const absl::Status& s) {
      absl::MutexLock lock(&rejected_mu_);
      rejected_.push_back(s.code());
    };
    service_ = std::make_unique<DiffusionService>(service_options,
                                                  scheduler_.get(), jobs_.get(),
                                                  validator_.get(), &clock_);
    scheduler_->Start();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = dserve::v1::DiffusionService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    server_->Shutdown(std::chrono::system_clock::now());
    scheduler_->Stop(absl::UnavailableError("test over"));
  }

  static GenerateRequest Request(const std::string& prompt = "a red square") {
    GenerateRequest r;
    r.set_prompt(prompt);
    return r;
  }

  // The first replica that is running a plan, or nullptr.
  FakeReplica* RunningReplica() {
    for (auto& r : replicas_) {
      if (r->running()) return r.get();
    }
    return nullptr;
  }

  scheduler::RealClock clock_;
  std::vector<std::unique_ptr<FakeReplica>> replicas_;
  std::unique_ptr<scheduler::Scheduler> scheduler_;
  std::unique_ptr<scheduler::JobTable> jobs_;
  std::unique_ptr<RequestValidator> validator_;
  std::unique_ptr<DiffusionService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<dserve::v1::DiffusionService::Stub> stub_;
  absl::Mutex rejected_mu_;
  std::vector<absl::StatusCode> rejected_ ABSL_GUARDED_BY(rejected_mu_);
};

TEST_F(DiffusionServiceTest, GenerateStreamsQueuedStartedProgressResult) {
  grpc::ClientContext context;
  auto reader = stub_->Generate(&context, Request());
  GenerateEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_TRUE(event.has_queued());
  const std::string job_id = event.job_id();
  // Unique across servers: j-<instance>-<random> (server/job_id.h).
  EXPECT_THAT(job_id, ::testing::MatchesRegex("j-test-[a-z2-7]{12}"));
  ASSERT_TRUE(reader->Read(&event));
  ASSERT_TRUE(event.has_started());
  FakeReplica* replica = RunningReplica();
  ASSERT_NE(replica, nullptr);
  EXPECT_EQ(event.started().replica(), replica->index());
  for (int step = 1; step <= 3; ++step) {
    replica->EmitStep(step);
    ASSERT_TRUE(reader->Read(&event));
    EXPECT_EQ(event.progress().step(), step);
    EXPECT_EQ(event.progress().total(), 3);
  }
  replica->Complete();
  ASSERT_TRUE(reader->Read(&event));
  ASSERT_TRUE(event.has_result());
  EXPECT_EQ(event.result().seed(), 5u);
  EXPECT_EQ(event.result().media_size(), 1);
  EXPECT_EQ(event.result().effective_request().width(), 32);
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_TRUE(reader->Finish().ok());

  grpc::ClientContext get_context;
  dserve::v1::GetJobRequest get;
  get.set_job_id(job_id);
  dserve::v1::Job job;
  ASSERT_TRUE(stub_->GetJob(&get_context, get, &job).ok());
  EXPECT_EQ(job.state(), dserve::v1::JOB_STATE_SUCCEEDED);
}

TEST_F(DiffusionServiceTest, InvalidFieldIsInvalidArgumentNamingIt) {
  GenerateRequest r = Request();
  r.set_width(100);
  grpc::ClientContext context;
  auto reader = stub_->Generate(&context, r);
  GenerateEvent event;
  EXPECT_FALSE(reader->Read(&event));
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("width: 100 is not a multiple of 16"));
}

TEST_F(DiffusionServiceTest, UnknownModelIsNotFound) {
  GenerateRequest r = Request();
  r.set_model("nope");
  grpc::ClientContext context;
  dserve::v1::SubmitJobRequest submit;
  *submit.mutable_request() = r;
  dserve::v1::Job job;
  grpc::Status status = stub_->SubmitJob(&context, submit, &job);
  EXPECT_EQ(status.error_code(), grpc::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("served models: tiny"));
}

TEST_F(DiffusionServiceTest, ClientCancelCancelsRunningJob) {
  auto context = std::make_unique<grpc::ClientContext>();
  auto reader = stub_->Generate(context.get(), Request());
  GenerateEvent event;
  ASSERT_TRUE(reader->Read(&event));  // Queued
  const std::string job_id = event.job_id();
  ASSERT_TRUE(reader->Read(&event));  // Started
  FakeReplica* replica = RunningReplica();
  ASSERT_NE(replica, nullptr);
  context->TryCancel();
  ASSERT_TRUE(Eventually([&] { return replica->cancel_requested(); }));
  replica->EndWith(absl::CancelledError("Execute cancelled"));
  while (reader->Read(&event)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::CANCELLED);
  auto job = jobs_->Find(job_id);
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(Eventually([&] { return (*job)->is_terminal(); }));
  EXPECT_EQ((*job)->state(), dserve::v1::JOB_STATE_CANCELLED);
  EXPECT_THAT((*job)->ToProto(false).status_message(),
              HasSubstr("client cancelled or disconnected"));
}

TEST_F(DiffusionServiceTest, TwoConcurrentGeneratesUseDifferentReplicas) {
  grpc::ClientContext c1, c2;
  auto r1 = stub_->Generate(&c1, Request());
  auto r2 = stub_->Generate(&c2, Request());
  GenerateEvent e1, e2;
  ASSERT_TRUE(r1->Read(&e1));
  ASSERT_TRUE(r1->Read(&e1));
  ASSERT_TRUE(r2->Read(&e2));
  ASSERT_TRUE(r2->Read(&e2));
  ASSERT_TRUE(e1.has_started());
  ASSERT_TRUE(e2.has_started());
  EXPECT_NE(e1.started().replica(), e2.started().replica());
  replicas_[0]->Complete();
  replicas_[1]->Complete();
  while (r1->Read(&e1)) {
  }
  while (r2->Read(&e2)) {
  }
  EXPECT_TRUE(r1->Finish().ok());
  EXPECT_TRUE(r2->Finish().ok());
}

TEST_F(DiffusionServiceTest, SubmitJobIsIdempotentAndCancelJobWorks) {
  for (auto& r : replicas_) r->SetState(dserve::v1::REPLICA_STATE_STARTING);
  dserve::v1::SubmitJobRequest submit;
  *submit.mutable_request() = Request();
  submit.mutable_request()->set_client_request_id("abc");
  dserve::v1::Job first, second;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->SubmitJob(&context, submit, &first).ok());
  }
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->SubmitJob(&context, submit, &second).ok());
  }
  EXPECT_EQ(first.job_id(), second.job_id());
  EXPECT_EQ(first.state(), dserve::v1::JOB_STATE_QUEUED);

  dserve::v1::CancelJobRequest cancel;
  cancel.set_job_id(first.job_id());
  dserve::v1::Job cancelled;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->CancelJob(&context, cancel, &cancelled).ok());
  EXPECT_EQ(cancelled.state(), dserve::v1::JOB_STATE_CANCELLED);
  EXPECT_THAT(cancelled.status_message(), HasSubstr("cancelled by CancelJob"));

  // Watching a finished job replays its end.
  grpc::ClientContext watch_context;
  dserve::v1::WatchJobRequest watch;
  watch.set_job_id(first.job_id());
  auto reader = stub_->WatchJob(&watch_context, watch);
  GenerateEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.ended().state(), dserve::v1::JOB_STATE_CANCELLED);
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_TRUE(reader->Finish().ok());

  grpc::ClientContext list_context;
  dserve::v1::ListJobsRequest list;
  list.add_states(dserve::v1::JOB_STATE_CANCELLED);
  dserve::v1::ListJobsResponse listed;
  ASSERT_TRUE(stub_->ListJobs(&list_context, list, &listed).ok());
  ASSERT_EQ(listed.jobs_size(), 1);
  EXPECT_EQ(listed.jobs(0).job_id(), first.job_id());
}

TEST_F(DiffusionServiceTest, UnknownJobIsNotFound) {
  grpc::ClientContext context;
  dserve::v1::GetJobRequest get;
  get.set_job_id("j-404");
  dserve::v1::Job job;
  grpc::Status status = stub_->GetJob(&context, get, &job);
  EXPECT_EQ(status.error_code(), grpc::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "job j-404 not found");
}

TEST_F(DiffusionServiceTest, JobOfAnotherInstanceIsNotFoundAndSaysWhose) {
  grpc::ClientContext context;
  dserve::v1::GetJobRequest get;
  get.set_job_id("j-otherpod-abcdefghijkl");
  dserve::v1::Job job;
  grpc::Status status = stub_->GetJob(&context, get, &job);
  EXPECT_EQ(status.error_code(), grpc::NOT_FOUND);
  EXPECT_THAT(status.error_message(),
              HasSubstr("created by server instance otherpod and this is "
                        "instance test"));
}

TEST_F(DiffusionServiceTest, FullQueueIsResourceExhausted) {
  for (auto& r : replicas_) r->SetState(dserve::v1::REPLICA_STATE_STARTING);
  grpc::Status last;
  for (int i = 0; i < 5; ++i) {
    grpc::ClientContext context;
    dserve::v1::SubmitJobRequest submit;
    *submit.mutable_request() = Request();
    dserve::v1::Job job;
    last = stub_->SubmitJob(&context, submit, &job);
    if (i < 4) {
      ASSERT_TRUE(last.ok()) << last.error_message();
    }
  }
  EXPECT_EQ(last.error_code(), grpc::RESOURCE_EXHAUSTED);
  EXPECT_THAT(last.error_message(), HasSubstr("queue is full (4 of 4"));
  {
    // The refusal was reported (dserve_requests_rejected_total).
    absl::MutexLock lock(&rejected_mu_);
    EXPECT_EQ(rejected_, std::vector<absl::StatusCode>{
                             absl::StatusCode::kResourceExhausted});
  }
  // The rejected request left no job behind.
  grpc::ClientContext list_context;
  dserve::v1::ListJobsResponse listed;
  ASSERT_TRUE(stub_->ListJobs(&list_context, {}, &listed).ok());
  EXPECT_EQ(listed.jobs_size(), 4);
}

TEST_F(DiffusionServiceTest, DrainingRejectsNewWork) {
  service_->StartDraining();
  grpc::ClientContext context;
  auto reader = stub_->Generate(&context, Request());
  GenerateEvent event;
  EXPECT_FALSE(reader->Read(&event));
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("draining"));

  grpc::ClientContext info_context;
  dserve::v1::ServerInfo info;
  ASSERT_TRUE(stub_->GetServerInfo(&info_context, {}, &info).ok());
  EXPECT_TRUE(info.draining());
  EXPECT_EQ(info.replicas_size(), 2);
  EXPECT_EQ(info.queue_capacity(), 4);
  EXPECT_EQ(info.default_model(), "tiny");
}

TEST_F(DiffusionServiceTest, ClientDeadlineEndsQueuedJob) {
  for (auto& r : replicas_) r->SetState(dserve::v1::REPLICA_STATE_STARTING);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(300));
  auto reader = stub_->Generate(&context, Request());
  GenerateEvent event;
  ASSERT_TRUE(reader->Read(&event));
  const std::string job_id = event.job_id();
  while (reader->Read(&event)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::DEADLINE_EXCEEDED);
  auto job = jobs_->Find(job_id);
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(Eventually([&] { return (*job)->is_terminal(); }));
  EXPECT_EQ((*job)->state(), dserve::v1::JOB_STATE_DEADLINE_EXCEEDED);
}

TEST_F(DiffusionServiceTest, ListModelsAndNoReplicaReady) {
  {
    grpc::ClientContext context;
    dserve::v1::ListModelsResponse models;
    ASSERT_TRUE(stub_->ListModels(&context, {}, &models).ok());
    ASSERT_EQ(models.models_size(), 1);
    EXPECT_EQ(models.models(0).name(), "tiny");
  }
  for (auto& r : replicas_) r->SetModels({});
  grpc::ClientContext context;
  dserve::v1::SubmitJobRequest submit;
  *submit.mutable_request() = Request();
  dserve::v1::Job job;
  grpc::Status status = stub_->SubmitJob(&context, submit, &job);
  EXPECT_EQ(status.error_code(), grpc::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("no replica is ready yet"));

  for (auto& r : replicas_) r->SetState(dserve::v1::REPLICA_STATE_FAILED);
  grpc::ClientContext failed_context;
  status = stub_->SubmitJob(&failed_context, submit, &job);
  EXPECT_EQ(status.error_code(), grpc::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("every replica failed"));
}


// Finding 5 of issue 16: client_request_id is scoped to the caller and bound
// to its request, and a Generate that attaches to an existing job does not
// own it (its disconnect does not cancel the job).
TEST_F(DiffusionServiceTest, ClientRequestIdIsScopedBoundAndAttachedStreamsDoNotCancel) {
  for (auto& r : replicas_) r->SetState(dserve::v1::REPLICA_STATE_STARTING);
  const std::string key(128, 'k');
  GenerateRequest request = Request();
  request.set_client_request_id(key);
  auto first_queued = [&](grpc::ClientContext* context,
                          const std::string& bearer,
                          const GenerateRequest& r) {
    context->AddMetadata("authorization", "Bearer " + bearer);
    auto reader = stub_->Generate(context, r);
    GenerateEvent event;
    EXPECT_TRUE(reader->Read(&event));
    EXPECT_TRUE(event.has_queued());
    return std::make_pair(std::move(reader), event.job_id());
  };
  grpc::ClientContext owner_context;
  auto [owner, job_id] = first_queued(&owner_context, "alice", request);

  // Another caller with the same key gets its own job.
  grpc::ClientContext other_context;
  auto [other, other_id] = first_queued(&other_context, "eve", request);
  EXPECT_NE(other_id, job_id);

  // The same caller and request attaches; its disconnect cancels nothing.
  {
    grpc::ClientContext attached_context;
    auto [attached, attached_id] =
        first_queued(&attached_context, "alice", request);
    EXPECT_EQ(attached_id, job_id);
    attached_context.TryCancel();
    EXPECT_FALSE(attached->Finish().ok());
  }
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_FALSE((*jobs_->Find(job_id))->is_terminal());

  // The same key with a different request is refused, naming the key
  // (truncated) and the job.
  {
    GenerateRequest changed = request;
    changed.set_prompt("a blue circle");
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer alice");
    auto reader = stub_->Generate(&context, changed);
    GenerateEvent event;
    EXPECT_FALSE(reader->Read(&event));
    grpc::Status status = reader->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
    EXPECT_THAT(status.error_message(),
                HasSubstr(std::string(64, 'k') + "... (128 bytes)\" is "
                          "already used by job " + job_id));
    EXPECT_THAT(status.error_message(), ::testing::Not(HasSubstr(key)));
  }

  // The owner's disconnect still cancels its job; the other caller's job
  // is untouched.
  owner_context.TryCancel();
  EXPECT_FALSE(owner->Finish().ok());
  EXPECT_TRUE(Eventually([&] { return (*jobs_->Find(job_id))->is_terminal(); }));
  EXPECT_EQ((*jobs_->Find(job_id))->state(), dserve::v1::JOB_STATE_CANCELLED);
  EXPECT_FALSE((*jobs_->Find(other_id))->is_terminal());
  other_context.TryCancel();
  other->Finish();
}


// Finding 2 of issue 16: unknown fields are discarded at admission, so the
// stored job and every reply hold none of them.
TEST_F(DiffusionServiceTest, UnknownFieldsAreDiscardedAtAdmission) {
  for (auto& r : replicas_) r->SetState(dserve::v1::REPLICA_STATE_STARTING);
  dserve::v1::SubmitJobRequest submit;
  *submit.mutable_request() = Request();
  submit.mutable_request()->set_client_request_id("with-unknown");
  const std::string big(1 << 20, 'u');
  submit.mutable_request()
      ->GetReflection()
      ->MutableUnknownFields(submit.mutable_request())
      ->AddLengthDelimited(9999, big);
  ASSERT_GT(submit.ByteSizeLong(), size_t{1} << 20);
  dserve::v1::Job job;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->SubmitJob(&context, submit, &job).ok());
  }
  EXPECT_LT(job.ByteSizeLong(), 4096u);
  std::shared_ptr<scheduler::Job> stored = *jobs_->Find(job.job_id());
  EXPECT_TRUE(stored->request()
                  .GetReflection()
                  ->GetUnknownFields(stored->request())
                  .empty());
  EXPECT_TRUE(stored->effective_request()
                  .GetReflection()
                  ->GetUnknownFields(stored->effective_request())
                  .empty());
  EXPECT_LT(stored->request().ByteSizeLong(), 1024u);
  EXPECT_LT(stored->ToProto(/*include_result=*/true).ByteSizeLong(), 4096u);
  {
    dserve::v1::GetJobRequest get;
    get.set_job_id(job.job_id());
    dserve::v1::Job got;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->GetJob(&context, get, &got).ok());
    EXPECT_LT(got.ByteSizeLong(), 4096u);
  }
  // A retry with the same key (and the same unknown field) is the same
  // request: it returns the same job.
  dserve::v1::Job again;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->SubmitJob(&context, submit, &again).ok());
  EXPECT_EQ(again.job_id(), job.job_id());
}

// Finding 7 of issue 16: ListJobs refuses more than 64 states before taking
// the table lock; repeated states within the cap collapse.
TEST_F(DiffusionServiceTest, ListJobsCapsStates) {
  dserve::v1::ListJobsRequest list;
  for (int i = 0; i < 65; ++i) list.add_states(dserve::v1::JOB_STATE_QUEUED);
  dserve::v1::ListJobsResponse response;
  {
    grpc::ClientContext context;
    grpc::Status status = stub_->ListJobs(&context, list, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(status.error_message(),
              "states: 65 entries is too many (allowed: at most 64; name each "
              "state once)");
  }
  list.mutable_states()->Truncate(64);
  grpc::ClientContext context;
  EXPECT_TRUE(stub_->ListJobs(&context, list, &response).ok());
}

// Issue 16, finding 6: the leader address and the worker pids are internal.
TEST(PublicReplicaInfoTest, HidesInternalsUnlessExposed) {
  dserve::v1::ReplicaInfo info;
  info.set_index(1);
  info.set_state(dserve::v1::REPLICA_STATE_READY);
  info.set_world_size(2);
  info.set_leader_address("127.0.0.1:4242");
  info.add_pids(101);
  info.add_pids(102);
  info.set_jobs_completed(7);
  const dserve::v1::ReplicaInfo hidden = PublicReplicaInfo(info, false);
  EXPECT_TRUE(hidden.leader_address().empty());
  EXPECT_EQ(hidden.pids_size(), 0);
  EXPECT_EQ(hidden.index(), 1);
  EXPECT_EQ(hidden.world_size(), 2);
  EXPECT_EQ(hidden.jobs_completed(), 7);
  const dserve::v1::ReplicaInfo exposed = PublicReplicaInfo(info, true);
  EXPECT_EQ(exposed.leader_address(), "127.0.0.1:4242");
  EXPECT_THAT(exposed.pids(), ::testing::ElementsAre(101, 102));
}

// GetServerInfo itself goes through PublicReplicaInfo (default: hidden).
TEST_F(DiffusionServiceTest, ServerInfoHasNoLeaderAddressOrPidsByDefault) {
  grpc::ClientContext context;
  dserve::v1::ServerInfo info;
  ASSERT_TRUE(stub_->GetServerInfo(&context, {}, &info).ok());
  ASSERT_EQ(info.replicas_size(), 2);
  for (const auto& replica : info.replicas()) {
    EXPECT_TRUE(replica.leader_address().empty());
    EXPECT_EQ(replica.pids_size(), 0);
  }
}
}  // namespace
}  // namespace dserve::server
