// Every invalid request field is refused before it reaches a replica, with
// the status code DESIGN.md §2 gives it and a message that names the field
// and the offending value. Checked through Generate and SubmitJob.

#include <grpcpp/client_context.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "tests/testing/rpc_helpers.h"
#include "tests/testing/server_process.h"
#include "tests/testing/shared_server.h"

namespace dserve::tests {
namespace {

using dserve::v1::GenerateRequest;
using ::testing::HasSubstr;

struct InvalidCase {
  std::string name;
  // Makes the request invalid in one field and returns the offending value
  // as the message must quote it.
  std::function<std::string(GenerateRequest*, const dserve::v1::ModelInfo&)>
      mutate;
  // Must appear in the error message.
  std::string field;
  grpc::StatusCode code = grpc::StatusCode::INVALID_ARGUMENT;
};

std::string Str(int64_t value) { return std::to_string(value); }

std::vector<InvalidCase> InvalidCases() {
  using M = const dserve::v1::ModelInfo&;
  return {
      {"width_negative",
       [](GenerateRequest* r, M) {
         r->set_width(-8);
         return Str(-8);
       },
       "width"},
      {"width_not_multiple",
       [](GenerateRequest* r, M m) {
         r->set_width(m.size_step() * 4 + 1);
         return Str(r->width());
       },
       "width"},
      {"width_too_large",
       [](GenerateRequest* r, M m) {
         r->set_width(m.max_width() + m.size_step());
         return Str(r->width());
       },
       "width"},
      {"height_negative",
       [](GenerateRequest* r, M) {
         r->set_height(-8);
         return Str(-8);
       },
       "height"},
      {"height_too_large",
       [](GenerateRequest* r, M m) {
         r->set_height(m.max_height() + m.size_step());
         return Str(r->height());
       },
       "height"},
      {"frames_negative",
       [](GenerateRequest* r, M) {
         r->set_num_frames(-1);
         return Str(-1);
       },
       "num_frames"},
      {"frames_too_many",
       [](GenerateRequest* r, M m) {
         r->set_num_frames(m.max_frames() + 1);
         return Str(r->num_frames());
       },
       "num_frames"},
      {"steps_negative",
       [](GenerateRequest* r, M) {
         r->set_num_inference_steps(-1);
         return Str(-1);
       },
       "num_inference_steps"},
      {"steps_too_many",
       [](GenerateRequest* r, M) {
         r->set_num_inference_steps(100000);
         return Str(100000);
       },
       "num_inference_steps"},
      {"guidance_negative",
       [](GenerateRequest* r, M) {
         r->set_guidance_scale(-1.0f);
         return std::string("-1");
       },
       "guidance_scale"},
      {"guidance_too_large",
       [](GenerateRequest* r, M) {
         r->set_guidance_scale(51.0f);
         return std::string("51");
       },
       "guidance_scale"},
      {"flow_shift_too_small",
       [](GenerateRequest* r, M) {
         r->set_flow_shift(0.05f);
         return std::string("0.05");
       },
       "flow_shift"},
      {"flow_shift_too_large",
       [](GenerateRequest* r, M) {
         r->set_flow_shift(21.0f);
         return std::string("21");
       },
       "flow_shift"},
      {"prompt_empty",
       [](GenerateRequest* r, M) {
         r->clear_prompt();
         return std::string();
       },
       "prompt"},
      {"prompt_too_long",
       [](GenerateRequest* r, M) {
         // Messages quote a long text by its length, not its content.
         r->set_prompt(std::string(2049, 'a'));
         return Str(2049);
       },
       "prompt"},
      {"negative_prompt_too_long",
       [](GenerateRequest* r, M) {
         r->set_negative_prompt(std::string(2049, 'a'));
         return Str(2049);
       },
       "negative_prompt"},
      {"priority_too_high",
       [](GenerateRequest* r, M) {
         r->set_priority(101);
         return Str(101);
       },
       "priority"},
      {"priority_too_low",
       [](GenerateRequest* r, M) {
         r->set_priority(-101);
         return Str(-101);
       },
       "priority"},
      {"preview_negative",
       [](GenerateRequest* r, M) {
         r->set_preview_every_n_steps(-1);
         return Str(-1);
       },
       "preview_every_n_steps"},
      {"preview_beyond_steps",
       [](GenerateRequest* r, M) {
         r->set_num_inference_steps(2);
         r->set_preview_every_n_steps(3);
         return Str(3);
       },
       "preview_every_n_steps"},
      {"sampler_unknown",
       [](GenerateRequest* r, M) {
         r->set_sampler(static_cast<dserve::v1::Sampler>(99));
         return Str(99);
       },
       "sampler"},
      {"output_format_unknown",
       [](GenerateRequest* r, M) {
         r->set_output_format(static_cast<dserve::v1::OutputFormat>(99));
         return Str(99);
       },
       "output_format"},
      {"client_request_id_too_long",
       [](GenerateRequest* r, M) {
         r->set_client_request_id(std::string(129, 'x'));
         return Str(129);
       },
       "client_request_id"},
      {"prompt_too_many_words",
       [](GenerateRequest* r, M m) {
         // The default model counts words (max_prompt_tokens of them);
         // one more is refused at admission, never by a replica.
         std::string words;
         for (int i = 0; i <= m.max_prompt_tokens(); ++i) words += "red ";
         r->set_prompt(words);
         return Str(m.max_prompt_tokens() + 1) + " words";
       },
       "prompt"},
      {"negative_prompt_too_many_words",
       [](GenerateRequest* r, M m) {
         std::string words;
         for (int i = 0; i <= m.max_prompt_tokens(); ++i) words += "blue ";
         r->set_negative_prompt(words);
         return Str(m.max_prompt_tokens() + 1) + " words";
       },
       "negative_prompt"},
      {"fps_too_high",
       [](GenerateRequest* r, M) {
         r->set_fps(1000);
         return Str(1000);
       },
       "fps"},
      {"model_name_echoed_truncated",
       [](GenerateRequest* r, M) {
         r->set_model(std::string(100000, 'm'));
         return std::string(64, 'm') + "... (100000 bytes)";
       },
       "model", grpc::StatusCode::NOT_FOUND},
      {"model_unknown",
       [](GenerateRequest* r, M) {
         r->set_model("no-such-model");
         return std::string("no-such-model");
       },
       "model", grpc::StatusCode::NOT_FOUND},
  };
}

// One server for the whole binary: every case is a refusal, so they cannot
// disturb each other.
SharedServer* shared = nullptr;
::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(
        new SharedServerEnvironment(ServerProcess::Options(), &shared));

class ValidationE2eTest : public ::testing::TestWithParam<InvalidCase> {
 protected:
  void SetUp() override {
    ASSERT_NE(shared, nullptr) << "server did not start";
  }
};

void ExpectRefused(const grpc::Status& status, const InvalidCase& c,
                   const std::string& value) {
  EXPECT_EQ(status.error_code(), c.code)
      << "message: " << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(c.field));
  EXPECT_THAT(status.error_message(), HasSubstr(value));
}

TEST_P(ValidationE2eTest, GenerateRefusesWithFieldNamed) {
  const InvalidCase& c = GetParam();
  GenerateRequest request = SmallRequest(shared->model, 32, 2);
  const std::string value = c.mutate(&request, shared->model);
  const GenerateOutcome outcome =
      GenerateToEnd(*shared->stub, request, absl::Seconds(30));
  ExpectRefused(outcome.status, c, value);
  // Refused before admission: no job events at all.
  EXPECT_TRUE(outcome.events.empty())
      << "first event: " << outcome.events.front().DebugString();
}

TEST_P(ValidationE2eTest, SubmitJobRefusesWithFieldNamed) {
  const InvalidCase& c = GetParam();
  dserve::v1::SubmitJobRequest submit;
  *submit.mutable_request() = SmallRequest(shared->model, 32, 2);
  const std::string value = c.mutate(submit.mutable_request(), shared->model);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
  dserve::v1::Job job;
  ExpectRefused(shared->stub->SubmitJob(&context, submit, &job), c, value);
}

INSTANTIATE_TEST_SUITE_P(Fields, ValidationE2eTest,
                         ::testing::ValuesIn(InvalidCases()),
                         [](const ::testing::TestParamInfo<InvalidCase>& info) {
                           return info.param.name;
                         });

// The base request of the table is itself valid, so every refusal above is
// due to the one field each case changes.
class ValidationBaselineE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(shared, nullptr) << "server did not start";
  }
};

TEST_F(ValidationBaselineE2eTest, BaseRequestIsAccepted) {
  const GenerateOutcome outcome = GenerateToEnd(
      *shared->stub, SmallRequest(shared->model, 32, 2), absl::Seconds(60));
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_NE(outcome.result(), nullptr);
}

// The 17-word prompt for the default model (16 words at most) is refused at
// admission: no Queued event, no job, and every replica stays READY (before
// the limits were shared it was queued, started and then refused by the
// replica, which was held BUSY for 2 s).
TEST_F(ValidationBaselineE2eTest, OverlongPromptRefusedAtAdmission) {
  ASSERT_EQ(shared->model.prompt_tokenizer(), "words");
  ASSERT_EQ(shared->model.max_prompt_tokens(), 16);
  // Replicas may still be starting (the server serves once one is READY):
  // those READY now must stay READY, and none may turn BUSY.
  auto replica_states = [] {
    grpc::ClientContext context;
    dserve::v1::ServerInfo info;
    EXPECT_TRUE(shared->stub
                    ->GetServerInfo(&context,
                                    dserve::v1::GetServerInfoRequest(), &info)
                    .ok());
    std::vector<dserve::v1::ReplicaState> states;
    for (const auto& r : info.replicas()) states.push_back(r.state());
    return states;
  };
  const std::vector<dserve::v1::ReplicaState> before = replica_states();
  GenerateRequest request = SmallRequest(shared->model, 32, 2);
  request.set_prompt(
      "a red circle on a blue background top left a red circle on a blue "
      "background red");  // 17 words
  const GenerateOutcome outcome =
      GenerateToEnd(*shared->stub, request, absl::Seconds(30));
  EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(outcome.status.error_message(),
            "prompt: 17 words is too long for the model's text encoder "
            "(allowed: 0..16 words)");
  EXPECT_TRUE(outcome.events.empty());
  const std::vector<dserve::v1::ReplicaState> after = replica_states();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_NE(after[i], dserve::v1::REPLICA_STATE_BUSY) << "replica " << i;
    if (before[i] == dserve::v1::REPLICA_STATE_READY) {
      EXPECT_EQ(after[i], dserve::v1::REPLICA_STATE_READY) << "replica " << i;
    }
  }
  // 16 words run.
  request.set_prompt(
      "a red circle on a blue background top left a red circle on a blue "
      "background");
  const GenerateOutcome ok =
      GenerateToEnd(*shared->stub, request, absl::Seconds(60));
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
}

// ListModels publishes every limit the replicas enforce.
TEST_F(ValidationBaselineE2eTest, ModelInfoCarriesTheLimits) {
  const dserve::v1::ModelInfo& m = shared->model;
  EXPECT_EQ(m.frame_step(), 1);
  EXPECT_GT(m.max_steps(), 0);
  EXPECT_LT(m.min_guidance_scale(), m.max_guidance_scale());
  EXPECT_GT(m.min_flow_shift(), 0.0f);
  EXPECT_LT(m.min_flow_shift(), m.max_flow_shift());
  ASSERT_EQ(m.samplers_size(), 1);
  EXPECT_EQ(m.samplers(0), dserve::v1::SAMPLER_FLOW_EULER);
  EXPECT_EQ(m.default_sampler(), dserve::v1::SAMPLER_FLOW_EULER);
  EXPECT_EQ(m.default_fps(), 16);
  EXPECT_EQ(m.default_frames(), 1);
}

TEST_F(ValidationBaselineE2eTest, UnknownJobIsNotFound) {
  dserve::v1::Job job;
  {
    grpc::ClientContext context;
    dserve::v1::GetJobRequest request;
    request.set_job_id("no-such-job");
    const grpc::Status status = shared->stub->GetJob(&context, request, &job);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(status.error_message(), HasSubstr("no-such-job"));
  }
  {
    grpc::ClientContext context;
    dserve::v1::CancelJobRequest request;
    request.set_job_id("no-such-job");
    const grpc::Status status =
        shared->stub->CancelJob(&context, request, &job);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  }
}

}  // namespace
}  // namespace dserve::tests
