// The CLI commands against a scripted in-process DiffusionService: which
// lines reach stdout, what files are written, and which exit code each
// outcome gives.

#include "clients/commands.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::clients {
namespace {

using dserve::v1::GenerateEvent;
using ::testing::HasSubstr;
using ::testing::Not;

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream data;
  data << file.rdbuf();
  return data.str();
}

// Replays `events` on Generate and WatchJob, then ends with `final_status`.
class ScriptedService final : public dserve::v1::DiffusionService::Service {
 public:
  std::vector<GenerateEvent> events;
  grpc::Status final_status;
  std::vector<dserve::v1::Job> jobs;
  std::vector<dserve::v1::ModelInfo> models;
  dserve::v1::GenerateRequest last_request;

  grpc::Status ListModels(grpc::ServerContext*,
                          const dserve::v1::ListModelsRequest*,
                          dserve::v1::ListModelsResponse* response) override {
    for (const dserve::v1::ModelInfo& m : models) *response->add_models() = m;
    return grpc::Status::OK;
  }

  grpc::Status Generate(grpc::ServerContext*,
                        const dserve::v1::GenerateRequest* request,
                        grpc::ServerWriter<GenerateEvent>* writer) override {
    last_request = *request;
    for (const GenerateEvent& event : events) writer->Write(event);
    return final_status;
  }
  grpc::Status WatchJob(grpc::ServerContext*,
                        const dserve::v1::WatchJobRequest*,
                        grpc::ServerWriter<GenerateEvent>* writer) override {
    for (const GenerateEvent& event : events) writer->Write(event);
    return final_status;
  }
  grpc::Status ListJobs(grpc::ServerContext*,
                        const dserve::v1::ListJobsRequest* request,
                        dserve::v1::ListJobsResponse* response) override {
    // Two pages of one job each, so paging is exercised.
    const size_t index = request->page_token().empty() ? 0 : 1;
    if (index < jobs.size()) *response->add_jobs() = jobs[index];
    if (index == 0 && jobs.size() > 1) response->set_next_page_token("p2");
    return grpc::Status::OK;
  }
  grpc::Status CancelJob(grpc::ServerContext*,
                         const dserve::v1::CancelJobRequest* request,
                         dserve::v1::Job* job) override {
    if (request->job_id() != "j1") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "job_id \"" + request->job_id() + "\" not found");
    }
    job->set_job_id("j1");
    job->set_state(dserve::v1::JOB_STATE_CANCELLED);
    return grpc::Status::OK;
  }
};

class CommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    stub_ = dserve::v1::DiffusionService::NewStub(
        server_->InProcessChannel(grpc::ChannelArguments()));
    env_ = CommandEnv{&out_, &err_, absl::Seconds(10), true};
  }
  void TearDown() override { server_->Shutdown(); }

  static GenerateEvent Event(const std::string& job_id) {
    GenerateEvent event;
    event.set_job_id(job_id);
    return event;
  }

  void ScriptSuccess(int frames) {
    GenerateEvent queued = Event("j1");
    queued.mutable_queued()->set_position(0);
    GenerateEvent started = Event("j1");
    started.mutable_started()->set_replica(1);
    GenerateEvent progress = Event("j1");
    progress.mutable_progress()->set_step(1);
    progress.mutable_progress()->set_total(1);
    GenerateEvent result = Event("j1");
    result.mutable_result()->set_seed(99);
    for (int i = 0; i < frames; ++i) {
      dserve::v1::Media* media = result.mutable_result()->add_media();
      media->set_data("png-bytes-" + std::to_string(i));
      media->set_frame_index(i);
    }
    service_.events = {queued, started, progress, result};
  }

  ScriptedService service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<dserve::v1::DiffusionService::Stub> stub_;
  std::ostringstream out_;
  std::ostringstream err_;
  CommandEnv env_;
};

TEST_F(CommandsTest, GenerateWritesFramesAndPrintsSeed) {
  ScriptSuccess(2);
  dserve::v1::GenerateRequest request;
  request.set_prompt("p");
  const std::string out = TempDir() + "/gen.png";
  EXPECT_EQ(RunGenerate(*stub_, request, out, env_), 0) << err_.str();
  EXPECT_EQ(service_.last_request.prompt(), "p");
  EXPECT_EQ(out_.str(),
            "job_id: j1\nreplica: 1\nseed: 99\n"
            "timings: queue 0.0 ms, text 0.0 ms, denoise 0.0 ms "
            "(0.0 ms/step), decode 0.0 ms, total 0.0 ms\n"
            "wrote: " + TempDir() + "/gen_0000.png\n"
            "wrote: " + TempDir() + "/gen_0001.png\n");
  EXPECT_EQ(ReadFile(TempDir() + "/gen_0001.png"), "png-bytes-1");
  EXPECT_THAT(err_.str(), HasSubstr("queued at position 0"));
  EXPECT_THAT(err_.str(), HasSubstr("1/1 100%"));
}

// The models command shows the parameter count and each rank's weights.
TEST_F(CommandsTest, ModelsShowsParametersAndBytesPerRank) {
  dserve::v1::ModelInfo wan;
  wan.set_name("wan");
  wan.set_parameter_count(1755618867);
  for (int64_t dit : {int64_t{2890558720}, int64_t{2890558720}}) {
    wan.add_dit_bytes_per_rank(dit);
    wan.add_weight_bytes_per_rank(dit + 507570124);
  }
  dserve::v1::ModelInfo small;
  small.set_name("small");
  small.set_parameter_count(2000000);
  small.add_dit_bytes_per_rank(int64_t{3} << 20);
  small.add_weight_bytes_per_rank(int64_t{9} << 19);
  dserve::v1::ModelInfo tiny;
  tiny.set_name("tiny");  // a server that does not report sizes
  service_.models = {wan, small, tiny};
  EXPECT_EQ(RunModels(*stub_, env_), 0) << err_.str();
  EXPECT_THAT(out_.str(),
              HasSubstr("  parameters 1.756 B, weights per rank: 3.16 GiB "
                        "(DiT 2.69), 3.16 GiB (DiT 2.69)\n"));
  EXPECT_THAT(out_.str(),
              HasSubstr("  parameters 0.002 B, weights per rank: 4.50 MiB "
                        "(DiT 3.00)\n"));
  EXPECT_EQ(out_.str().find("parameters", out_.str().find("tiny")),
            std::string::npos);
}

TEST_F(CommandsTest, GenerateFailureGivesStatusExitCodeAndNoFile) {
  service_.events = {Event("j2")};
  service_.final_status = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                       "queue full (16 of 16)");
  const std::string out = TempDir() + "/refused.png";
  EXPECT_EQ(RunGenerate(*stub_, dserve::v1::GenerateRequest(), out, env_), 18);
  EXPECT_THAT(err_.str(),
              HasSubstr("error: RESOURCE_EXHAUSTED: queue full (16 of 16)"));
  EXPECT_FALSE(std::ifstream(out).good());
}

TEST_F(CommandsTest, StreamEndingOkWithoutResultIsLocalFailure) {
  service_.events = {Event("j3")};
  EXPECT_EQ(RunGenerate(*stub_, dserve::v1::GenerateRequest(),
                        TempDir() + "/none.png", env_),
            3);
  EXPECT_THAT(err_.str(), HasSubstr("without a result"));
}

TEST_F(CommandsTest, WatchOfCancelledJobExitsWithCancelledCode) {
  GenerateEvent ended = Event("j1");
  ended.mutable_ended()->set_state(dserve::v1::JOB_STATE_CANCELLED);
  ended.mutable_ended()->set_status_code(1);
  ended.mutable_ended()->set_status_message("cancelled by CancelJob");
  service_.events = {ended};
  EXPECT_EQ(RunWatch(*stub_, "j1", "", env_), 11);
  EXPECT_THAT(out_.str(), HasSubstr("state: cancelled\n"));
  EXPECT_THAT(err_.str(), HasSubstr("CANCELLED: cancelled by CancelJob"));
}

TEST_F(CommandsTest, WatchWithoutOutWritesNothing) {
  ScriptSuccess(1);
  env_.show_progress = false;
  EXPECT_EQ(RunWatch(*stub_, "j1", "", env_), 0);
  EXPECT_THAT(out_.str(), HasSubstr("seed: 99\n"));
  EXPECT_THAT(out_.str(), Not(HasSubstr("wrote:")));
  EXPECT_EQ(err_.str(), "");
}

// ENCODE and DECODE progress count other units than denoising steps: the bar
// shows denoising steps only, never moving backwards, and says what the
// replica does around them.
TEST_F(CommandsTest, ProgressBarCountsDenoisingStepsOnly) {
  ScriptSuccess(1);
  auto progress = [](dserve::v1::ProgressStage stage, int step, int total) {
    GenerateEvent event = Event("j1");
    event.mutable_progress()->set_stage(stage);
    event.mutable_progress()->set_step(step);
    event.mutable_progress()->set_total(total);
    event.mutable_progress()->set_elapsed_ms(10.0 * (step + 1));
    return event;
  };
  const GenerateEvent result = service_.events.back();
  service_.events.resize(2);  // queued, started
  for (const GenerateEvent& e :
       {progress(dserve::v1::PROGRESS_STAGE_ENCODE, 0, 2),
        progress(dserve::v1::PROGRESS_STAGE_DENOISE, 1, 2),
        progress(dserve::v1::PROGRESS_STAGE_DENOISE, 2, 2),
        progress(dserve::v1::PROGRESS_STAGE_DECODE, 0, 3),
        progress(dserve::v1::PROGRESS_STAGE_DECODE, 1, 3),
        progress(dserve::v1::PROGRESS_STAGE_DECODE, 3, 3), result}) {
    service_.events.push_back(e);
  }
  EXPECT_EQ(RunGenerate(*stub_, dserve::v1::GenerateRequest(),
                        TempDir() + "/stages.png", env_),
            0)
      << err_.str();
  const std::string err = err_.str();
  EXPECT_THAT(err, HasSubstr("encoding the prompt"));
  EXPECT_THAT(err, HasSubstr("decoding 1/3"));
  EXPECT_THAT(err, HasSubstr("decoding 3/3"));
  // Every drawn bar ("[###---] k/2 ...") counts denoising steps, in order.
  std::vector<int> bar_steps;
  size_t pos = 0;
  while ((pos = err.find(']', pos)) != std::string::npos) {
    ++pos;
    const size_t slash = err.find('/', pos);
    ASSERT_NE(slash, std::string::npos);
    bar_steps.push_back(std::stoi(err.substr(pos, slash - pos)));
    EXPECT_EQ(err.substr(slash, 2), "/2") << err;
  }
  EXPECT_EQ(bar_steps, (std::vector<int>{1, 2})) << err;
}

TEST_F(CommandsTest, CancelAndListJobs) {
  EXPECT_EQ(RunCancel(*stub_, "j1", env_), 0);
  EXPECT_EQ(out_.str(), "job_id: j1\nstate: cancelled\n");
  EXPECT_EQ(RunCancel(*stub_, "nope", env_), 15);

  out_.str("");
  dserve::v1::Job a;
  a.set_job_id("a");
  a.set_state(dserve::v1::JOB_STATE_RUNNING);
  dserve::v1::Job b;
  b.set_job_id("b");
  b.set_state(dserve::v1::JOB_STATE_QUEUED);
  service_.jobs = {a, b};
  EXPECT_EQ(RunListJobs(*stub_, std::nullopt, env_), 0);
  EXPECT_THAT(out_.str(), HasSubstr("a  running"));
  EXPECT_THAT(out_.str(), HasSubstr("b  queued"));
}

TEST_F(CommandsTest, UnimplementedCallMapsToItsCode) {
  // The scripted service leaves GetServerInfo unimplemented.
  EXPECT_EQ(RunInfo(*stub_, env_), 22);
  EXPECT_THAT(err_.str(), HasSubstr("UNIMPLEMENTED"));
}

}  // namespace
}  // namespace dserve::clients
