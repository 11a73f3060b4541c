#include "worker/replica_leader.h"

#include <chrono>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/rpc_status.h"
#include "common/status_macros.h"
#include "parallel/mesh_layout.h"
#include "spdlog/spdlog.h"
#include "worker/execute_reactor.h"
#include "worker/media_encoder.h"
#include "worker/model_info.h"
#include "worker/plan_codec.h"
#include <ATen/ATen.h>

namespace dserve::worker {
namespace {

using ::dserve::internal::v1::ExecutionEvent;
using ::dserve::internal::v1::ExecutionPlan;
using ::dserve::internal::v1::GetStatusRequest;
using ::dserve::internal::v1::ReplicaStatus;

absl::Status CheckOutputFormat(dserve::v1::OutputFormat format, int fps) {
  if (format == dserve::v1::OUTPUT_FORMAT_MP4 && (fps < 1 || fps > 120)) {
    return absl::InvalidArgumentError(
        absl::StrCat("fps: ", fps, " is out of range (allowed: 1..120)"));
  }
  if (format == dserve::v1::OUTPUT_FORMAT_UNSPECIFIED ||
      format == dserve::v1::OUTPUT_FORMAT_PNG ||
      format == dserve::v1::OUTPUT_FORMAT_RAW_TENSOR ||
      format == dserve::v1::OUTPUT_FORMAT_MP4) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "output_format=", static_cast<int>(format),
      " is not supported; allowed 0 (unspecified), 1 (PNG), 2 (RAW_TENSOR), "
      "3 (MP4)"));
}

std::string UnknownWordWarning(const std::string& word) {
  return absl::StrCat("prompt word '", word,
                      "' is not in the model's vocabulary; it was read as "
                      "<unk>");
}

// Leader-side view of one running plan: asks about cancellation before
// every step, streams StepDone (with previews) after it, and StageProgress
// for the prompt encoding and each item's decode chunks.
class CallObserver final : public PlanObserver {
 public:
  CallObserver(PlanCall& call, const models::Pipeline& pipeline,
               const std::function<bool()>& stop_requested)
      : call_(call), pipeline_(pipeline), stop_requested_(stop_requested) {}

  bool ShouldCancel() override {
    if (call_.cancelled()) return true;
    if (stop_requested_()) {
      stopped_by_shutdown_ = true;
      return true;
    }
    return false;
  }

  void OnStepDone(const models::DenoiseState& state, int total_steps,
                  double step_ms) override {
    ExecutionEvent event;
    auto* step = event.mutable_step();
    step->set_step(state.step);
    step->set_total(total_steps);
    step->set_step_ms(step_ms);
    const ExecutionPlan& plan = call_.plan();
    for (int i = 0; i < plan.items_size(); ++i) {
      const int every = plan.items(i).preview_every_n_steps();
      if (every <= 0 || state.step % every != 0) continue;
      absl::StatusOr<dserve::v1::Media> preview = EncodePreview(state, i);
      if (!preview.ok()) {
        // A missing preview must not fail the generation itself.
        spdlog::warn("[job {}] preview at step {} failed: {}",
                     plan.items(i).job_id(), state.step,
                     preview.status().ToString());
        continue;
      }
      (*step->mutable_previews())[plan.items(i).job_id()] = *std::move(preview);
    }
    spdlog::trace("[job {}] step {}/{} {:.1f} ms", PlanJobIds(plan), state.step,
                  total_steps, step_ms);
    call_.Push(std::move(event));
  }

  void OnEncodeStart(int total_steps) override {
    PushStage(dserve::v1::PROGRESS_STAGE_ENCODE, "", 0, total_steps);
  }

  void OnDecodeProgress(int item, int chunks_done, int chunks_total) override {
    const ExecutionPlan& plan = call_.plan();
    if (item < 0 || item >= plan.items_size()) return;
    PushStage(dserve::v1::PROGRESS_STAGE_DECODE, plan.items(item).job_id(),
              chunks_done, chunks_total);
  }

  bool stopped_by_shutdown() const { return stopped_by_shutdown_; }

 private:
  void PushStage(dserve::v1::ProgressStage stage, const std::string& job_id,
                 int step, int total) {
    ExecutionEvent event;
    auto* progress = event.mutable_stage();
    progress->set_stage(stage);
    progress->set_step(step);
    progress->set_total(total);
    progress->set_job_id(job_id);
    call_.Push(std::move(event));
  }

  absl::StatusOr<dserve::v1::Media> EncodePreview(
      const models::DenoiseState& state, int item) {
    try {
      return EncodePngFrame(pipeline_.Preview(state, item), 0);
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("Preview: ", e.what()));
    }
  }

  PlanCall& call_;
  const models::Pipeline& pipeline_;
  const std::function<bool()>& stop_requested_;
  bool stopped_by_shutdown_ = false;
};

}  // namespace

ReplicaLeader::ReplicaLeader(RankLoop& loop, parallel::Communicator& world,
                             ReplicaLeaderOptions options)
    : loop_(loop),
      world_(world),
      options_(std::move(options)),
      queue_(options_.max_pending_plans) {}

ReplicaLeader::ReplicaLeader(const models::Pipeline& /*pipeline*/,
                             RankLoop& loop, parallel::Communicator& world,
                             ReplicaLeaderOptions options)
    : ReplicaLeader(loop, world, std::move(options)) {}

ReplicaLeader::~ReplicaLeader() {
  queue_.Close(absl::UnavailableError("replica leader is gone"));
}

absl::Status ReplicaLeader::Enqueue(const std::shared_ptr<PlanCall>& call) {
  const ExecutionPlan& plan = call->plan();
  // Reject what cannot run before it takes a place in the queue. This is
  // the plan's one check on the replica: every rank trusts the broadcast.
  RETURN_IF_ERROR(loop_.ResolveSpec(plan).status());
  RETURN_IF_ERROR(CheckOutputFormat(plan.output_format(), plan.fps()));
  // A plan the codec would refuse must fail here: once the Serve loop has
  // announced it, every rank expects its bytes.
  if (static_cast<int64_t>(plan.ByteSizeLong()) > kMaxPlanBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("plan is ", plan.ByteSizeLong(),
                     " bytes; allowed at most ", kMaxPlanBytes));
  }
  if (options_.stop_requested()) {
    return absl::UnavailableError("replica is shutting down");
  }
  return queue_.Push(call);
}

grpc::ServerWriteReactor<ExecutionEvent>* ReplicaLeader::Execute(
    grpc::CallbackServerContext* context, const ExecutionPlan* plan) {
  // The call's gRPC deadline joins the plan's own (the earlier wins), so
  // every rank learns it with the broadcast plan and the leader stops the
  // plan at the first step boundary past it (RankLoop).
  ExecutionPlan with_deadline = *plan;
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    const int64_t call_ms =
        absl::ToUnixMillis(absl::FromChrono(context->deadline()));
    if (with_deadline.deadline_unix_ms() <= 0 ||
        call_ms < with_deadline.deadline_unix_ms()) {
      with_deadline.set_deadline_unix_ms(call_ms);
    }
  }
  auto call = std::make_shared<PlanCall>(std::move(with_deadline));
  if (absl::Status s = Enqueue(call); !s.ok()) {
    return FinishedExecuteReactor(s);
  }
  return StartExecuteReactor(std::move(call));
}

grpc::ServerUnaryReactor* ReplicaLeader::GetStatus(
    grpc::CallbackServerContext* context, const GetStatusRequest* /*request*/,
    ReplicaStatus* response) {
  response->set_world_size(world_.size());
  *response->mutable_mesh() = parallel::MeshLayoutFromDegrees(options_.mesh);
  for (int pid : options_.pids) response->add_pids(pid);
  for (const LoopModel& served : loop_.models()) {
    const models::PipelineConfig& config = served.pipeline->config();
    const bool is_default = config.name == loop_.default_model();
    dserve::v1::ModelInfo* model = response->add_models();
    *model = ModelInfoFromConfig(config, is_default);
    // Parameters and bytes per rank of this replica's mesh (checked at
    // start-up, so this does not fail for a running replica).
    if (absl::Status s = AddWeightSizes(*served.pipeline, options_.mesh, *model);
        !s.ok()) {
      spdlog::warn("[job -] weight sizes of model '{}': {}", config.name,
                   s.ToString());
    }
    if (auto cost = options_.costs.find(config.name);
        cost != options_.costs.end()) {
      *model->mutable_cost() = cost->second;
    }
  }
  response->set_busy(busy_.load());
  if (options_.rank_devices) {
    for (dserve::v1::RankDevice& d : options_.rank_devices()) {
      *response->add_ranks() = std::move(d);
    }
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

absl::Status ReplicaLeader::Serve() {
  const ExecutionPlan no_plan;
  while (true) {
    if (!options_.parent_alive()) {
      queue_.Close(absl::UnavailableError("replica leader lost its parent"));
      return absl::AbortedError("the parent process exited");
    }
    if (options_.stop_requested()) {
      queue_.Close(absl::UnavailableError("replica is shutting down"));
      if (absl::Status s = SendCommand(world_, Command::kShutdown, no_plan);
          !s.ok()) {
        // Peers that already left cannot be told; stopping is still clean.
        spdlog::warn("[job -] SHUTDOWN broadcast failed: {}", s.ToString());
      }
      return absl::OkStatus();
    }
    std::shared_ptr<PlanCall> call = queue_.PopFor(options_.heartbeat_interval);
    if (call == nullptr) {
      if (absl::Status s = SendCommand(world_, Command::kIdle, no_plan);
          !s.ok()) {
        queue_.Close(absl::UnavailableError("replica lost a rank"));
        return absl::UnavailableError(
            absl::StrCat("idle heartbeat failed: ", s.message()));
      }
      continue;
    }
    if (absl::Status s = RunCall(*call); !s.ok()) {
      queue_.Close(absl::UnavailableError("replica lost a rank"));
      return s;
    }
  }
}

absl::Status ReplicaLeader::RunCall(PlanCall& call) {
  const ExecutionPlan& plan = call.plan();
  const std::string jobs = PlanJobIds(plan);
  if (call.cancelled()) {
    call.Finish(absl::CancelledError("cancelled before it started"));
    return absl::OkStatus();
  }
  if (plan.deadline_unix_ms() > 0 &&
      options_.now() >= absl::FromUnixMillis(plan.deadline_unix_ms())) {
    call.Finish(absl::DeadlineExceededError(
        "the job's deadline passed before the plan started"));
    return absl::OkStatus();
  }
  busy_.store(true);
  struct BusyReset {
    std::atomic<bool>& busy;
    ~BusyReset() { busy.store(false); }
  } reset{busy_};

  spdlog::info("[job {}] plan {}x{}x{} steps={} items={}", jobs, plan.width(),
               plan.height(), plan.num_frames(), plan.num_inference_steps(),
               plan.items_size());
  if (absl::Status s = SendCommand(world_, Command::kPlan, plan); !s.ok()) {
    call.Finish(absl::UnavailableError(absl::StrCat(
        "replica lost a rank while sending the plan: ", s.message())));
    return absl::UnavailableError(
        absl::StrCat("plan broadcast failed: ", s.message()));
  }

  // Enqueue resolved the plan's model, so this finds it.
  absl::StatusOr<const LoopModel*> model = loop_.FindModel(plan.model());
  if (!model.ok()) {
    call.Finish(model.status());
    return absl::OkStatus();
  }
  CallObserver observer(call, *(*model)->pipeline, options_.stop_requested);
  absl::StatusOr<PlanOutput> out = loop_.RunPlan(plan, &observer);
  if (!loop_.healthy()) {
    call.Finish(absl::UnavailableError(absl::StrCat(
        "replica lost a rank during the plan: ", out.status().message())));
    return out.status();
  }
  if (!out.ok()) {
    absl::Status status = out.status();
    if (absl::IsCancelled(status) && observer.stopped_by_shutdown()) {
      // Not the caller's doing: UNAVAILABLE tells the scheduler to retry the
      // job on another replica.
      status = absl::UnavailableError(
          absl::StrCat("replica is shutting down; ", status.message()));
    }
    spdlog::info("[job {}] plan ended: {}", jobs, status.ToString());
    call.Finish(status);
    return absl::OkStatus();
  }

  const absl::Time encode_start = options_.now();
  ExecutionEvent event;
  auto* done = event.mutable_done();
  for (int i = 0; i < plan.items_size(); ++i) {
    auto* item = done->add_items();
    item->set_job_id(plan.items(i).job_id());
    absl::StatusOr<std::vector<dserve::v1::Media>> media;
    try {
      media = EncodeMedia(out->pixels[i], plan.output_format(), plan.fps());
    } catch (const std::exception& e) {
      media = absl::InternalError(absl::StrCat("encoding media: ", e.what()));
    }
    if (!media.ok()) {
      call.Finish(media.status());
      return absl::OkStatus();
    }
    for (auto& m : *media) *item->add_media() = std::move(m);
    if (i < static_cast<int>(out->unknown_words.size())) {
      for (const std::string& word : out->unknown_words[i]) {
        item->add_warnings(UnknownWordWarning(word));
      }
    }
  }
  done->set_text_encode_ms(out->text_encode_ms);
  done->set_text_cache_hits(out->text_cache_hits);
  done->set_text_cache_misses(out->text_cache_misses);
  done->set_steps_computed(out->steps_computed);
  done->set_steps_reused(out->steps_reused);
  done->set_denoise_ms(out->denoise_ms);
  done->set_decode_ms(out->decode_ms + absl::ToDoubleMilliseconds(
                                           options_.now() - encode_start));
  spdlog::info(
      "[job {}] done: encode {:.1f} ms, denoise {:.1f} ms, decode "
      "{:.1f} ms",
      jobs, done->text_encode_ms(), done->denoise_ms(), done->decode_ms());
  call.Push(std::move(event));
  call.Finish(absl::OkStatus());
  return absl::OkStatus();
}

}  // namespace dserve::worker
