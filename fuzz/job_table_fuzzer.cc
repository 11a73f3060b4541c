// Fuzzes job-table operations (scheduler/job_table.cc, scheduler/job.cc):
// each input is a program of table and job operations (insert with a
// client_request_id, state transitions, cancel, listeners, Find, List
// paging, Erase, eviction, clock steps) over a small table, checked against
// the table's contract after every step.
//
// Invariants:
//  * InsertOrGet returns the new job, or an earlier job of the same
//    principal with the same non-empty client_request_id;
//  * each job ends exactly once (one successful Succeed/Finish; every
//    listener sees exactly one terminal event, the last one);
//  * a job that has not ended and was not erased is always found;
//  * a full List walk (any page size, any state filter) returns each job at
//    most once, newest first, only the asked states, and every unended
//    remembered job when unfiltered; finished jobs kept <= max_finished_jobs
//    after eviction;
//  * error messages are bounded (client strings echoed truncated).

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fuzz/fuzz_check.h"
#include "scheduler/clock.h"
#include "scheduler/job.h"
#include "scheduler/job_table.h"

namespace {

using ::dserve::scheduler::Job;
using ::dserve::scheduler::JobEvent;
using ::dserve::scheduler::JobTable;
using ::dserve::v1::JobState;

class StepClock final : public dserve::scheduler::Clock {
 public:
  absl::Time Now() const override { return now_; }
  void Advance(absl::Duration d) { now_ += d; }

 private:
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
};

struct Tracked {
  std::shared_ptr<Job> job;
  bool in_table = false;  // InsertOrGet returned it
  bool erased = false;
  int endings = 0;  // successful Succeed/Finish
  // Per listener: terminal events seen, events after the terminal one.
  std::shared_ptr<std::map<int, std::pair<int, int>>> listener_log =
      std::make_shared<std::map<int, std::pair<int, int>>>();
  std::vector<int> listeners;
};

const char* const kPrincipals[] = {"anonymous", "alice", "bob"};

void CheckMessage(const absl::Status& status) {
  FUZZ_CHECK(status.message().size() <= 1024, "error message of %zu bytes",
             status.message().size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  StepClock clock;
  dserve::scheduler::JobTableOptions options;
  options.finished_ttl = absl::Seconds(fdp.ConsumeIntegralInRange<int>(1, 120));
  options.max_finished_jobs = fdp.ConsumeIntegralInRange<int>(0, 6);
  options.max_evicted_ids = fdp.ConsumeIntegralInRange<int>(0, 8);
  auto table = std::make_unique<JobTable>(options, &clock);
  std::vector<Tracked> jobs;
  int64_t sequence = 0;

  auto pick = [&]() -> Tracked* {
    if (jobs.empty()) return nullptr;
    return &jobs[fdp.ConsumeIntegralInRange<size_t>(0, jobs.size() - 1)];
  };

  for (int op_count = 0; op_count < 200 && fdp.remaining_bytes() > 0;
       ++op_count) {
    switch (fdp.ConsumeIntegralInRange<int>(0, 11)) {
      case 0: {  // insert
        dserve::scheduler::JobSpec spec;
        spec.id = "job-" + std::to_string(++sequence);
        spec.sequence = sequence;
        spec.principal = kPrincipals[fdp.ConsumeIntegralInRange<int>(0, 2)];
        if (fdp.ConsumeBool()) {
          spec.request.set_client_request_id(
              "r" + std::to_string(fdp.ConsumeIntegralInRange<int>(0, 3)));
        }
        spec.request.set_prompt("p");
        spec.effective_request = spec.request;
        spec.create_time = clock.Now();
        Tracked t;
        t.job = std::make_shared<Job>(spec);
        std::shared_ptr<Job> got = table->InsertOrGet(t.job);
        if (got == t.job) {
          t.in_table = true;
        } else {
          FUZZ_CHECK(got != nullptr, "InsertOrGet returned null");
          FUZZ_CHECK(!spec.request.client_request_id().empty() &&
                         got->principal() == spec.principal &&
                         got->request().client_request_id() ==
                             spec.request.client_request_id(),
                     "InsertOrGet returned another caller's job %s",
                     got->id().c_str());
        }
        jobs.push_back(std::move(t));
        break;
      }
      case 1: {  // queue / start / progress
        Tracked* t = pick();
        if (t == nullptr) break;
        t->job->MarkQueued(fdp.ConsumeIntegralInRange<int>(0, 5));
        if (fdp.ConsumeBool()) {
          t->job->MarkStarted(0, dserve::v1::MeshLayout(), 1, clock.Now());
        }
        t->job->ReportProgress(fdp.ConsumeIntegralInRange<int>(0, 9), 8, 1.0,
                               nullptr);
        break;
      }
      case 2: {  // succeed with a result
        Tracked* t = pick();
        if (t == nullptr) break;
        dserve::v1::Result result;
        result.add_media()->set_data(
            std::string(fdp.ConsumeIntegralInRange<int>(0, 4096), 'x'));
        if (t->job->Succeed(result, clock.Now())) ++t->endings;
        break;
      }
      case 3: {  // finish with a status
        Tracked* t = pick();
        if (t == nullptr) break;
        const auto code = static_cast<absl::StatusCode>(
            fdp.ConsumeIntegralInRange<int>(0, 16));
        if (t->job->Finish(absl::Status(code, "ended"), clock.Now())) {
          ++t->endings;
        }
        break;
      }
      case 4: {  // cancel request / requeue
        Tracked* t = pick();
        if (t == nullptr) break;
        if (fdp.ConsumeBool()) {
          t->job->RequestCancel(absl::CancelledError("cancelled by client"));
        } else {
          t->job->Requeue();
        }
        break;
      }
      case 5: {  // listener
        Tracked* t = pick();
        if (t == nullptr) break;
        if (!t->listeners.empty() && fdp.ConsumeBool()) {
          t->job->RemoveListener(t->listeners.back());
          t->listeners.pop_back();
          break;
        }
        auto log = t->listener_log;
        const int slot = static_cast<int>(log->size());
        (*log)[slot] = {0, 0};
        t->listeners.push_back(
            t->job->AddListener([log, slot](const JobEvent& event) {
              auto& [terminal, after] = (*log)[slot];
              if (terminal > 0) ++after;
              if (event.terminal) ++terminal;
            }));
        break;
      }
      case 6: {  // find
        Tracked* t = pick();
        const std::string id =
            t != nullptr && fdp.ConsumeBool()
                ? t->job->id()
                : fdp.ConsumeRandomLengthString(200);
        absl::StatusOr<std::shared_ptr<Job>> found = table->Find(id);
        if (!found.ok()) CheckMessage(found.status());
        table->FindByClientRequestId(
            kPrincipals[fdp.ConsumeIntegralInRange<int>(0, 2)],
            "r" + std::to_string(fdp.ConsumeIntegralInRange<int>(0, 3)));
        break;
      }
      case 7: {  // list walk
        std::vector<JobState> states;
        const int n = fdp.ConsumeIntegralInRange<int>(0, 3);
        for (int i = 0; i < n; ++i) {
          states.push_back(
              static_cast<JobState>(fdp.ConsumeIntegralInRange<int>(-1, 8)));
        }
        const int page_size = fdp.ConsumeIntegralInRange<int>(0, 4);
        std::string token;
        if (fdp.ConsumeBool()) token = fdp.ConsumeRandomLengthString(30);
        std::set<std::string> seen;
        int64_t last_sequence = INT64_MAX;
        for (int page_no = 0; page_no < 1000; ++page_no) {
          absl::StatusOr<dserve::scheduler::JobPage> page =
              table->List(states, page_size, token);
          if (!page.ok()) {
            CheckMessage(page.status());
            break;
          }
          FUZZ_CHECK(static_cast<int>(page->jobs.size()) <=
                         (page_size == 0 ? 100 : page_size),
                     "page of %zu for page_size %d", page->jobs.size(),
                     page_size);
          for (const auto& job : page->jobs) {
            FUZZ_CHECK(seen.insert(job->id()).second, "job %s listed twice",
                       job->id().c_str());
            FUZZ_CHECK(job->sequence() < last_sequence, "not newest first");
            last_sequence = job->sequence();
            if (!states.empty()) {
              bool wanted = false;
              for (JobState s : states) wanted |= s == job->state();
              FUZZ_CHECK(wanted, "job %s in state %d not asked for",
                         job->id().c_str(), job->state());
            }
          }
          if (page->next_page_token.empty()) break;
          token = page->next_page_token;
        }
        break;
      }
      case 8: {  // erase
        Tracked* t = pick();
        if (t == nullptr) break;
        table->Erase(t->job->id());
        t->erased = true;
        break;
      }
      case 9:
        clock.Advance(absl::Seconds(fdp.ConsumeIntegralInRange<int>(0, 200)));
        break;
      case 10:
        table->EvictFinished();
        break;
      case 11: {  // snapshot
        Tracked* t = pick();
        if (t == nullptr) break;
        dserve::v1::Job proto = t->job->ToProto(fdp.ConsumeBool());
        FUZZ_CHECK(proto.job_id() == t->job->id(), "ToProto id %s",
                   proto.job_id().c_str());
        break;
      }
    }

    // The contract after every operation.
    for (const Tracked& t : jobs) {
      FUZZ_CHECK(t.endings <= 1, "job %s ended %d times",
                 t.job->id().c_str(), t.endings);
      FUZZ_CHECK((t.endings == 1) == t.job->is_terminal(),
                 "job %s: %d endings but is_terminal %d", t.job->id().c_str(),
                 t.endings, t.job->is_terminal());
      for (const auto& [slot, counts] : *t.listener_log) {
        FUZZ_CHECK(counts.first <= 1 && counts.second == 0,
                   "job %s listener %d: %d terminal events, %d after",
                   t.job->id().c_str(), slot, counts.first, counts.second);
      }
      if (t.in_table && !t.erased && !t.job->is_terminal()) {
        absl::StatusOr<std::shared_ptr<Job>> found = table->Find(t.job->id());
        FUZZ_CHECK(found.ok() && *found == t.job,
                   "unended job %s not found: %s", t.job->id().c_str(),
                   found.status().ToString().c_str());
      }
    }
  }

  // Unfiltered walk: every unended, unerased remembered job is listed, and
  // after eviction no more finished jobs than allowed are kept.
  table->EvictFinished();
  std::set<std::string> listed;
  int finished = 0;
  std::string token;
  for (int page_no = 0; page_no < 1000; ++page_no) {
    absl::StatusOr<dserve::scheduler::JobPage> page = table->List({}, 7, token);
    FUZZ_CHECK(page.ok(), "%s", page.status().ToString().c_str());
    for (const auto& job : page->jobs) {
      listed.insert(job->id());
      if (job->is_terminal()) ++finished;
    }
    if (page->next_page_token.empty()) break;
    token = page->next_page_token;
  }
  FUZZ_CHECK(finished <= options.max_finished_jobs,
             "%d finished jobs kept, max_finished_jobs %d", finished,
             options.max_finished_jobs);
  for (const Tracked& t : jobs) {
    if (t.in_table && !t.erased && !t.job->is_terminal()) {
      FUZZ_CHECK(listed.count(t.job->id()) == 1, "job %s missing from List",
                 t.job->id().c_str());
    }
  }
  table.reset();  // before the jobs: their end hooks point at it
  return 0;
}
