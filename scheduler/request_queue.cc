#include "scheduler/request_queue.h"

#include <iterator>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "scheduler/queue_aging.h"

namespace dserve::scheduler {

RequestQueue::RequestQueue(int capacity) : capacity_(capacity < 1 ? 1 : capacity) {}

absl::StatusOr<int> RequestQueue::Push(std::shared_ptr<Job> job) {
  absl::MutexLock lock(&mu_);
  const int queued = static_cast<int>(jobs_.size());
  if (queued >= capacity_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("queue is full (", queued, " of ", capacity_,
                     " jobs queued); retry later or raise --queue_capacity"));
  }
  if (keys_.contains(job->id())) {
    return absl::AlreadyExistsError(
        absl::StrCat("job ", job->id(), " is already queued"));
  }
  const Key key = KeyOf(*job);
  auto [it, inserted] = jobs_.emplace(key, job);
  keys_.emplace(job->id(), key);
  const int position = static_cast<int>(std::distance(jobs_.begin(), it));
  job->MarkQueued(position);
  return position;
}

std::shared_ptr<Job> RequestQueue::Pop() {
  absl::MutexLock lock(&mu_);
  if (jobs_.empty()) return nullptr;
  auto it = jobs_.begin();
  std::shared_ptr<Job> job = std::move(it->second);
  jobs_.erase(it);
  keys_.erase(job->id());
  return job;
}

std::shared_ptr<Job> RequestQueue::PopNext(absl::Time now,
                                           absl::Duration max_age) {
  absl::MutexLock lock(&mu_);
  if (jobs_.empty()) return nullptr;
  std::vector<QueuedJobSnapshot> snapshot;
  std::vector<Key> keys;
  snapshot.reserve(jobs_.size());
  keys.reserve(jobs_.size());
  for (const auto& [key, job] : jobs_) {
    snapshot.push_back({job->priority(), job->sequence(), job->create_time()});
    keys.push_back(key);
  }
  const std::optional<size_t> pick = PickNextJob(snapshot, now, max_age);
  auto it = jobs_.find(keys[pick.value_or(0)]);
  std::shared_ptr<Job> job = std::move(it->second);
  jobs_.erase(it);
  keys_.erase(job->id());
  return job;
}

std::shared_ptr<Job> RequestQueue::Remove(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto key_it = keys_.find(job_id);
  if (key_it == keys_.end()) return nullptr;
  auto it = jobs_.find(key_it->second);
  std::shared_ptr<Job> job = std::move(it->second);
  jobs_.erase(it);
  keys_.erase(key_it);
  return job;
}

std::optional<int> RequestQueue::Position(const std::string& job_id) const {
  absl::MutexLock lock(&mu_);
  auto key_it = keys_.find(job_id);
  if (key_it == keys_.end()) return std::nullopt;
  return static_cast<int>(
      std::distance(jobs_.begin(), jobs_.find(key_it->second)));
}

std::vector<std::shared_ptr<Job>> RequestQueue::ExtractExpired(absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Job>> expired;
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    const auto& deadline = it->second->deadline();
    if (deadline.has_value() && *deadline <= now) {
      keys_.erase(it->second->id());
      expired.push_back(std::move(it->second));
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
  return expired;
}

std::vector<std::shared_ptr<Job>> RequestQueue::ExtractCancelled() {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Job>> cancelled;
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (it->second->cancel_reason().has_value()) {
      keys_.erase(it->second->id());
      cancelled.push_back(std::move(it->second));
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
  return cancelled;
}

std::vector<std::shared_ptr<Job>> RequestQueue::Snapshot() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Job>> all;
  all.reserve(jobs_.size());
  for (const auto& [key, job] : jobs_) all.push_back(job);
  return all;
}

std::vector<std::shared_ptr<Job>> RequestQueue::RemoveAll() {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Job>> all;
  all.reserve(jobs_.size());
  for (auto& [key, job] : jobs_) all.push_back(std::move(job));
  jobs_.clear();
  keys_.clear();
  return all;
}

std::optional<absl::Time> RequestQueue::NextDeadline() const {
  absl::MutexLock lock(&mu_);
  std::optional<absl::Time> next;
  for (const auto& [key, job] : jobs_) {
    const auto& deadline = job->deadline();
    if (deadline.has_value() && (!next.has_value() || *deadline < *next)) {
      next = deadline;
    }
  }
  return next;
}

int RequestQueue::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(jobs_.size());
}

}  // namespace dserve::scheduler
