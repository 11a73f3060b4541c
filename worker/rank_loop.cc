#include "worker/rank_loop.h"

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/generation_limits.h"
#include "worker/plan_codec.h"
#include <ATen/ATen.h>

namespace dserve::worker {
namespace {

using ::dserve::internal::v1::ExecutionPlan;

// Control word values broadcast before every step.
constexpr int64_t kContinue = 0;
constexpr int64_t kCancel = 1;
// The plan's deadline passed (the leader's clock decides).
constexpr int64_t kDeadlineExceeded = 2;

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

}  // namespace

RankLoop::RankLoop(std::vector<LoopModel> models, std::string default_model,
                   parallel::Communicator& world,
                   std::function<absl::Time()> now)
    : models_(std::move(models)),
      default_model_(default_model.empty() && !models_.empty()
                         ? models_.front().pipeline->config().name
                         : std::move(default_model)),
      world_(world),
      now_(std::move(now)) {
  absl::StatusOr<const LoopModel*> found = FindModel("");
  current_ = found.ok() ? *found : nullptr;
}

RankLoop::RankLoop(const models::Pipeline& pipeline,
                   parallel::Communicator& world,
                   std::function<absl::Time()> now,
                   models::GuidedPredictor predictor)
    : RankLoop({LoopModel{&pipeline, std::move(predictor)}},
               pipeline.config().name, world, std::move(now)) {}

absl::StatusOr<const LoopModel*> RankLoop::FindModel(
    const std::string& name) const {
  const std::string& wanted = name.empty() ? default_model_ : name;
  std::vector<std::string> names;
  for (const LoopModel& m : models_) {
    if (m.pipeline->config().name == wanted) return &m;
    names.push_back(absl::StrCat("'", m.pipeline->config().name, "'"));
  }
  return absl::NotFoundError(absl::StrCat(
      "model '", common::EchoValue(wanted),
      "' is not served by this replica; it serves ",
      names.empty() ? "none" : absl::StrJoin(names, ", ")));
}

absl::StatusOr<models::GenerationSpec> RankLoop::ResolveSpec(
    const ExecutionPlan& plan) const {
  absl::StatusOr<const LoopModel*> model = FindModel(plan.model());
  if (!model.ok()) return model.status();
  if (plan.items_size() == 0) {
    return absl::InvalidArgumentError("plan.items is empty; need at least 1");
  }
  models::GenerationSpec spec = SpecFromPlan(plan);
  if (absl::Status s = (*model)->pipeline->ValidateSpec(spec); !s.ok()) {
    return s;
  }
  return spec;
}

absl::Status RankLoop::RunStep(models::DenoiseState& state,
                               PlanObserver* observer, absl::Time deadline) {
  at::Tensor control = at::empty({1}, at::kLong);
  int64_t decision = kContinue;
  if (observer != nullptr && observer->ShouldCancel()) {
    decision = kCancel;
  } else if (is_leader() && deadline != absl::InfiniteFuture() &&
             now_() >= deadline) {
    decision = kDeadlineExceeded;
  }
  control[0] = decision;
  if (absl::Status s = world_.Broadcast(control, /*root=*/0); !s.ok()) {
    healthy_ = false;
    return absl::UnavailableError(absl::StrCat(
        "step ", state.step + 1, ": control broadcast failed: ", s.message()));
  }
  const int64_t word = control[0].item<int64_t>();
  if (word == kCancel) {
    return absl::CancelledError(
        absl::StrCat("cancelled by the leader after ", state.step, " steps"));
  }
  if (word == kDeadlineExceeded) {
    return absl::DeadlineExceededError(absl::StrCat(
        "the job's deadline passed; stopped after ", state.step, " of ",
        state.sigmas.empty() ? 0 : state.sigmas.size() - 1, " steps"));
  }
  if (word != kContinue) {
    // Ranks disagree about the protocol; nothing later can be trusted.
    healthy_ = false;
    return absl::DataLossError(
        absl::StrCat("unknown control word ", word, " from the leader"));
  }
  absl::Status stepped = current_->pipeline->Step(state, current_->predictor);
  // A step that failed on one rank of a mesh leaves its peers inside (or
  // past) collectives they can no longer match: the replica is broken.
  if (!stepped.ok() && current_->predictor) healthy_ = false;
  return stepped;
}

absl::StatusOr<PlanOutput> RankLoop::RunPlan(const ExecutionPlan& plan,
                                             PlanObserver* observer) {
  // The leader checked this plan once (ResolveSpec in Execute) before it
  // broadcast it; every rank trusts the broadcast plan.
  const models::GenerationSpec spec = SpecFromPlan(plan);
  // Every rank runs the plan's model; the default again once it is over.
  absl::StatusOr<const LoopModel*> model = FindModel(plan.model());
  if (!model.ok()) return model.status();
  struct RestoreDefault {
    RankLoop& loop;
    const LoopModel* previous;
    ~RestoreDefault() { loop.current_ = previous; }
  } restore{*this, current_};
  current_ = *model;
  const models::Pipeline& pipeline = *current_->pipeline;

  PlanOutput out;
  if (observer != nullptr) observer->OnEncodeStart(spec.num_steps);
  absl::Time start = now_();
  absl::StatusOr<models::DenoiseState> prepared = pipeline.Prepare(spec);
  if (!prepared.ok()) {
    // Prepare broadcasts the text embeddings from rank 0
    // (models/prompt_broadcast.h); UNAVAILABLE there is a failed
    // collective, after which the ranks can no longer stay in step.
    if (world_.size() > 1 && absl::IsUnavailable(prepared.status())) {
      healthy_ = false;
    }
    return prepared.status();
  }
  models::DenoiseState state = *std::move(prepared);
  out.text_encode_ms = Ms(now_() - start);
  out.unknown_words = state.unknown_words;
  out.text_cache_hits = state.text_cache_hits;
  out.text_cache_misses = state.text_cache_misses;

  const int total = spec.num_steps;
  // Only the leader's clock is read (RunStep); the others follow its word.
  const absl::Time deadline = plan.deadline_unix_ms() > 0
                                  ? absl::FromUnixMillis(plan.deadline_unix_ms())
                                  : absl::InfiniteFuture();
  while (state.step < total) {
    const absl::Time step_start = now_();
    const int before = state.step;
    if (absl::Status s = RunStep(state, observer, deadline); !s.ok()) {
      return s;
    }
    if (state.step != before + 1) {
      return absl::InternalError(absl::StrCat("Pipeline::Step moved from step ",
                                              before, " to ", state.step,
                                              "; expected ", before + 1));
    }
    const double step_ms = Ms(now_() - step_start);
    out.denoise_ms += step_ms;
    out.steps_done = state.step;
    out.steps_computed = state.step_cache.steps_computed;
    out.steps_reused = state.step_cache.steps_reused;
    if (observer != nullptr) observer->OnStepDone(state, total, step_ms);
  }

  if (is_leader() && (observer == nullptr || observer->NeedsPixels())) {
    start = now_();
    absl::Time last_heartbeat = start;
    absl::Status heartbeat;
    try {
      out.pixels = pipeline.Decode(state, [&](int item, int done, int chunks) {
        if (observer != nullptr) observer->OnDecodeProgress(item, done, chunks);
        if (world_.size() == 1 || !heartbeat.ok()) return;
        const absl::Time now = now_();
        if (now - last_heartbeat < decode_heartbeat_) return;
        last_heartbeat = now;
        heartbeat = SendCommand(world_, Command::kIdle, ExecutionPlan());
      });
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("Decode: ", e.what()));
    }
    if (!heartbeat.ok()) {
      healthy_ = false;
      return absl::UnavailableError(absl::StrCat(
          "heartbeat to the other ranks while decoding failed: ",
          heartbeat.message()));
    }
    out.decode_ms = Ms(now_() - start);
  }
  return out;
}

}  // namespace dserve::worker
