#include "scheduler/job_table.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/generation_limits.h"

namespace dserve::scheduler {
namespace {

// The index key: client_request_id is scoped to its principal. The length
// prefix keeps ("ab", "c") and ("a", "bc") apart.
std::string ClientKey(const std::string& principal, const std::string& id) {
  return absl::StrCat(principal.size(), ":", principal, id);
}

std::string ClientKey(const Job& job) {
  return ClientKey(job.principal(), job.request().client_request_id());
}

}  // namespace

JobTable::JobTable(JobTableOptions options, const Clock* clock)
    : options_(options), clock_(clock) {}

JobTable::~JobTable() {
  std::vector<std::shared_ptr<Job>> jobs;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [sequence, job] : by_sequence_) jobs.push_back(job);
  }
  // ClearEndHook waits for a running hook, which may need mu_: not held.
  for (const auto& job : jobs) job->ClearEndHook();
}

std::shared_ptr<Job> JobTable::InsertOrGet(std::shared_ptr<Job> job) {
  EvictFinished();
  {
    absl::MutexLock lock(&mu_);
    if (!job->request().client_request_id().empty()) {
      const std::string key = ClientKey(*job);
      auto it = by_client_request_id_.find(key);
      if (it != by_client_request_id_.end()) {
        auto seq = by_id_.find(it->second);
        if (seq != by_id_.end()) return by_sequence_.at(seq->second);
      }
      by_client_request_id_[key] = job->id();
    }
    by_id_[job->id()] = job->sequence();
    by_sequence_[job->sequence()] = job;
  }
  // Outside mu_: the hook runs at once if the job already ended, and it
  // takes mu_.
  job->SetEndHook([this](Job&) { EvictFinished(); });
  return job;
}

std::shared_ptr<Job> JobTable::FindByClientRequestId(
    const std::string& principal, const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = by_client_request_id_.find(ClientKey(principal, id));
  if (it == by_client_request_id_.end()) return nullptr;
  auto seq = by_id_.find(it->second);
  if (seq == by_id_.end()) return nullptr;
  return by_sequence_.at(seq->second);
}

absl::StatusOr<std::shared_ptr<Job>> JobTable::Find(
    const std::string& job_id) const {
  absl::MutexLock lock(&mu_);
  auto it = by_id_.find(job_id);
  if (it != by_id_.end()) return by_sequence_.at(it->second);
  if (evicted_.contains(job_id)) {
    return absl::NotFoundError(absl::StrCat(
        "job ", common::EchoValue(job_id), " expired (finished jobs are kept for ",
        absl::FormatDuration(options_.finished_ttl), ", at most ",
        options_.max_finished_jobs, " of them",
        options_.max_result_bytes > 0
            ? absl::StrCat(", their results within ",
                           options_.max_result_bytes / (1 << 20),
                           " MiB in all (--result_store_mb); oldest go first")
            : "",
        ")"));
  }
  return absl::NotFoundError(
      absl::StrCat("job ", common::EchoValue(job_id), " not found"));
}

absl::StatusOr<JobPage> JobTable::List(
    const std::vector<dserve::v1::JobState>& states, int page_size,
    const std::string& page_token) const {
  if (page_size == 0) page_size = 100;
  if (page_size < 1 || page_size > 1000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_size: ", page_size, " is out of range (allowed: 0..1000, 0 = 100)"));
  }
  // The token is the arrival sequence of the last job of the previous page;
  // sequences only grow, so the next page is everything older than it.
  int64_t below = INT64_MAX;
  if (!page_token.empty() && (!absl::SimpleAtoi(page_token, &below) || below < 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token: \"", common::EchoValue(page_token),
                     "\" is not a token returned by ListJobs"));
  }
  // Each state once, before the lock: the filter runs for every job under
  // it, so a request repeating a state millions of times must not make the
  // lock hold time grow with the request (issue 16, finding 7).
  std::vector<dserve::v1::JobState> wanted;
  for (dserve::v1::JobState state : states) {
    if (std::find(wanted.begin(), wanted.end(), state) == wanted.end()) {
      wanted.push_back(state);
    }
  }
  JobPage page;
  absl::MutexLock lock(&mu_);
  auto it = by_sequence_.lower_bound(below);
  while (it != by_sequence_.begin()) {
    --it;
    const std::shared_ptr<Job>& job = it->second;
    if (!wanted.empty() &&
        std::find(wanted.begin(), wanted.end(), job->state()) == wanted.end()) {
      continue;
    }
    if (static_cast<int>(page.jobs.size()) == page_size) {
      page.next_page_token = absl::StrCat(page.jobs.back()->sequence());
      break;
    }
    page.jobs.push_back(job);
  }
  return page;
}

void JobTable::EvictFinished() {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  int finished = 0;
  int64_t kept_bytes = 0;
  // Newest first, so the count and byte limits keep the most recent
  // finished jobs.
  std::vector<std::map<int64_t, std::shared_ptr<Job>>::iterator> doomed;
  for (auto it = by_sequence_.end(); it != by_sequence_.begin();) {
    --it;
    std::optional<absl::Time> end = it->second->end_time();
    if (!end.has_value()) continue;
    ++finished;
    const int64_t bytes = it->second->result_bytes();
    if (finished > options_.max_finished_jobs ||
        now - *end > options_.finished_ttl ||
        (options_.max_result_bytes > 0 &&
         kept_bytes + bytes > options_.max_result_bytes)) {
      doomed.push_back(it);
      continue;
    }
    kept_bytes += bytes;
  }
  result_bytes_ = kept_bytes;
  // Oldest first, so the bounded evicted-id set forgets the oldest ids.
  for (auto it = doomed.rbegin(); it != doomed.rend(); ++it) EvictLocked(*it);
}

int64_t JobTable::result_bytes() const {
  absl::MutexLock lock(&mu_);
  return result_bytes_;
}

void JobTable::EvictLocked(
    std::map<int64_t, std::shared_ptr<Job>>::iterator it) {
  const std::shared_ptr<Job> job = std::move(it->second);
  // Its end hook already ran (it ended); nothing of the table stays on it.
  by_sequence_.erase(it);
  by_id_.erase(job->id());
  if (!job->request().client_request_id().empty()) {
    auto c = by_client_request_id_.find(ClientKey(*job));
    if (c != by_client_request_id_.end() && c->second == job->id()) {
      by_client_request_id_.erase(c);
    }
  }
  evicted_.insert(job->id());
  evicted_order_.push_back(job->id());
  while (static_cast<int>(evicted_order_.size()) > options_.max_evicted_ids) {
    evicted_.erase(evicted_order_.front());
    evicted_order_.pop_front();
  }
}

void JobTable::Erase(const std::string& job_id) {
  std::shared_ptr<Job> job;
  {
    absl::MutexLock lock(&mu_);
    job = EraseLocked(job_id);
  }
  // Outside mu_ (a running hook takes it).
  if (job != nullptr) job->ClearEndHook();
}

std::shared_ptr<Job> JobTable::EraseLocked(const std::string& job_id) {
  auto it = by_id_.find(job_id);
  if (it == by_id_.end()) return nullptr;
  std::shared_ptr<Job> job = std::move(by_sequence_.at(it->second));
  by_sequence_.erase(it->second);
  by_id_.erase(it);
  const bool has_client_id = !job->request().client_request_id().empty();
  auto c = by_client_request_id_.find(ClientKey(*job));
  if (has_client_id && c != by_client_request_id_.end() &&
      c->second == job_id) {
    by_client_request_id_.erase(c);
  }
  return job;
}

int JobTable::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(by_sequence_.size());
}

}  // namespace dserve::scheduler
