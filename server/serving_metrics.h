#ifndef DSERVE_SERVER_SERVING_METRICS_H_
#define DSERVE_SERVER_SERVING_METRICS_H_

// ServingMetrics: the dserve metric families, fed from jobs and sampled
// from the scheduler's replicas and the job table at scrape time.
//
//   dserve_build_info{version,build_date,compiler,mode}  gauge, always 1
//   dserve_jobs_total{state}                 counter, jobs by terminal state
//   dserve_requests_rejected_total{code}     counter, Generate/SubmitJob
//                                            refused before admission, by
//                                            gRPC status code name
//   dserve_jobs_running                      gauge, jobs started, not ended
//   dserve_job_queue_wait_seconds            histogram (admitted -> started)
//   dserve_job_execution_seconds             histogram (encode+denoise+decode)
//   dserve_job_end_to_end_seconds            histogram (admitted -> result)
//   dserve_step_seconds                      histogram (mean step of each job)
//   dserve_steps_total{kind}                 counter, denoising steps of
//                                            succeeded jobs, kind="computed"
//                                            or "reused" (the step cache;
//                                            a batch's steps count per job)
//   dserve_job_batch_size                    histogram (plan size each job
//                                            started in; one sample per start)
//   dserve_queue_depth{priority}             gauge, queued jobs per priority
//   dserve_replicas{state}                   gauge, replicas per state
//   dserve_replica_state{replica,state}      gauge, 1 for the current state
//   dserve_replica_jobs_completed_total{replica}  counter, per replica
//   dserve_replica_restarts_total{replica}   counter, restarts after a crash
//
// Latency histograms go up to 1 h (LatencySecondsBuckets), so video jobs
// land in a bucket.
//
// Ownership: owns nothing but pointers into `registry` (not owned; must
// outlive this object) and borrows the replicas and job table given to
// AddCollectors (they must outlive the registry's last rendering).
// Thread-safe. Nothing blocks; WatchJob's listener runs under the job's
// lock and only touches metric series.

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "proto/dserve/v1/diffusion_service.pb.h"
#include "scheduler/job.h"
#include "scheduler/job_table.h"
#include "scheduler/replica_handle.h"
#include "server/metrics.h"

namespace dserve::server {

class ServingMetrics {
 public:
  explicit ServingMetrics(MetricsRegistry* registry);

  // Counts `job` once when it ends (a listener on the job; a job that has
  // already ended is counted at once, from the listener's replay).
  void WatchJob(const std::shared_ptr<scheduler::Job>& job);

  // Registers collectors that sample queue depth by priority (from the
  // table's QUEUED jobs) and replica states at every scrape.
  void AddCollectors(std::vector<scheduler::ReplicaHandle*> replicas,
                     const scheduler::JobTable* jobs);

  // One job's terminal event; public for tests.
  void RecordTerminal(const scheduler::JobEvent& event);
  // One job's Started event (its batch size); public for tests.
  void RecordStarted(const scheduler::JobEvent& event);
  // A Generate/SubmitJob refused before admission with `status` (not OK).
  void RecordRejected(const absl::Status& status);

 private:
  void CollectReplicas(const std::vector<scheduler::ReplicaHandle*>& replicas);
  void CollectQueue(const scheduler::JobTable& jobs);
  // Adds to counter `name`{replica} what `total` grew by since last scrape.
  void AddReplicaTotal(const std::string& name, const std::string& help,
                       int replica, double total);

  MetricsRegistry* const registry_;
  Histogram* const queue_wait_;
  Histogram* const execution_;
  Histogram* const end_to_end_;
  Histogram* const step_;
  Histogram* const batch_size_;

  absl::Mutex mu_;
  // Priorities that ever had a queued job: their gauge goes back to 0
  // rather than vanishing.
  absl::flat_hash_map<int, bool> seen_priorities_ ABSL_GUARDED_BY(mu_);
  // Replica counters mirror ReplicaInfo's running totals: the last value
  // seen per replica and counter name, so each scrape adds the difference.
  std::map<std::pair<std::string, int>, double> last_replica_totals_
      ABSL_GUARDED_BY(mu_);
};

// Job state name without the JOB_STATE_ prefix ("SUCCEEDED").
std::string JobStateLabel(dserve::v1::JobState state);
// Replica state name without the REPLICA_STATE_ prefix ("READY").
std::string ReplicaStateLabel(dserve::v1::ReplicaState state);

}  // namespace dserve::server

#endif  // DSERVE_SERVER_SERVING_METRICS_H_
