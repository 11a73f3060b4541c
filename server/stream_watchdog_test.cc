// The slow-consumer policy as a table of streams: only a stream whose write
// has waited past the timeout is ended, once, and its action runs outside
// the watchdog's lock (it may unregister streams, as OnDone does).

#include "server/stream_watchdog.h"

#include <functional>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "scheduler/testing/fake_clock.h"

namespace dserve::server {
namespace {

// A stream whose write started at `write_started` (none when nullopt).
class FakeStream final : public StallableStream {
 public:
  explicit FakeStream(std::optional<absl::Time> write_started)
      : write_started_(write_started) {}
  std::function<void()> CheckStall(absl::Time now,
                                   absl::Duration timeout) override {
    if (!write_started_.has_value() || ended_ ||
        now - *write_started_ < timeout) {
      return nullptr;
    }
    ended_ = true;
    return [this] {
      ++actions_run;
      if (on_end) on_end();
    };
  }
  std::optional<absl::Time> write_started_;
  bool ended_ = false;
  int actions_run = 0;
  std::function<void()> on_end;
};

TEST(StreamWatchdogTest, EndsOnlyStreamsStalledPastTheTimeoutOnce) {
  scheduler::testing::FakeClock clock;
  StreamWatchdog::Options options;
  options.timeout = absl::Seconds(5);
  options.run_thread = false;
  StreamWatchdog watchdog(options, &clock);
  const absl::Time t0 = clock.Now();
  FakeStream idle(std::nullopt);           // nothing to write
  FakeStream reading(t0 + absl::Seconds(3));  // write started recently
  FakeStream stalled(t0);                  // write pending since t0
  watchdog.Register(&idle);
  watchdog.Register(&reading);
  watchdog.Register(&stalled);

  clock.Advance(absl::Seconds(4));
  EXPECT_EQ(watchdog.CheckNow(), 0);
  clock.Advance(absl::Seconds(1));  // stalled: exactly 5 s
  EXPECT_EQ(watchdog.CheckNow(), 1);
  EXPECT_EQ(stalled.actions_run, 1);
  EXPECT_EQ(watchdog.CheckNow(), 0) << "a stream is ended once";
  EXPECT_EQ(reading.actions_run, 0);
  EXPECT_EQ(idle.actions_run, 0);
  clock.Advance(absl::Seconds(10));
  EXPECT_EQ(watchdog.CheckNow(), 1);  // `reading` stalled as well by now
  EXPECT_EQ(reading.actions_run, 1);
  EXPECT_EQ(idle.actions_run, 0);
}

TEST(StreamWatchdogTest, ActionsRunWithoutTheLockAndUnregisteredStreamsAreLeft) {
  scheduler::testing::FakeClock clock;
  StreamWatchdog::Options options;
  options.timeout = absl::Seconds(1);
  options.run_thread = false;
  StreamWatchdog watchdog(options, &clock);
  FakeStream a(clock.Now());
  FakeStream b(clock.Now());
  watchdog.Register(&a);
  watchdog.Register(&b);
  // Like OnDone: the ended stream unregisters from inside its action.
  a.on_end = [&] { watchdog.Unregister(&a); };
  watchdog.Unregister(&b);
  clock.Advance(absl::Seconds(2));
  EXPECT_EQ(watchdog.CheckNow(), 1);
  EXPECT_EQ(a.actions_run, 1);
  EXPECT_EQ(b.actions_run, 0);
}

TEST(StreamWatchdogTest, ThreadChecksOnItsOwn) {
  scheduler::testing::FakeClock clock;
  StreamWatchdog::Options options;
  options.timeout = absl::Seconds(1);
  options.period = absl::Milliseconds(10);
  StreamWatchdog watchdog(options, &clock);
  absl::Mutex mu;
  bool ended = false;
  FakeStream s(clock.Now());
  s.on_end = [&] {
    absl::MutexLock lock(&mu);
    ended = true;
  };
  watchdog.Register(&s);
  clock.Advance(absl::Seconds(2));
  absl::MutexLock lock(&mu);
  EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&ended), absl::Seconds(20)));
  mu.Unlock();
  watchdog.Unregister(&s);
  mu.Lock();
}

TEST(StreamWatchdogTest, InfiniteTimeoutNeverEnds) {
  scheduler::testing::FakeClock clock;
  StreamWatchdog watchdog(StreamWatchdog::Options{}, &clock);
  FakeStream s(clock.Now());
  watchdog.Register(&s);
  clock.Advance(absl::Hours(100));
  EXPECT_EQ(watchdog.CheckNow(), 0);
  watchdog.Unregister(&s);
}

}  // namespace
}  // namespace dserve::server
