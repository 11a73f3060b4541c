// Several models per server, end to end on real processes (issue 11 item
// 1): one dserve_server with the built-in model (--model=dserve-tiny-shapes)
// plus a tiny random-weight Wan2.1 checkpoint in both published layouts
// (tools/wan/make_wan_checkpoint.py --layout=both writes wan/ and diffusers/,
// served with --model_repository). ListModels lists all three with their
// own limits; a request to each model runs on that model; the two Wan
// layouts (same weights) give byte-identical videos; an empty model is the
// default; an unknown model is NOT_FOUND naming the served ones. A model
// that does not load ends the server with exit status 1 naming the model
// and the file; a missing model directory fails at once.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/client_context.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "tests/testing/rpc_helpers.h"
#include "tests/testing/server_process.h"
#include "tests/testing/subprocess.h"

namespace dserve::tests {
namespace {

using ::testing::HasSubstr;

constexpr char kBuiltin[] = "dserve-tiny-shapes";
constexpr absl::Duration kJobTimeout = absl::Seconds(60);

// A data file of this test (not executable, so not RunfilePath).
std::string DataFile(const std::string& workspace_relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return std::string(srcdir == nullptr ? "." : srcdir) + "/dserve/" +
         workspace_relative;
}

absl::StatusOr<std::vector<dserve::v1::ModelInfo>> ListModels(Stub& stub) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  dserve::v1::ListModelsResponse response;
  grpc::Status s = stub.ListModels(&context, {}, &response);
  if (!s.ok()) return absl::UnavailableError(s.error_message());
  return std::vector<dserve::v1::ModelInfo>(response.models().begin(),
                                            response.models().end());
}

// A 48x32, 5-frame, 2-step Wan video as RAW_TENSOR (exact bytes).
dserve::v1::GenerateRequest WanRequest(const std::string& model) {
  dserve::v1::GenerateRequest request;
  request.set_model(model);
  request.set_prompt("a red fox runs through snow");
  request.set_width(48);
  request.set_height(32);
  request.set_num_frames(5);
  request.set_num_inference_steps(2);
  request.set_flow_shift(5);
  request.set_seed(7);
  request.set_output_format(dserve::v1::OUTPUT_FORMAT_RAW_TENSOR);
  return request;
}

std::string MediaBytes(const GenerateOutcome& outcome) {
  std::string bytes;
  if (outcome.result() == nullptr) return bytes;
  for (const dserve::v1::Media& m : outcome.result()->media()) {
    bytes += m.data();
  }
  return bytes;
}

class MultiModelE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    repo_ = new std::string(TestTempDir() + "/models");
    absl::StatusOr<CapturedRun> made = RunAndCapture(
        {"/usr/bin/python3", DataFile("tools/wan/make_wan_checkpoint.py"),
         "--out=" + *repo_, "--layout=both", "--preset=tiny",
         "--t5_vocab=512", "--seed=11", "--dtype=fp32",
         "--spiece=" +
             DataFile("worker/models/text/testdata/umt5_test_spm.model")},
        absl::Seconds(120));
    ASSERT_TRUE(made.ok()) << made.status();
    ASSERT_EQ(made->exit_code, 0) << made->stderr_text;
    ASSERT_TRUE(std::filesystem::is_directory(*repo_ + "/wan"));
    ASSERT_TRUE(std::filesystem::is_directory(*repo_ + "/diffusers"));

    ServerProcess::Options options;
    options.replicas = 1;
    options.extra_flags = {std::string("--model=") + kBuiltin,
                           "--model_repository=" + *repo_};
    auto server = ServerProcess::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    stub_ = dserve::v1::DiffusionService::NewStub(server_->channel()).release();
  }

  static void TearDownTestSuite() {
    delete stub_;
    stub_ = nullptr;
    if (server_ != nullptr) {
      absl::StatusOr<int> code = server_->Stop();
      EXPECT_TRUE(code.ok()) << code.status();
      if (code.ok()) {
        EXPECT_EQ(*code, 0);
      }
    }
    delete server_;
    server_ = nullptr;
    delete repo_;
    repo_ = nullptr;
  }

  void SetUp() override { ASSERT_NE(server_, nullptr); }

  static ServerProcess* server_;
  static dserve::v1::DiffusionService::Stub* stub_;
  static std::string* repo_;
};

ServerProcess* MultiModelE2eTest::server_ = nullptr;
dserve::v1::DiffusionService::Stub* MultiModelE2eTest::stub_ = nullptr;
std::string* MultiModelE2eTest::repo_ = nullptr;

TEST_F(MultiModelE2eTest, ListModelsShowsEveryModelWithItsOwnLimits) {
  absl::StatusOr<std::vector<dserve::v1::ModelInfo>> models =
      ListModels(*stub_);
  ASSERT_TRUE(models.ok()) << models.status();
  // --model entries first, then the repository's subfolders by name.
  ASSERT_EQ(models->size(), 3u);
  const dserve::v1::ModelInfo& tiny = (*models)[0];
  const dserve::v1::ModelInfo& diffusers = (*models)[1];
  const dserve::v1::ModelInfo& wan = (*models)[2];
  EXPECT_EQ(tiny.name(), kBuiltin);
  EXPECT_EQ(diffusers.name(), "diffusers");
  EXPECT_EQ(wan.name(), "wan");
  EXPECT_TRUE(tiny.is_default());
  EXPECT_FALSE(diffusers.is_default());
  EXPECT_FALSE(wan.is_default());

  EXPECT_EQ(tiny.prompt_tokenizer(), "words");
  EXPECT_GT(tiny.vocabulary_size(), 0);
  for (const dserve::v1::ModelInfo* m : {&wan, &diffusers}) {
    SCOPED_TRACE(m->name());
    EXPECT_THAT(m->description(), HasSubstr("Wan2.1"));
    EXPECT_EQ(m->prompt_tokenizer(), "sentencepiece");
    EXPECT_EQ(m->size_step(), 16);
    EXPECT_EQ(m->frame_step(), 4);  // 4k+1 frames.
    EXPECT_GT(m->max_frames(), 1);
    EXPECT_GT(m->max_steps(), 0);
    EXPECT_GT(m->max_prompt_tokens(), 0);
    EXPECT_GT(m->samplers_size(), 0);
    EXPECT_EQ(m->default_fps(), 16);
  }
  EXPECT_THAT(wan.description(), HasSubstr("wan layout"));
  EXPECT_THAT(diffusers.description(), HasSubstr("diffusers layout"));
  // Each model reports its own limits, not the default's.
  EXPECT_NE(tiny.max_prompt_tokens(), wan.max_prompt_tokens());
  EXPECT_NE(tiny.max_frames(), wan.max_frames());
  // ...and its own measured cost (the replica times every model it serves),
  // so admission estimates a Wan job with Wan's cost.
  for (const dserve::v1::ModelInfo* m : {&tiny, &wan, &diffusers}) {
    SCOPED_TRACE(m->name());
    ASSERT_TRUE(m->has_cost()) << m->ShortDebugString();
    EXPECT_GT(m->cost().seconds_per_token() +
                  m->cost().seconds_per_token_squared(),
              0);
  }
  EXPECT_NE(tiny.cost().ShortDebugString(), wan.cost().ShortDebugString());
}

TEST_F(MultiModelE2eTest, EachModelServesItsRequestsBothWanLayoutsAgree) {
  const GenerateOutcome from_wan =
      GenerateToEnd(*stub_, WanRequest("wan"), kJobTimeout);
  ASSERT_TRUE(from_wan.status.ok()) << from_wan.status.error_message();
  const GenerateOutcome from_diffusers =
      GenerateToEnd(*stub_, WanRequest("diffusers"), kJobTimeout);
  ASSERT_TRUE(from_diffusers.status.ok())
      << from_diffusers.status.error_message();
  const std::string wan_bytes = MediaBytes(from_wan);
  EXPECT_EQ(wan_bytes.size(), 5u * 32 * 48 * 3 * 4);  // [F, H, W, 3] fp32.
  EXPECT_EQ(wan_bytes, MediaBytes(from_diffusers));

  absl::StatusOr<std::vector<dserve::v1::ModelInfo>> models =
      ListModels(*stub_);
  ASSERT_TRUE(models.ok()) << models.status();
  dserve::v1::GenerateRequest tiny = SmallRequest((*models)[0]);
  tiny.set_model(kBuiltin);
  const GenerateOutcome from_tiny = GenerateToEnd(*stub_, tiny, kJobTimeout);
  ASSERT_TRUE(from_tiny.status.ok()) << from_tiny.status.error_message();
  ASSERT_NE(from_tiny.result(), nullptr);
  EXPECT_EQ(from_tiny.result()->media(0).width(), tiny.width());
}

TEST_F(MultiModelE2eTest, EmptyModelRunsTheDefault) {
  absl::StatusOr<dserve::v1::ModelInfo> model = DefaultModel(*stub_);
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ(model->name(), kBuiltin);
  dserve::v1::GenerateRequest named = SmallRequest(*model);
  named.set_model(kBuiltin);
  dserve::v1::GenerateRequest unnamed = named;
  unnamed.clear_model();
  const GenerateOutcome a = GenerateToEnd(*stub_, named, kJobTimeout);
  const GenerateOutcome b = GenerateToEnd(*stub_, unnamed, kJobTimeout);
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  ASSERT_TRUE(b.status.ok()) << b.status.error_message();
  EXPECT_FALSE(MediaBytes(a).empty());
  EXPECT_EQ(MediaBytes(a), MediaBytes(b));

  // The same request runs on a Wan model when it names one: another model,
  // other pixels (Wan's limits fit a 1-frame 32x32 request too).
  dserve::v1::GenerateRequest on_wan = named;
  on_wan.set_model("wan");
  on_wan.set_width(32);
  on_wan.set_height(32);
  dserve::v1::GenerateRequest on_default = on_wan;
  on_default.clear_model();
  const GenerateOutcome c = GenerateToEnd(*stub_, on_wan, kJobTimeout);
  const GenerateOutcome d = GenerateToEnd(*stub_, on_default, kJobTimeout);
  ASSERT_TRUE(c.status.ok()) << c.status.error_message();
  ASSERT_TRUE(d.status.ok()) << d.status.error_message();
  EXPECT_NE(MediaBytes(c), MediaBytes(d));
}

TEST_F(MultiModelE2eTest, UnknownModelIsNotFoundNamingTheServedOnes) {
  dserve::v1::GenerateRequest request = WanRequest("no-such-model");
  const GenerateOutcome outcome = GenerateToEnd(*stub_, request, kJobTimeout);
  EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(outcome.status.error_message(),
              HasSubstr("model: \"no-such-model\" is not served here (served "
                        "models: dserve-tiny-shapes, diffusers, wan)"));
  EXPECT_TRUE(outcome.events.empty());  // Refused at admission.

  // A long name is echoed cut to 64 characters.
  request.set_model(std::string(500, 'x'));
  const GenerateOutcome long_name = GenerateToEnd(*stub_, request, kJobTimeout);
  EXPECT_EQ(long_name.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(long_name.status.error_message(),
              HasSubstr(std::string(64, 'x') + "... (500 bytes)"));
  EXPECT_LT(long_name.status.error_message().size(), 300u);
}

// Runs dserve_server with `flags` to its end (it must not start); the
// server logs to stdout, its workers to stderr: both are in stderr_text.
CapturedRun RunServerToExit(const std::vector<std::string>& flags) {
  absl::StatusOr<std::string> server = RunfilePath("server/dserve_server");
  absl::StatusOr<std::string> worker = RunfilePath("worker/dserve_worker");
  EXPECT_TRUE(server.ok() && worker.ok());
  if (!server.ok() || !worker.ok()) return {};
  std::vector<std::string> argv = {*server, "--port=0", "--replicas=1",
                                   "--host=127.0.0.1",
                                   "--worker_binary=" + *worker};
  argv.insert(argv.end(), flags.begin(), flags.end());
  absl::StatusOr<CapturedRun> run = RunAndCapture(argv, absl::Seconds(90));
  EXPECT_TRUE(run.ok()) << run.status();
  if (!run.ok()) return CapturedRun{};
  run->stderr_text = run->stdout_text + run->stderr_text;
  return *run;
}

TEST(MultiModelStartTest, AModelThatDoesNotLoadEndsTheServer) {
  const std::string dir = TestTempDir() + "/broken";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.json") << "{ not json";
  const CapturedRun run = RunServerToExit(
      {std::string("--model=") + kBuiltin, "--model=broken=" + dir});
  EXPECT_EQ(run.exit_code, 1) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("cannot start: FAILED_PRECONDITION: "
                                         "replica 0: rank 0 refused to "
                                         "start: model 'broken' (" +
                                         dir));
  EXPECT_THAT(run.stderr_text, HasSubstr(dir + "/config.json"));
}

// A 2-rank replica (cfg=2): every rank loads both models, one ParallelDiT
// each over the same mesh groups, and the models take turns on them.
TEST(MultiModelStartTest, TwoRankReplicaServesEachModel) {
  const std::string dir = TestTempDir() + "/cfg2";
  absl::StatusOr<CapturedRun> made = RunAndCapture(
      {"/usr/bin/python3", DataFile("tools/wan/make_wan_checkpoint.py"),
       "--out=" + dir, "--layout=wan", "--preset=tiny", "--t5_vocab=512",
       "--seed=11", "--dtype=fp32",
       "--spiece=" +
           DataFile("worker/models/text/testdata/umt5_test_spm.model")},
      absl::Seconds(120));
  ASSERT_TRUE(made.ok()) << made.status();
  ASSERT_EQ(made->exit_code, 0) << made->stderr_text;
  const std::string wan_dir =
      std::filesystem::is_directory(dir + "/wan") ? dir + "/wan" : dir;
  ServerProcess::Options options;
  options.replicas = 1;
  options.extra_flags = {"--mesh=cfg=2", "--model=wan=" + wan_dir,
                         std::string("--model=") + kBuiltin};
  auto server = ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = dserve::v1::DiffusionService::NewStub((*server)->channel());
  absl::StatusOr<dserve::v1::ModelInfo> model = DefaultModel(*stub);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->name(), "wan");  // The first --model.
  dserve::v1::GenerateRequest wan = WanRequest("");
  wan.set_guidance_scale(4);  // Both CFG branches, one per rank.
  const GenerateOutcome from_wan = GenerateToEnd(*stub, wan, kJobTimeout);
  ASSERT_TRUE(from_wan.status.ok()) << from_wan.status.error_message();
  EXPECT_EQ(MediaBytes(from_wan).size(), 5u * 32 * 48 * 3 * 4);
  absl::StatusOr<std::vector<dserve::v1::ModelInfo>> models = ListModels(*stub);
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->size(), 2u);
  dserve::v1::GenerateRequest tiny = SmallRequest((*models)[1]);
  tiny.set_model(kBuiltin);
  tiny.set_guidance_scale(4);
  const GenerateOutcome from_tiny = GenerateToEnd(*stub, tiny, kJobTimeout);
  ASSERT_TRUE(from_tiny.status.ok()) << from_tiny.status.error_message();
  // And the first model again after the other ran on the same groups.
  const GenerateOutcome again = GenerateToEnd(*stub, wan, kJobTimeout);
  ASSERT_TRUE(again.status.ok()) << again.status.error_message();
  EXPECT_EQ(MediaBytes(again), MediaBytes(from_wan));
  absl::StatusOr<int> code = (*server)->Stop();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

TEST(MultiModelStartTest, BadModelFlagsFailAtOnceNamingTheFlag) {
  CapturedRun run = RunServerToExit({"--model=gone=/nonexistent/gone"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.stderr_text,
              HasSubstr("--model=gone=/nonexistent/gone: the model's weights "
                        "are missing (no /nonexistent/gone/config.json"));
  run = RunServerToExit(
      {std::string("--model=") + kBuiltin, "--default_model=nope"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.stderr_text,
              HasSubstr("--default_model=nope is not a served model (served: "
                        "dserve-tiny-shapes)"));
}

}  // namespace
}  // namespace dserve::tests
