#include "scheduler/job.h"

#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::scheduler {
namespace {

using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1000);

std::unique_ptr<Job> MakeJob() {
  JobSpec spec;
  spec.id = "j-1";
  spec.request.set_prompt("a cat");
  spec.effective_request.set_prompt("a cat");
  spec.effective_request.set_num_inference_steps(4);
  spec.effective_request.set_seed(7);
  spec.sequence = 1;
  spec.create_time = kT0;
  return std::make_unique<Job>(spec);
}

dserve::v1::MeshLayout Mesh() {
  dserve::v1::MeshLayout mesh;
  mesh.set_dp(2);
  mesh.set_cfg(1);
  return mesh;
}

// Records every event a listener gets.
struct Recorder {
  std::vector<JobEvent> events;
  Job::Listener listener() {
    return [this](const JobEvent& e) { events.push_back(e); };
  }
};

TEST(JobTest, HappyPathEmitsQueuedStartedProgressResult) {
  auto job = MakeJob();
  Recorder rec;
  job->AddListener(rec.listener());  // Not admitted yet: no replay.
  job->MarkQueued(3);
  Recorder late;
  job->AddListener(late.listener());  // Replays Queued{3}.
  ASSERT_EQ(late.events.size(), 1u);
  EXPECT_EQ(late.events[0].event.queued().position(), 3);
  ASSERT_TRUE(job->MarkStarted(1, Mesh(), 1, kT0 + absl::Seconds(1)));
  job->ReportProgress(1, 4, 10.0, nullptr);
  dserve::v1::Result result;
  result.set_seed(7);
  ASSERT_TRUE(job->Succeed(result, kT0 + absl::Seconds(2)));

  ASSERT_EQ(rec.events.size(), 4u);
  EXPECT_EQ(rec.events[0].event.queued().position(), 3);
  EXPECT_EQ(rec.events[1].event.started().replica(), 1);
  EXPECT_EQ(rec.events[1].event.started().mesh().dp(), 2);
  EXPECT_EQ(rec.events[2].event.progress().step(), 1);
  EXPECT_TRUE(rec.events[3].terminal);
  EXPECT_TRUE(rec.events[3].status.ok());
  EXPECT_EQ(rec.events[3].event.result().seed(), 7u);
  for (const auto& e : rec.events) EXPECT_EQ(e.event.job_id(), "j-1");
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_SUCCEEDED);

  dserve::v1::Job proto = job->ToProto(/*include_result=*/true);
  EXPECT_EQ(proto.replica(), 1);
  EXPECT_EQ(proto.step(), 4);
  EXPECT_EQ(proto.total_steps(), 4);
  EXPECT_EQ(proto.create_time_ms(), 1000000);
  EXPECT_EQ(proto.start_time_ms(), 1001000);
  EXPECT_EQ(proto.end_time_ms(), 1002000);
  EXPECT_EQ(proto.request().prompt(), "a cat");
}

TEST(JobTest, ExactlyOneTerminalState) {
  auto job = MakeJob();
  Recorder rec;
  job->AddListener(rec.listener());
  EXPECT_TRUE(job->Finish(absl::CancelledError("by user"), kT0));
  EXPECT_FALSE(job->Finish(absl::UnavailableError("late"), kT0));
  EXPECT_FALSE(job->Succeed(dserve::v1::Result(), kT0));
  EXPECT_FALSE(job->MarkStarted(0, Mesh(), 1, kT0));
  EXPECT_FALSE(job->RequestCancel(absl::CancelledError("again")));
  EXPECT_EQ(job->state(), dserve::v1::JOB_STATE_CANCELLED);
  int terminal = 0;
  for (const auto& e : rec.events) terminal += e.terminal ? 1 : 0;
  EXPECT_EQ(terminal, 1);
  dserve::v1::Job proto = job->ToProto(true);
  EXPECT_EQ(proto.status_code(), static_cast<int>(absl::StatusCode::kCancelled));
  EXPECT_EQ(proto.status_message(), "by user");
}

TEST(JobTest, FinishMapsStatusToState) {
  struct Case {
    absl::Status status;
    dserve::v1::JobState want;
  };
  const std::vector<Case> cases = {
      {absl::CancelledError("x"), dserve::v1::JOB_STATE_CANCELLED},
      {absl::DeadlineExceededError("x"), dserve::v1::JOB_STATE_DEADLINE_EXCEEDED},
      {absl::UnavailableError("x"), dserve::v1::JOB_STATE_FAILED},
      {absl::OkStatus(), dserve::v1::JOB_STATE_FAILED},
  };
  for (const Case& c : cases) {
    auto job = MakeJob();
    job->Finish(c.status, kT0);
    EXPECT_EQ(job->state(), c.want) << c.status;
    EXPECT_NE(job->ToProto(false).status_message(), "");
  }
}

TEST(JobTest, LateListenerGetsCurrentStateThenFollows) {
  auto job = MakeJob();
  job->MarkQueued(2);
  job->MarkStarted(0, Mesh(), 1, kT0);
  job->ReportProgress(1, 4, 5.0, nullptr);
  job->ReportProgress(2, 4, 9.0, nullptr);

  Recorder rec;
  job->AddListener(rec.listener());
  ASSERT_EQ(rec.events.size(), 2u);
  EXPECT_TRUE(rec.events[0].event.has_started());
  EXPECT_EQ(rec.events[1].event.progress().step(), 2);

  job->ReportProgress(3, 4, 12.0, nullptr);
  ASSERT_EQ(rec.events.size(), 3u);
  EXPECT_EQ(rec.events[2].event.progress().step(), 3);
}

// ENCODE and DECODE progress reach listeners with their stage but never move
// the job's step count (denoising steps); a late listener sees the latest.
TEST(JobTest, EncodeAndDecodeStagesLeaveTheStepCountAlone) {
  auto job = MakeJob();
  job->MarkQueued(0);
  Recorder rec;
  job->AddListener(rec.listener());
  job->MarkStarted(0, Mesh(), 1, kT0);
  job->ReportStage(dserve::v1::PROGRESS_STAGE_ENCODE, 0, 4, 1.0);
  EXPECT_EQ(job->ToProto(false).total_steps(), 4);
  EXPECT_EQ(job->ToProto(false).step(), 0);
  for (int s = 1; s <= 4; ++s) job->ReportProgress(s, 4, 2.0 * s, nullptr);
  job->ReportStage(dserve::v1::PROGRESS_STAGE_DECODE, 0, 3, 9.0);
  job->ReportStage(dserve::v1::PROGRESS_STAGE_DECODE, 2, 3, 10.0);
  EXPECT_EQ(job->ToProto(false).step(), 4);
  EXPECT_EQ(job->ToProto(false).total_steps(), 4);

  // Queued, Started, ENCODE, 4 x DENOISE, 2 x DECODE.
  ASSERT_EQ(rec.events.size(), 9u);
  EXPECT_EQ(rec.events[2].event.progress().stage(),
            dserve::v1::PROGRESS_STAGE_ENCODE);
  EXPECT_EQ(rec.events[3].event.progress().stage(),
            dserve::v1::PROGRESS_STAGE_DENOISE);
  const dserve::v1::Progress& decode = rec.events[8].event.progress();
  EXPECT_EQ(decode.stage(), dserve::v1::PROGRESS_STAGE_DECODE);
  EXPECT_EQ(decode.step(), 2);
  EXPECT_EQ(decode.total(), 3);

  Recorder late;
  job->AddListener(late.listener());
  ASSERT_EQ(late.events.size(), 2u);
  EXPECT_EQ(late.events[1].event.progress().stage(),
            dserve::v1::PROGRESS_STAGE_DECODE);
  EXPECT_EQ(late.events[1].event.progress().step(), 2);

  // Not running: ignored.
  ASSERT_TRUE(job->Succeed(dserve::v1::Result(), kT0 + absl::Seconds(1)));
  job->ReportStage(dserve::v1::PROGRESS_STAGE_DECODE, 3, 3, 11.0);
  EXPECT_TRUE(rec.events.back().terminal);
}

TEST(JobTest, ListenerAfterEndGetsTerminalEventWithStatus) {
  auto job = MakeJob();
  job->Finish(absl::UnavailableError("replica 1: rank 0 died"), kT0);
  Recorder rec;
  job->AddListener(rec.listener());
  ASSERT_EQ(rec.events.size(), 1u);
  EXPECT_TRUE(rec.events[0].terminal);
  EXPECT_EQ(rec.events[0].status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(rec.events[0].event.ended().state(), dserve::v1::JOB_STATE_FAILED);
  EXPECT_THAT(rec.events[0].event.ended().status_message(),
              HasSubstr("rank 0 died"));
}

TEST(JobTest, RemovedListenerIsNotCalled) {
  auto job = MakeJob();
  Recorder rec;
  const int id = job->AddListener(rec.listener());
  job->RemoveListener(id);
  job->MarkQueued(1);
  EXPECT_TRUE(rec.events.empty());
}

TEST(JobTest, FirstCancelReasonWins) {
  auto job = MakeJob();
  EXPECT_TRUE(job->RequestCancel(absl::DeadlineExceededError("deadline")));
  EXPECT_TRUE(job->RequestCancel(absl::CancelledError("user")));
  EXPECT_EQ(job->cancel_reason()->code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(JobTest, ListJobsProtoLeavesMediaOut) {
  auto job = MakeJob();
  job->MarkStarted(0, Mesh(), 1, kT0);
  dserve::v1::Result result;
  result.add_media()->set_data("png");
  result.set_seed(7);
  job->Succeed(result, kT0);
  EXPECT_EQ(job->ToProto(false).result().media_size(), 0);
  EXPECT_EQ(job->ToProto(false).result().seed(), 7u);
  EXPECT_EQ(job->ToProto(true).result().media_size(), 1);
}

TEST(JobTest, ProgressPreviewIsForwardedButNotReplayed) {
  auto job = MakeJob();
  job->MarkStarted(0, Mesh(), 1, kT0);
  Recorder live;
  job->AddListener(live.listener());
  dserve::v1::Media preview;
  preview.set_data("img");
  job->ReportProgress(1, 4, 1.0, &preview);
  EXPECT_EQ(live.events.back().event.progress().preview().data(), "img");
  Recorder late;
  job->AddListener(late.listener());
  EXPECT_FALSE(late.events.back().event.progress().has_preview());
}

// Issue 16, finding 3: every listener and reader of a finished job shares
// its one result buffer; nothing copies the media bytes per watcher.
TEST(JobTest, ResultIsOneSharedBufferForEveryListener) {
  auto job = MakeJob();
  job->MarkStarted(0, Mesh(), 1, kT0);
  Recorder live;
  job->AddListener(live.listener());
  dserve::v1::Result result;
  result.add_media()->set_data(std::string(3 << 20, 'x'));
  result.add_media()->set_data("small");
  result.set_seed(7);
  ASSERT_TRUE(job->Succeed(std::move(result), kT0));

  std::shared_ptr<const dserve::v1::Result> shared = job->result();
  ASSERT_NE(shared, nullptr);
  const char* bytes = shared->media(0).data().data();
  std::vector<Recorder> late(5);
  for (Recorder& r : late) job->AddListener(r.listener());
  ASSERT_EQ(live.events.back().result, shared);
  for (const Recorder& r : late) {
    ASSERT_EQ(r.events.size(), 1u);
    ASSERT_EQ(r.events[0].result, shared);  // same object, not an equal copy
    EXPECT_EQ(r.events[0].result->media(0).data().data(), bytes);
    // The event's own Result is the summary: no bytes, sizes in
    // chunked_size, everything else as in the result.
    const dserve::v1::Result& summary = r.events[0].event.result();
    EXPECT_EQ(summary.seed(), 7u);
    ASSERT_EQ(summary.media_size(), 2);
    EXPECT_TRUE(summary.media(0).data().empty());
    EXPECT_EQ(summary.media(0).chunked_size(), 3 << 20);
    EXPECT_EQ(summary.media(1).chunked_size(), 5);
  }
  // The job, `shared`, the live recorder and the five late ones.
  EXPECT_EQ(shared.use_count(), 1 + 1 + 1 + 5);
  EXPECT_EQ(job->result_summary()->media(0).chunked_size(), 3 << 20);
  EXPECT_GE(job->result_bytes(), 3 << 20);
  EXPECT_LT(job->result_bytes(), (3 << 20) + 1024);
}

TEST(JobTest, EndHookRunsOnceAfterTheJobEndsOrAtOnceIfItHad) {
  auto job = MakeJob();
  int calls = 0;
  job->SetEndHook([&](Job& j) {
    ++calls;
    // The job's lock is released: its methods may be called.
    EXPECT_TRUE(j.is_terminal());
    EXPECT_TRUE(j.end_time().has_value());
  });
  EXPECT_EQ(calls, 0);
  job->MarkStarted(0, Mesh(), 1, kT0);
  ASSERT_TRUE(job->Finish(absl::InternalError("boom"), kT0));
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(job->Finish(absl::InternalError("again"), kT0));
  EXPECT_EQ(calls, 1);

  auto ended = MakeJob();
  ASSERT_TRUE(ended->Succeed(dserve::v1::Result(), kT0));
  int late_calls = 0;
  ended->SetEndHook([&](Job&) { ++late_calls; });
  EXPECT_EQ(late_calls, 1);
  auto cleared = MakeJob();
  cleared->SetEndHook([&](Job&) { ADD_FAILURE() << "cleared hook ran"; });
  cleared->ClearEndHook();
  cleared->Finish(absl::CancelledError("bye"), kT0);
}

TEST(JobTest, StreamCountStopsAtTheLimit) {
  auto job = MakeJob();
  EXPECT_TRUE(job->AddStream(2));
  EXPECT_TRUE(job->AddStream(2));
  EXPECT_FALSE(job->AddStream(2));
  EXPECT_EQ(job->open_streams(), 2);
  EXPECT_TRUE(job->AddStream(0));  // 0 = no limit (the creating Generate)
  job->RemoveStream();
  job->RemoveStream();
  EXPECT_TRUE(job->AddStream(2));
  EXPECT_EQ(job->open_streams(), 2);
}

}  // namespace
}  // namespace dserve::scheduler
