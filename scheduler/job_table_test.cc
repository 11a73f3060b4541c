#include "scheduler/job_table.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/testing/fake_clock.h"

namespace dserve::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class JobTableTest : public ::testing::Test {
 protected:
  std::shared_ptr<Job> MakeJob(const std::string& client_id = "",
                               const std::string& principal = "anonymous") {
    JobSpec spec;
    spec.principal = principal;
    spec.id = "j-" + std::to_string(next_);
    spec.sequence = next_++;
    spec.request.set_client_request_id(client_id);
    spec.create_time = clock_.Now();
    return std::make_shared<Job>(spec);
  }
  static std::vector<std::string> Ids(const JobPage& page) {
    std::vector<std::string> ids;
    for (const auto& job : page.jobs) ids.push_back(job->id());
    return ids;
  }

  int64_t next_ = 1;
  testing::FakeClock clock_;
};

TEST_F(JobTableTest, FindAndNotFound) {
  JobTable table(JobTableOptions(), &clock_);
  auto job = MakeJob();
  EXPECT_EQ(table.InsertOrGet(job), job);
  EXPECT_EQ(*table.Find("j-1"), job);
  absl::StatusOr<std::shared_ptr<Job>> missing = table.Find("j-99");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "job j-99 not found");
}

TEST_F(JobTableTest, ClientRequestIdIsIdempotent) {
  JobTable table(JobTableOptions(), &clock_);
  auto first = MakeJob("req-1");
  auto second = MakeJob("req-1");
  EXPECT_EQ(table.InsertOrGet(first), first);
  EXPECT_EQ(table.InsertOrGet(second), first);
  EXPECT_EQ(table.FindByClientRequestId("anonymous", "req-1"), first);
  EXPECT_EQ(table.FindByClientRequestId("anonymous", "req-2"), nullptr);
  EXPECT_EQ(table.size(), 1);
}

// Finding 5: one caller's client_request_id never reaches another's job.
TEST_F(JobTableTest, ClientRequestIdIsScopedToThePrincipal) {
  JobTable table(JobTableOptions(), &clock_);
  auto alice = MakeJob("req-1", "bearer:alice");
  auto bob = MakeJob("req-1", "bearer:bob");
  auto anonymous = MakeJob("req-1");
  EXPECT_EQ(table.InsertOrGet(alice), alice);
  EXPECT_EQ(table.InsertOrGet(bob), bob);
  EXPECT_EQ(table.InsertOrGet(anonymous), anonymous);
  EXPECT_EQ(table.FindByClientRequestId("bearer:alice", "req-1"), alice);
  EXPECT_EQ(table.FindByClientRequestId("bearer:bob", "req-1"), bob);
  EXPECT_EQ(table.FindByClientRequestId("anonymous", "req-1"), anonymous);
  EXPECT_EQ(table.FindByClientRequestId("bearer:eve", "req-1"), nullptr);
  EXPECT_EQ(table.size(), 3);
  // Erasing one principal's job leaves the others' keys alone.
  table.Erase(bob->id());
  EXPECT_EQ(table.FindByClientRequestId("bearer:bob", "req-1"), nullptr);
  EXPECT_EQ(table.FindByClientRequestId("bearer:alice", "req-1"), alice);
}

TEST_F(JobTableTest, EraseForgetsJobAndItsClientRequestId) {
  JobTable table(JobTableOptions(), &clock_);
  auto job = table.InsertOrGet(MakeJob("req-9"));
  table.Erase(job->id());
  EXPECT_EQ(table.Find(job->id()).status().message(), "job j-1 not found");
  EXPECT_EQ(table.FindByClientRequestId("anonymous", "req-9"), nullptr);
  auto retry = MakeJob("req-9");
  EXPECT_EQ(table.InsertOrGet(retry), retry);
  table.Erase("j-404");  // Unknown: no-op.
  EXPECT_EQ(table.size(), 1);
}

TEST_F(JobTableTest, ListIsNewestFirstWithFilterAndPaging) {
  JobTable table(JobTableOptions(), &clock_);
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 5; ++i) jobs.push_back(table.InsertOrGet(MakeJob()));
  jobs[1]->Finish(absl::CancelledError("x"), clock_.Now());
  jobs[3]->Finish(absl::CancelledError("x"), clock_.Now());

  absl::StatusOr<JobPage> page = table.List({}, 2, "");
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(Ids(*page), ElementsAre("j-5", "j-4"));
  ASSERT_FALSE(page->next_page_token.empty());
  page = table.List({}, 2, page->next_page_token);
  EXPECT_THAT(Ids(*page), ElementsAre("j-3", "j-2"));
  page = table.List({}, 2, page->next_page_token);
  EXPECT_THAT(Ids(*page), ElementsAre("j-1"));
  EXPECT_TRUE(page->next_page_token.empty());

  page = table.List({dserve::v1::JOB_STATE_CANCELLED}, 0, "");
  EXPECT_THAT(Ids(*page), ElementsAre("j-4", "j-2"));
  page = table.List({dserve::v1::JOB_STATE_QUEUED}, 0, "");
  EXPECT_THAT(Ids(*page), ElementsAre("j-5", "j-3", "j-1"));
}

TEST_F(JobTableTest, ListRejectsBadArguments) {
  JobTable table(JobTableOptions(), &clock_);
  absl::StatusOr<JobPage> page = table.List({}, 1001, "");
  EXPECT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(page.status().message(), HasSubstr("page_size: 1001"));
  page = table.List({}, 10, "abc");
  EXPECT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(page.status().message(), HasSubstr("page_token: \"abc\""));
  // Echoed values are cut (issue 16, finding 8): a 1 MB token or job id
  // does not come back 1 MB long.
  const std::string huge(1 << 20, '7');
  page = table.List({}, 10, huge + "x");
  EXPECT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(page.status().message().size(), 300u);
  EXPECT_THAT(page.status().message(), HasSubstr("(1048577 bytes)"));
  absl::StatusOr<std::shared_ptr<Job>> found = table.Find(huge);
  EXPECT_EQ(found.status().code(), absl::StatusCode::kNotFound);
  EXPECT_LT(found.status().message().size(), 300u);
}

TEST_F(JobTableTest, EvictsFinishedJobsByAge) {
  JobTableOptions options;
  options.finished_ttl = absl::Minutes(10);
  JobTable table(options, &clock_);
  auto done = table.InsertOrGet(MakeJob("idem"));
  auto running = table.InsertOrGet(MakeJob());
  done->Finish(absl::CancelledError("x"), clock_.Now());
  clock_.Advance(absl::Minutes(11));
  table.EvictFinished();
  absl::StatusOr<std::shared_ptr<Job>> found = table.Find(done->id());
  EXPECT_EQ(found.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(found.status().message(), HasSubstr("job j-1 expired"));
  EXPECT_TRUE(table.Find(running->id()).ok());  // Unfinished jobs stay.
  // The idempotency key is free again once its job is gone.
  EXPECT_EQ(table.FindByClientRequestId("anonymous", "idem"), nullptr);
}

TEST_F(JobTableTest, EvictsOldestFinishedJobsBeyondCount) {
  JobTableOptions options;
  options.max_finished_jobs = 2;
  JobTable table(options, &clock_);
  for (int i = 0; i < 4; ++i) {
    table.InsertOrGet(MakeJob())->Finish(absl::CancelledError("x"), clock_.Now());
  }
  table.EvictFinished();
  EXPECT_FALSE(table.Find("j-1").ok());
  EXPECT_FALSE(table.Find("j-2").ok());
  EXPECT_TRUE(table.Find("j-3").ok());
  EXPECT_TRUE(table.Find("j-4").ok());
}

TEST_F(JobTableTest, EvictedIdSetIsBounded) {
  JobTableOptions options;
  options.max_finished_jobs = 0;
  options.max_evicted_ids = 1;
  JobTable table(options, &clock_);
  table.InsertOrGet(MakeJob())->Finish(absl::CancelledError("x"), clock_.Now());
  table.InsertOrGet(MakeJob())->Finish(absl::CancelledError("x"), clock_.Now());
  table.EvictFinished();
  EXPECT_THAT(table.Find("j-1").status().message(), HasSubstr("not found"));
  EXPECT_THAT(table.Find("j-2").status().message(), HasSubstr("expired"));
}


// Finding 7 of issue 16: repeated states collapse to one filter entry; the
// result is the same as for the state named once.
TEST_F(JobTableTest, ListCollapsesRepeatedStates) {
  JobTable table(JobTableOptions(), &clock_);
  auto done = table.InsertOrGet(MakeJob());
  done->Finish(absl::CancelledError("x"), clock_.Now());
  auto queued = table.InsertOrGet(MakeJob());
  std::vector<dserve::v1::JobState> many(1 << 20, dserve::v1::JOB_STATE_CANCELLED);
  many.push_back(dserve::v1::JOB_STATE_CANCELLED);
  absl::StatusOr<JobPage> page = table.List(many, 0, "");
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(Ids(*page), ElementsAre(done->id()));
}
// Issue 16, finding 3: the result store has a total budget. A job that ends
// evicts the oldest finished results beyond it at once (no Insert needed),
// and an evicted job answers NOT_FOUND "expired" naming the budget flag.
TEST_F(JobTableTest, ResultBudgetEvictsOldestResultsWhenAJobEnds) {
  JobTableOptions options;
  options.max_result_bytes = 5 << 20;
  JobTable table(options, &clock_);
  auto succeed = [&](const std::shared_ptr<Job>& job) {
    dserve::v1::Result result;
    result.add_media()->set_data(std::string(2 << 20, 'r'));
    job->MarkStarted(0, dserve::v1::MeshLayout(), 1, clock_.Now());
    ASSERT_TRUE(job->Succeed(std::move(result), clock_.Now()));
    clock_.Advance(absl::Seconds(1));
  };
  auto a = MakeJob(), b = MakeJob(), c = MakeJob(), failed = MakeJob();
  for (const auto& job : {a, b, c, failed}) table.InsertOrGet(job);
  succeed(a);
  succeed(b);
  EXPECT_TRUE(table.Find(a->id()).ok());
  EXPECT_GT(table.result_bytes(), 4 << 20);
  succeed(c);  // 6 MiB > 5 MiB: the oldest result goes, now
  absl::StatusOr<std::shared_ptr<Job>> gone = table.Find(a->id());
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(gone.status().message(), HasSubstr("expired"));
  EXPECT_THAT(gone.status().message(), HasSubstr("--result_store_mb"));
  EXPECT_TRUE(table.Find(b->id()).ok());
  EXPECT_TRUE(table.Find(c->id()).ok());
  EXPECT_LE(table.result_bytes(), 5 << 20);
  // A failed job holds no result and costs nothing.
  failed->Finish(absl::InternalError("x"), clock_.Now());
  EXPECT_TRUE(table.Find(failed->id()).ok());
  EXPECT_TRUE(table.Find(b->id()).ok());
  // A result larger than the whole budget is not kept at all.
  auto huge = MakeJob();
  table.InsertOrGet(huge);
  dserve::v1::Result result;
  result.add_media()->set_data(std::string(6 << 20, 'h'));
  ASSERT_TRUE(huge->Succeed(std::move(result), clock_.Now()));
  EXPECT_EQ(table.Find(huge->id()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(table.Find(c->id()).ok());
}

TEST_F(JobTableTest, JobsOutlivingTheTableDoNotCallIt) {
  auto job = MakeJob();
  {
    JobTableOptions options;
    options.max_result_bytes = 1;
    JobTable table(options, &clock_);
    table.InsertOrGet(job);
  }
  // The table is gone; its end hook must be too.
  EXPECT_TRUE(job->Finish(absl::CancelledError("late"), clock_.Now()));
}

}  // namespace
}  // namespace dserve::scheduler
