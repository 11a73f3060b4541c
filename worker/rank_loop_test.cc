#include "worker/rank_loop.h"

#include <memory>

#include "gtest/gtest.h"
#include "worker/models/model_config.h"
#include "worker/plan_codec.h"
#include "worker/models/pipeline.h"
#include "worker/models/random_weights.h"
#include "worker/models/vae/testing/random_vae_weights.h"
#include "parallel/local_communicator.h"
#include "worker/testing/broadcast_pipe.h"
#include "worker/testing/fault_injecting_communicator.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace dserve::worker {
namespace {

using ::dserve::internal::v1::ExecutionPlan;

class RankLoopTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    at::set_num_threads(1);
    models::PipelineConfig config = models::DefaultModelConfig();
    models::WeightMap weights = models::RandomWeights(config, 7);
    auto pipeline = models::Pipeline::Create(config, std::move(weights));
    ASSERT_TRUE(pipeline.ok()) << pipeline.status();
    pipeline_ = pipeline->release();
  }
  static void TearDownTestSuite() {
    delete pipeline_;
    pipeline_ = nullptr;
  }

  static ExecutionPlan SmallPlan(int steps) {
    ExecutionPlan plan;
    plan.set_width(32);
    plan.set_height(32);
    plan.set_num_frames(1);
    plan.set_num_inference_steps(steps);
    plan.set_flow_shift(pipeline_->config().default_shift);
    auto* item = plan.add_items();
    item->set_job_id("j1");
    item->set_prompt("a red square zebraish");
    item->set_seed(42);
    item->set_guidance_scale(3.0f);
    return plan;
  }

  static models::Pipeline* pipeline_;
};

models::Pipeline* RankLoopTest::pipeline_ = nullptr;

// Cancels once `cancel_after` steps are done and counts what it saw.
class CountingObserver final : public PlanObserver {
 public:
  explicit CountingObserver(int cancel_after) : cancel_after_(cancel_after) {}
  bool ShouldCancel() override {
    ++asked_;
    return cancel_after_ >= 0 && steps_seen_ >= cancel_after_;
  }
  void OnStepDone(const models::DenoiseState& state, int total,
                  double /*step_ms*/) override {
    ++steps_seen_;
    EXPECT_EQ(state.step, steps_seen_);
    total_ = total;
  }
  int asked_ = 0;
  int steps_seen_ = 0;
  int total_ = 0;

 private:
  int cancel_after_;
};

TEST_F(RankLoopTest, OutputEqualsRunningThePipelineDirectly) {
  const ExecutionPlan plan = SmallPlan(3);
  parallel::LocalCommunicator local;
  testing::FaultInjectingCommunicator comm(local);
  RankLoop loop(*pipeline_, comm);
  CountingObserver observer(/*cancel_after=*/-1);
  absl::StatusOr<PlanOutput> out = loop.RunPlan(plan, &observer);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->steps_done, 3);
  EXPECT_EQ(observer.steps_seen_, 3);
  EXPECT_EQ(observer.asked_, 3);
  EXPECT_EQ(observer.total_, 3);
  // One control word per step.
  EXPECT_EQ(comm.broadcasts(), 3);

  absl::StatusOr<models::GenerationSpec> spec = loop.ResolveSpec(plan);
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<models::DenoiseState> state = pipeline_->Prepare(*spec);
  ASSERT_TRUE(state.ok()) << state.status();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(pipeline_->Step(*state).ok());
  at::Tensor expected = pipeline_->Decode(*state);
  ASSERT_TRUE(out->pixels.defined());
  EXPECT_EQ(out->pixels.sizes(), expected.sizes());
  EXPECT_TRUE(at::equal(out->pixels, expected));
  EXPECT_EQ(out->unknown_words, state->unknown_words);
}

TEST_F(RankLoopTest, CancelAtStepKStopsAfterKSteps) {
  for (int k : {0, 2}) {
    parallel::LocalCommunicator local;
    testing::FaultInjectingCommunicator comm(local);
    RankLoop loop(*pipeline_, comm);
    CountingObserver observer(k);
    absl::StatusOr<PlanOutput> out = loop.RunPlan(SmallPlan(5), &observer);
    EXPECT_EQ(out.status().code(), absl::StatusCode::kCancelled) << k;
    EXPECT_EQ(observer.steps_seen_, k);
    // The cancel itself travelled as a control word.
    EXPECT_EQ(comm.broadcasts(), k + 1);
    EXPECT_TRUE(loop.healthy());
  }
}

// Two models on one loop: each plan runs the model it names, an empty name
// runs the default, and an unknown one is NOT_FOUND naming both.
TEST_F(RankLoopTest, EachPlanRunsTheModelItNames) {
  models::PipelineConfig config = models::DefaultModelConfig();
  config.name = "other";
  auto other = models::Pipeline::Create(config, models::RandomWeights(config, 8));
  ASSERT_TRUE(other.ok()) << other.status();
  parallel::LocalCommunicator local;
  RankLoop loop({LoopModel{pipeline_, nullptr}, LoopModel{other->get(), nullptr}},
                "other", local);
  EXPECT_EQ(loop.default_model(), "other");
  ASSERT_EQ(loop.models().size(), 2u);

  auto run_directly = [](const models::Pipeline& p, const ExecutionPlan& plan) {
    parallel::LocalCommunicator alone;
    RankLoop single(p, alone);
    absl::StatusOr<PlanOutput> out = single.RunPlan(plan, nullptr);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? out->pixels : at::Tensor();
  };
  ExecutionPlan plan = SmallPlan(2);
  const at::Tensor want_first = run_directly(*pipeline_, plan);
  const at::Tensor want_other = run_directly(**other, plan);
  ASSERT_FALSE(at::equal(want_first, want_other));

  plan.set_model(pipeline_->config().name);
  absl::StatusOr<PlanOutput> out = loop.RunPlan(plan, nullptr);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(at::equal(out->pixels, want_first));
  plan.set_model("");  // The default: "other".
  out = loop.RunPlan(plan, nullptr);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(at::equal(out->pixels, want_other));
  plan.set_model("other");
  EXPECT_TRUE(loop.ResolveSpec(plan).ok());

  plan.set_model("nope");
  absl::Status unknown = loop.ResolveSpec(plan).status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(unknown.message(),
            "model 'nope' is not served by this replica; it serves '" +
                pipeline_->config().name + "', 'other'");
}

// The leader's clock passes the plan's deadline during step 3: the leader
// sends the deadline control word before step 4 and every rank (here a
// follower fed from the same broadcasts) stops there with
// DEADLINE_EXCEEDED, after the same 3 steps.
TEST_F(RankLoopTest, DeadlineStopsEveryRankAtTheSameStepBoundary) {
  const absl::Time start = absl::FromUnixSeconds(1'800'000'000);
  absl::Time leader_now = start;
  ExecutionPlan plan = SmallPlan(6);
  plan.set_deadline_unix_ms(absl::ToUnixMillis(start + absl::Seconds(25)));

  testing::BroadcastPipe pipe;
  RankLoop leader(*pipeline_, pipe.leader, [&] { return leader_now; });
  // Each step takes 10 s on the leader's clock.
  class Clocked final : public PlanObserver {
   public:
    explicit Clocked(absl::Time& now) : now_(now) {}
    bool ShouldCancel() override { return false; }
    void OnStepDone(const models::DenoiseState&, int, double) override {
      ++steps_;
      now_ += absl::Seconds(10);
    }
    int steps_ = 0;

   private:
    absl::Time& now_;
  } observer(leader_now);
  absl::StatusOr<PlanOutput> led = leader.RunPlan(plan, &observer);
  EXPECT_EQ(led.status().code(), absl::StatusCode::kDeadlineExceeded)
      << led.status();
  EXPECT_NE(led.status().message().find("after 3 of 6 steps"),
            absl::string_view::npos)
      << led.status();
  EXPECT_EQ(observer.steps_, 3);
  EXPECT_TRUE(leader.healthy());

  // A follower's own clock is far past the deadline: it does not decide,
  // it follows the leader's words (3 x continue, then deadline).
  RankLoop follower(*pipeline_, pipe.follower,
                    [&] { return start + absl::Hours(1); });
  absl::StatusOr<PlanOutput> followed = follower.RunPlan(plan, nullptr);
  EXPECT_EQ(followed.status().code(), absl::StatusCode::kDeadlineExceeded)
      << followed.status();
  EXPECT_EQ(followed.status().message(), led.status().message());
  EXPECT_TRUE(follower.healthy());
  EXPECT_EQ(pipe.pending(), 0u);
}

TEST_F(RankLoopTest, NoDeadlineOrAFutureOneRunsToTheEnd) {
  for (int64_t deadline_ms : {int64_t{0}, absl::ToUnixMillis(absl::Now()) +
                                              3'600'000}) {
    ExecutionPlan plan = SmallPlan(2);
    plan.set_deadline_unix_ms(deadline_ms);
    parallel::LocalCommunicator local;
    RankLoop loop(*pipeline_, local);
    absl::StatusOr<PlanOutput> out = loop.RunPlan(plan, nullptr);
    ASSERT_TRUE(out.ok()) << deadline_ms << ": " << out.status();
    EXPECT_EQ(out->steps_done, 2);
  }
}

TEST_F(RankLoopTest, FailedCollectiveMarksTheLoopUnhealthy) {
  parallel::LocalCommunicator local;
  testing::FaultInjectingCommunicator comm(local);
  comm.FailFromCall(2);
  RankLoop loop(*pipeline_, comm);
  CountingObserver observer(-1);
  absl::StatusOr<PlanOutput> out = loop.RunPlan(SmallPlan(4), &observer);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(observer.steps_seen_, 2);
  EXPECT_FALSE(loop.healthy());
}

TEST_F(RankLoopTest, TimingsComeFromTheInjectedClock) {
  // Every reading advances 5 ms, so each measured span is exactly 5 ms.
  absl::Time fake = absl::UnixEpoch();
  parallel::LocalCommunicator local;
  testing::FaultInjectingCommunicator comm(local);
  RankLoop loop(*pipeline_, comm, [&fake] {
    fake += absl::Milliseconds(5);
    return fake;
  });
  absl::StatusOr<PlanOutput> out = loop.RunPlan(SmallPlan(2), nullptr);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_DOUBLE_EQ(out->text_encode_ms, 5.0);
  EXPECT_DOUBLE_EQ(out->denoise_ms, 10.0);
  EXPECT_DOUBLE_EQ(out->decode_ms, 5.0);
}

// The leader decodes alone while the other ranks wait for its next command
// (bounded by the collective timeout): after a decode chunk that ends past
// the heartbeat interval it sends them IDLE, which FollowLeader skips.
TEST_F(RankLoopTest, LongDecodeSendsIdleHeartbeatsToTheOtherRanks) {
  for (const bool long_decode : {true, false}) {
    SCOPED_TRACE(long_decode ? "decode slower than the interval"
                             : "decode within the interval");
    absl::Time fake = absl::UnixEpoch();
    testing::BroadcastPipe pipe;
    RankLoop leader(*pipeline_, pipe.leader, [&fake] {
      fake += absl::Seconds(3);  // every clock reading: 3 s later
      return fake;
    });
    leader.set_decode_heartbeat(long_decode ? absl::Seconds(5)
                                            : absl::InfiniteDuration());
    const ExecutionPlan plan = SmallPlan(2);
    absl::StatusOr<PlanOutput> led = leader.RunPlan(plan, nullptr);
    ASSERT_TRUE(led.ok()) << led.status();
    EXPECT_TRUE(led->pixels.defined());

    RankLoop follower(*pipeline_, pipe.follower);
    ASSERT_TRUE(follower.RunPlan(plan, nullptr).ok());
    int heartbeats = 0;
    while (pipe.pending() > 0) {
      absl::StatusOr<ReceivedCommand> command = ReceiveCommand(pipe.follower);
      ASSERT_TRUE(command.ok()) << command.status();
      EXPECT_EQ(command->command, Command::kIdle);
      ++heartbeats;
    }
    if (long_decode) {
      EXPECT_GE(heartbeats, 1);
    } else {
      EXPECT_EQ(heartbeats, 0);
    }
  }
}

// An observer that needs no pixels (cost calibration) skips the decode.
TEST_F(RankLoopTest, ObserverThatNeedsNoPixelsSkipsTheDecode) {
  class StepsOnly final : public PlanObserver {
   public:
    bool ShouldCancel() override { return false; }
    void OnStepDone(const models::DenoiseState&, int, double) override {}
    void OnDecodeProgress(int, int, int) override { ++decode_calls_; }
    bool NeedsPixels() const override { return false; }
    int decode_calls_ = 0;
  } observer;
  parallel::LocalCommunicator local;
  RankLoop loop(*pipeline_, local);
  absl::StatusOr<PlanOutput> out = loop.RunPlan(SmallPlan(2), &observer);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->steps_done, 2);
  EXPECT_FALSE(out->pixels.defined());
  EXPECT_EQ(out->decode_ms, 0.0);
  EXPECT_EQ(observer.decode_calls_, 0);
}

TEST_F(RankLoopTest, ResolveSpecRejectsOtherModelsAndBadShapes) {
  parallel::LocalCommunicator local;
  testing::FaultInjectingCommunicator comm(local);
  RankLoop loop(*pipeline_, comm);
  ExecutionPlan plan = SmallPlan(2);
  plan.set_model("no-such-model");
  EXPECT_EQ(loop.ResolveSpec(plan).status().code(),
            absl::StatusCode::kNotFound);

  plan = SmallPlan(2);
  plan.set_model(pipeline_->config().name);
  EXPECT_TRUE(loop.ResolveSpec(plan).ok());

  plan.set_width(pipeline_->config().max_width + pipeline_->config().size_step);
  absl::Status s = loop.ResolveSpec(plan).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("width"), absl::string_view::npos) << s;

  plan = SmallPlan(2);
  plan.clear_items();
  EXPECT_EQ(loop.ResolveSpec(plan).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Invalid plans never reach a collective.
  EXPECT_EQ(comm.broadcasts(), 0);
}

// A tiny Wan2.1 pipeline (16-channel latents, patch 1x2x2, text_dim 32 !=
// dim, Wan VAE, Wan schedule, UniPC by default; the word encoder stands in
// for umT5, which has its own tests) through the same loop: batching, CFG
// per item, previews and cancel.
class RankLoopWanTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    at::set_num_threads(1);
    models::DiTConfig d;
    d.in_channels = d.out_channels = 16;
    d.patch = {1, 2, 2};
    d.dim = 32;
    d.num_heads = 2;
    d.num_layers = 2;
    d.ffn_dim = 64;
    d.text_dim = 16;
    d.text_len = 16;
    models::PipelineConfig c = models::WanPipelineConfig(d);
    const models::PipelineConfig base = models::DefaultModelConfig();
    c.text_encoder_type = "word";
    c.vocabulary = base.vocabulary;
    c.text_encoder = base.text_encoder;
    c.text_encoder.dim = d.text_dim;
    c.text_encoder.num_heads = 2;
    c.text_encoder.max_len = d.text_len;
    models::WeightMap w = models::RandomWeights(c, 5);
    for (auto& [k, v] :
         models::RandomWanVaeWeights(models::TinyWanVaeConfig(), 6)) {
      w.emplace("vae." + k, v);
    }
    auto pipeline = models::Pipeline::Create(c, std::move(w));
    ASSERT_TRUE(pipeline.ok()) << pipeline.status();
    pipeline_ = pipeline->release();
  }
  static void TearDownTestSuite() {
    delete pipeline_;
    pipeline_ = nullptr;
  }

  // Two items: guided (empty negative prompt: Wan's default is used) and
  // unguided.
  static ExecutionPlan WanPlan(int steps) {
    ExecutionPlan plan;
    plan.set_width(48);
    plan.set_height(32);
    plan.set_num_frames(5);
    plan.set_num_inference_steps(steps);
    plan.set_flow_shift(5.0f);
    auto* a = plan.add_items();
    a->set_job_id("a");
    a->set_prompt("a red circle");
    a->set_seed(3);
    a->set_guidance_scale(5.0f);
    auto* b = plan.add_items();
    b->set_job_id("b");
    b->set_prompt("a blue square");
    b->set_negative_prompt("green");
    b->set_seed(4);
    b->set_guidance_scale(1.0f);
    return plan;
  }

  static models::Pipeline* pipeline_;
};

models::Pipeline* RankLoopWanTest::pipeline_ = nullptr;

// Checks each step's preview (the first frame of the x0 estimate) of item 1.
class PreviewObserver final : public PlanObserver {
 public:
  PreviewObserver(const models::Pipeline& p, int cancel_after)
      : pipeline_(p), cancel_after_(cancel_after) {}
  bool ShouldCancel() override {
    return cancel_after_ >= 0 && steps_ >= cancel_after_;
  }
  void OnStepDone(const models::DenoiseState& state, int, double) override {
    ++steps_;
    EXPECT_EQ(state.sampler, models::SamplerKind::kFlowUniPC);
    const at::Tensor preview = pipeline_.Preview(state, 1);
    EXPECT_EQ(preview.sizes(), (std::vector<int64_t>{32, 48, 3}));
    EXPECT_GE(preview.min().item<float>(), 0.0f);
    EXPECT_LE(preview.max().item<float>(), 1.0f);
  }
  int steps_ = 0;

 private:
  const models::Pipeline& pipeline_;
  int cancel_after_;
};

TEST_F(RankLoopWanTest, BatchedPlanMatchesOneItemRunsWithPreviews) {
  parallel::LocalCommunicator local;
  RankLoop loop(*pipeline_, local);
  PreviewObserver observer(*pipeline_, -1);
  absl::StatusOr<PlanOutput> out = loop.RunPlan(WanPlan(3), &observer);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(observer.steps_, 3);
  ASSERT_EQ(out->pixels.sizes(), (std::vector<int64_t>{2, 5, 32, 48, 3}));

  // Each item alone gives the same video (per-item noise and guidance).
  for (int i = 0; i < 2; ++i) {
    ExecutionPlan one = WanPlan(3);
    one.clear_items();
    *one.add_items() = WanPlan(3).items(i);
    absl::StatusOr<PlanOutput> alone = loop.RunPlan(one, nullptr);
    ASSERT_TRUE(alone.ok()) << alone.status();
    const at::Tensor got = out->pixels.select(0, i);
    const at::Tensor want = alone->pixels.select(0, 0);
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-5) << "item " << i;
  }
  // The two items differ (the seeds and prompts reach the output).
  EXPECT_GT((out->pixels.select(0, 0) - out->pixels.select(0, 1))
                .abs()
                .max()
                .item<double>(),
            1e-3);
}

TEST_F(RankLoopWanTest, CancelStopsAtTheStepBoundary) {
  parallel::LocalCommunicator local;
  RankLoop loop(*pipeline_, local);
  PreviewObserver observer(*pipeline_, 1);
  absl::StatusOr<PlanOutput> out = loop.RunPlan(WanPlan(4), &observer);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(observer.steps_, 1);
  EXPECT_TRUE(loop.healthy());
}

// Records the sampler of every step.
class SamplerObserver final : public PlanObserver {
 public:
  bool ShouldCancel() override { return false; }
  void OnStepDone(const models::DenoiseState& state, int, double) override {
    samplers.push_back(state.sampler);
  }
  std::vector<models::SamplerKind> samplers;
};

// The plan's sampler reaches the pipeline: each one asked for is the one
// every step uses, and SAMPLER_UNSPECIFIED gets the model's default (UniPC
// on Wan) - the same video as asking for it.
TEST_F(RankLoopWanTest, PlanSamplerReachesThePipeline) {
  ASSERT_EQ(pipeline_->config().default_sampler,
            models::SamplerKind::kFlowUniPC);
  parallel::LocalCommunicator local;
  RankLoop loop(*pipeline_, local);
  const struct {
    dserve::v1::Sampler asked;
    models::SamplerKind used;
  } cases[] = {
      {dserve::v1::SAMPLER_UNSPECIFIED, models::SamplerKind::kFlowUniPC},
      {dserve::v1::SAMPLER_FLOW_EULER, models::SamplerKind::kFlowEuler},
      {dserve::v1::SAMPLER_FLOW_UNIPC, models::SamplerKind::kFlowUniPC}};
  std::vector<at::Tensor> pixels;
  for (const auto& c : cases) {
    ExecutionPlan plan = WanPlan(3);
    plan.set_sampler(c.asked);
    SamplerObserver observer;
    absl::StatusOr<PlanOutput> out = loop.RunPlan(plan, &observer);
    ASSERT_TRUE(out.ok()) << dserve::v1::Sampler_Name(c.asked) << ": "
                          << out.status();
    EXPECT_EQ(observer.samplers, std::vector<models::SamplerKind>(3, c.used))
        << dserve::v1::Sampler_Name(c.asked);
    pixels.push_back(out->pixels);
  }
  EXPECT_TRUE(pixels[0].equal(pixels[2]));
  EXPECT_GT((pixels[1] - pixels[2]).abs().max().item<double>(), 1e-4);
}

TEST_F(RankLoopWanTest, UniPCNeedsAWanSchedule) {
  // The default model's schedule starts at sigma = 1: UniPC is refused with
  // the allowed values, before any collective.
  models::PipelineConfig config = models::DefaultModelConfig();
  auto p = models::Pipeline::Create(config, models::RandomWeights(config, 1));
  ASSERT_TRUE(p.ok()) << p.status();
  models::GenerationSpec spec;
  spec.width = spec.height = 32;
  spec.num_steps = 2;
  spec.flow_shift = 3.0f;
  spec.sampler = models::SamplerKind::kFlowUniPC;
  spec.items = {{"a red circle", "", 1, 4.0f}};
  absl::Status s = (*p)->Prepare(spec).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("sampler"), absl::string_view::npos) << s;
}

}  // namespace
}  // namespace dserve::worker
