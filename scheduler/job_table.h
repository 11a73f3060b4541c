#ifndef DSERVE_SCHEDULER_JOB_TABLE_H_
#define DSERVE_SCHEDULER_JOB_TABLE_H_

// JobTable: every job the server remembers, for GetJob/WatchJob/CancelJob/
// ListJobs and idempotent SubmitJob.
//
// Owns shared references to its jobs, an index (principal,
// client_request_id) -> job id,
// and a bounded set of ids it evicted (so a late GetJob says "expired"
// rather than "not found"). Finished jobs are evicted when older than
// `finished_ttl`, beyond `max_finished_jobs`, or when the results of the
// finished jobs it keeps add up to more than `max_result_bytes` (oldest
// first). Eviction runs on every Insert and whenever one of its jobs ends
// (Job::SetEndHook, on the ending thread), so the table needs no thread of
// its own and the result budget holds at all times. An evicted job's result
// lives on only while a stream that already holds it is still sending it.
//
// Thread-safe (one absl::Mutex). No call blocks.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/dserve/v1/diffusion_service.pb.h"
#include "scheduler/clock.h"
#include "scheduler/job.h"

namespace dserve::scheduler {

struct JobTableOptions {
  // Finished jobs kept at most this long after they ended...
  absl::Duration finished_ttl = absl::Hours(1);
  // ...and at most this many of them.
  int max_finished_jobs = 1000;
  // Evicted ids remembered for the "expired" message.
  int max_evicted_ids = 10000;
  // Total serialized size of the results of the finished jobs kept (the
  // result store, --result_store_mb); 0 = no budget. A single result larger
  // than the budget is evicted as soon as its job ends.
  int64_t max_result_bytes = 0;
};

struct JobPage {
  std::vector<std::shared_ptr<Job>> jobs;
  // Empty on the last page.
  std::string next_page_token;
};

class JobTable {
 public:
  // `clock` is not owned and must outlive the table.
  JobTable(JobTableOptions options, const Clock* clock);
  // Detaches from the jobs it still holds (they may outlive the table).
  ~JobTable();
  JobTable(const JobTable&) = delete;
  JobTable& operator=(const JobTable&) = delete;

  // Adds `job` (evicting old finished jobs first). If the job has a
  // client_request_id that a remembered job of the same principal already
  // uses, nothing is added and that job is returned instead; otherwise
  // returns `job`. Callers check that the two requests are the same.
  std::shared_ptr<Job> InsertOrGet(std::shared_ptr<Job> job);

  // The remembered job of `principal` with this client_request_id, or
  // nullptr. Another principal's job with the same id is never returned.
  std::shared_ptr<Job> FindByClientRequestId(const std::string& principal,
                                             const std::string& id) const;

  // NOT_FOUND "job X not found", or "job X expired ..." for evicted ids.
  absl::StatusOr<std::shared_ptr<Job>> Find(const std::string& job_id) const;

  // Newest first, only `states` (empty = all). page_size 0 = 100, else
  // 1..1000; page_token from a previous page or empty. INVALID_ARGUMENT for
  // a bad page_size or page_token.
  absl::StatusOr<JobPage> List(const std::vector<dserve::v1::JobState>& states,
                               int page_size,
                               const std::string& page_token) const;

  // Forgets `job_id` entirely (no "expired" record): for a job that was
  // never admitted. No-op for unknown ids.
  void Erase(const std::string& job_id);

  // Evicts finished jobs by age, count and result bytes. Called by
  // InsertOrGet and when a job ends; public so tests (and a future janitor)
  // can run it.
  void EvictFinished();

  int size() const;
  // Serialized bytes of the results of the finished jobs kept.
  int64_t result_bytes() const;

 private:
  void EvictLocked(std::map<int64_t, std::shared_ptr<Job>>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Erase's work; returns the erased job or null.
  std::shared_ptr<Job> EraseLocked(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const JobTableOptions options_;
  const Clock* const clock_;

  mutable absl::Mutex mu_;
  // By arrival sequence; iteration from the back is newest first.
  std::map<int64_t, std::shared_ptr<Job>> by_sequence_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> by_id_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> by_client_request_id_
      ABSL_GUARDED_BY(mu_);
  std::deque<std::string> evicted_order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> evicted_ ABSL_GUARDED_BY(mu_);
  int64_t result_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_JOB_TABLE_H_
