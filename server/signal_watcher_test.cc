#include "server/signal_watcher.h"

#include <signal.h>

#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace dserve::server {
namespace {

TEST(SignalWatcherTest, DeliversSignalsOnItsThread) {
  absl::Mutex mu;
  std::vector<int> seen;
  auto watcher = SignalWatcher::Start({SIGTERM, SIGINT}, [&](int signo) {
    absl::MutexLock lock(&mu);
    seen.push_back(signo);
  });
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  ASSERT_EQ(raise(SIGTERM), 0);
  ASSERT_EQ(raise(SIGINT), 0);
  absl::MutexLock lock(&mu);
  auto two = [&] { return seen.size() == 2; };
  ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&two), absl::Seconds(10)));
  EXPECT_EQ(seen, (std::vector<int>{SIGTERM, SIGINT}));
}

TEST(SignalWatcherTest, OnlyOneAtATimeAndHandlersRestored) {
  auto first = SignalWatcher::Start({SIGUSR1}, [](int) {});
  ASSERT_TRUE(first.ok());
  auto second = SignalWatcher::Start({SIGUSR1}, [](int) {});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  first->reset();
  struct sigaction current;
  sigaction(SIGUSR1, nullptr, &current);
  EXPECT_EQ(current.sa_handler, SIG_DFL);
  EXPECT_TRUE(SignalWatcher::Start({SIGUSR1}, [](int) {}).ok());
}

}  // namespace
}  // namespace dserve::server
