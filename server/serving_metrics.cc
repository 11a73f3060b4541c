#include "server/serving_metrics.h"

#include <cctype>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/build_info.h"

namespace dserve::server {
namespace {

constexpr char kJobsTotal[] = "dserve_jobs_total";
constexpr char kJobsTotalHelp[] = "Admitted jobs by terminal state.";
constexpr char kStepsTotal[] = "dserve_steps_total";
constexpr char kStepsTotalHelp[] =
    "Denoising steps of succeeded jobs: computed whole, or reused by the "
    "step cache (counted per job of a batch).";
constexpr char kRejectedTotal[] = "dserve_requests_rejected_total";
constexpr char kRejectedTotalHelp[] =
    "Generate/SubmitJob requests refused before admission, by gRPC status "
    "code (INVALID_ARGUMENT, RESOURCE_EXHAUSTED = queue full, UNAVAILABLE = "
    "draining or no replica, UNAUTHENTICATED, ...).";

// gRPC's name of an absl status code ("RESOURCE_EXHAUSTED").
std::string CodeLabel(absl::StatusCode code) {
  std::string name = absl::StatusCodeToString(code);
  for (char& c : name) {
    c = c == ' ' ? '_' : static_cast<char>(std::toupper(c));
  }
  return name;
}

// Mean step times: 1 ms .. 60 s.
std::vector<double> StepSecondsBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
          0.5,   1,      2.5,   5,    10,    30,   60};
}

const dserve::v1::ReplicaState kReplicaStates[] = {
    dserve::v1::REPLICA_STATE_STARTING, dserve::v1::REPLICA_STATE_READY,
    dserve::v1::REPLICA_STATE_BUSY, dserve::v1::REPLICA_STATE_DRAINING,
    dserve::v1::REPLICA_STATE_FAILED};

}  // namespace

std::string JobStateLabel(dserve::v1::JobState state) {
  return std::string(
      absl::StripPrefix(dserve::v1::JobState_Name(state), "JOB_STATE_"));
}

std::string ReplicaStateLabel(dserve::v1::ReplicaState state) {
  return std::string(absl::StripPrefix(dserve::v1::ReplicaState_Name(state),
                                       "REPLICA_STATE_"));
}

ServingMetrics::ServingMetrics(MetricsRegistry* registry)
    : registry_(registry),
      queue_wait_(registry->GetHistogram(
          "dserve_job_queue_wait_seconds",
          "Time from admission until a replica started the job.",
          LatencySecondsBuckets())),
      execution_(registry->GetHistogram(
          "dserve_job_execution_seconds",
          "Text encoding + denoising + decoding on the replica, per "
          "succeeded job.",
          LatencySecondsBuckets())),
      end_to_end_(registry->GetHistogram(
          "dserve_job_end_to_end_seconds",
          "Time from admission until the result was ready, per succeeded job.",
          LatencySecondsBuckets())),
      step_(registry->GetHistogram(
          "dserve_step_seconds",
          "Mean wall time of one denoising step, one sample per succeeded job.",
          StepSecondsBuckets())),
      batch_size_(registry->GetHistogram(
          "dserve_job_batch_size",
          "Number of jobs in the plan a job started in (1 = not batched); one "
          "sample per start, so a retried job counts twice.",
          {1, 2, 4, 8, 16, 32, 64})) {
  // Every terminal state is exported from the start, so rate() works before
  // the first job of a kind ends.
  for (dserve::v1::JobState state :
       {dserve::v1::JOB_STATE_SUCCEEDED, dserve::v1::JOB_STATE_FAILED,
        dserve::v1::JOB_STATE_CANCELLED,
        dserve::v1::JOB_STATE_DEADLINE_EXCEEDED}) {
    registry_->GetCounter(kJobsTotal, kJobsTotalHelp,
                          {{"state", JobStateLabel(state)}});
  }
  for (absl::StatusCode code :
       {absl::StatusCode::kInvalidArgument, absl::StatusCode::kNotFound,
        absl::StatusCode::kResourceExhausted, absl::StatusCode::kUnavailable,
        absl::StatusCode::kUnauthenticated,
        absl::StatusCode::kFailedPrecondition}) {
    registry_->GetCounter(kRejectedTotal, kRejectedTotalHelp,
                          {{"code", CodeLabel(code)}});
  }
  const common::BuildInfo build = common::GetBuildInfo();
  registry_
      ->GetGauge("dserve_build_info",
                 "Always 1; the labels say which dserve build this is.",
                 {{"version", build.version},
                  {"build_date", build.build_date},
                  {"compiler", build.compiler},
                  {"mode", build.mode}})
      ->Set(1);
  // The default priority is exported from the start, so the family exists
  // (at 0) before the first job queues.
  absl::MutexLock lock(&mu_);
  seen_priorities_[0] = true;
}

void ServingMetrics::WatchJob(const std::shared_ptr<scheduler::Job>& job) {
  // The listener lives as long as the job; it only records the terminal
  // event, which a job emits exactly once.
  job->AddListener([this](const scheduler::JobEvent& event) {
    if (event.terminal) {
      RecordTerminal(event);
    } else if (event.event.has_started()) {
      RecordStarted(event);
    }
  });
}

void ServingMetrics::RecordStarted(const scheduler::JobEvent& event) {
  batch_size_->Observe(event.event.started().batch_size());
}

void ServingMetrics::RecordRejected(const absl::Status& status) {
  if (status.ok()) return;
  registry_->GetCounter(kRejectedTotal, kRejectedTotalHelp,
                        {{"code", CodeLabel(status.code())}})
      ->Increment();
}

void ServingMetrics::RecordTerminal(const scheduler::JobEvent& event) {
  const dserve::v1::GenerateEvent& e = event.event;
  dserve::v1::JobState state = dserve::v1::JOB_STATE_FAILED;
  if (e.has_result()) {
    state = dserve::v1::JOB_STATE_SUCCEEDED;
  } else if (e.has_ended()) {
    state = e.ended().state();
  }
  registry_->GetCounter(kJobsTotal, kJobsTotalHelp,
                        {{"state", JobStateLabel(state)}})
      ->Increment();
  if (!e.has_result()) return;
  const dserve::v1::Timings& t = e.result().timings();
  queue_wait_->Observe(t.queue_ms() / 1000.0);
  execution_->Observe((t.text_encode_ms() + t.denoise_ms() + t.decode_ms()) /
                      1000.0);
  end_to_end_->Observe(t.total_ms() / 1000.0);
  if (t.step_ms_mean() > 0) step_->Observe(t.step_ms_mean() / 1000.0);
  if (t.steps_computed() + t.steps_reused() > 0) {
    registry_->GetCounter(kStepsTotal, kStepsTotalHelp, {{"kind", "computed"}})
        ->Increment(t.steps_computed());
    registry_->GetCounter(kStepsTotal, kStepsTotalHelp, {{"kind", "reused"}})
        ->Increment(t.steps_reused());
  }
}

void ServingMetrics::AddCollectors(
    std::vector<scheduler::ReplicaHandle*> replicas,
    const scheduler::JobTable* jobs) {
  registry_->AddCollector(
      [this, replicas = std::move(replicas)] { CollectReplicas(replicas); });
  registry_->AddCollector([this, jobs] { CollectQueue(*jobs); });
}

void ServingMetrics::CollectReplicas(
    const std::vector<scheduler::ReplicaHandle*>& replicas) {
  std::map<dserve::v1::ReplicaState, int> by_state;
  for (const scheduler::ReplicaHandle* replica : replicas) {
    const dserve::v1::ReplicaInfo info = replica->Info();
    ++by_state[info.state()];
    const std::string index = absl::StrCat(info.index());
    for (dserve::v1::ReplicaState state : kReplicaStates) {
      registry_
          ->GetGauge("dserve_replica_state",
                     "1 for the replica's current state, 0 for the others.",
                     {{"replica", index}, {"state", ReplicaStateLabel(state)}})
          ->Set(info.state() == state ? 1 : 0);
    }
    AddReplicaTotal("dserve_replica_jobs_completed_total",
                    "Plans the replica finished successfully.", info.index(),
                    static_cast<double>(info.jobs_completed()));
    AddReplicaTotal("dserve_replica_restarts_total",
                    "Times the replica was restarted after a dead rank.",
                    info.index(), info.restarts());
    for (const dserve::v1::RankDevice& d : info.ranks()) {
      const std::string rank = absl::StrCat(d.rank());
      registry_
          ->GetGauge("dserve_rank_device_info",
                     "1 per rank, labelled with its device, compute dtype "
                     "and mesh-group backend.",
                     {{"replica", index}, {"rank", rank}, {"device", d.device()},
                      {"dtype", d.dtype()}, {"comm", d.comm()}})
          ->Set(1);
      const std::pair<const char*, int64_t> memory[] = {
          {"allocated", d.gpu_memory_allocated_bytes()},
          {"reserved", d.gpu_memory_reserved_bytes()},
          {"total", d.gpu_memory_total_bytes()}};
      for (const auto& [kind, bytes] : memory) {
        registry_
            ->GetGauge("dserve_rank_gpu_memory_bytes",
                       "GPU memory of a rank: allocated by tensors, reserved "
                       "by LibTorch's caching allocator, total of the device "
                       "(0 on the CPU).",
                       {{"replica", index}, {"rank", rank}, {"kind", kind}})
            ->Set(static_cast<double>(bytes));
      }
    }
  }
  for (dserve::v1::ReplicaState state : kReplicaStates) {
    registry_
        ->GetGauge("dserve_replicas", "Replicas in each state.",
                   {{"state", ReplicaStateLabel(state)}})
        ->Set(by_state[state]);
  }
}

void ServingMetrics::AddReplicaTotal(const std::string& name,
                                     const std::string& help, int replica,
                                     double total) {
  double delta;
  {
    absl::MutexLock lock(&mu_);
    double& last = last_replica_totals_[{name, replica}];
    // A total that went down (a replica object replaced) starts over.
    delta = total >= last ? total - last : total;
    last = total;
  }
  registry_->GetCounter(name, help, {{"replica", absl::StrCat(replica)}})
      ->Increment(delta);
}

void ServingMetrics::CollectQueue(const scheduler::JobTable& jobs) {
  std::map<int, int> by_priority;
  int running = 0;
  std::string token;
  do {
    absl::StatusOr<scheduler::JobPage> page =
        jobs.List({dserve::v1::JOB_STATE_QUEUED, dserve::v1::JOB_STATE_RUNNING},
                  1000, token);
    if (!page.ok()) break;
    for (const auto& job : page->jobs) {
      if (job->state() == dserve::v1::JOB_STATE_RUNNING) {
        ++running;
      } else {
        ++by_priority[job->priority()];
      }
    }
    token = page->next_page_token;
  } while (!token.empty());
  registry_
      ->GetGauge("dserve_jobs_running",
                 "Jobs a replica has started and not yet ended.")
      ->Set(running);
  absl::MutexLock lock(&mu_);
  for (const auto& [priority, count] : by_priority) {
    seen_priorities_[priority] = true;
  }
  for (const auto& [priority, seen] : seen_priorities_) {
    auto it = by_priority.find(priority);
    registry_
        ->GetGauge("dserve_queue_depth", "Queued jobs by priority.",
                   {{"priority", absl::StrCat(priority)}})
        ->Set(it == by_priority.end() ? 0 : it->second);
  }
}

}  // namespace dserve::server
