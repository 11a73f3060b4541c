#ifndef DSERVE_PARALLEL_TESTING_FAKE_COMMUNICATOR_H_
#define DSERVE_PARALLEL_TESTING_FAKE_COMMUNICATOR_H_

// In-process Communicator for unit tests (after c10d's FakeProcessGroup, but
// real): N "ranks" are N threads whose communicators share one
// FakeCommunicatorHub, so collectives produce the same results as Gloo
// without processes or sockets. Byte counts follow communicator.h exactly.
//
// Beyond Gloo it checks what a real backend would silently get wrong or hang
// on: ranks that call different ops in the same round, mismatched shapes or
// dtypes, and waits longer than the hub's timeout (DEADLINE_EXCEEDED instead
// of a hung test).
//
// Thread-safety: FakeCommunicatorHub and FakeGroupRegistry are thread-safe.
// Each communicator they hand out is driven by one thread (its rank) and
// must not outlive its hub. Collectives block until every rank has joined;
// Send is buffered (copies and returns); Recv blocks until a message arrives.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "parallel/communicator.h"
#include <ATen/core/Tensor.h>

namespace dserve::parallel::testing {

class FakeCommunicatorHub {
 public:
  // `timeout` bounds every wait of every rank.
  explicit FakeCommunicatorHub(int size,
                               absl::Duration timeout = absl::Seconds(30));
  FakeCommunicatorHub(const FakeCommunicatorHub&) = delete;
  FakeCommunicatorHub& operator=(const FakeCommunicatorHub&) = delete;

  int size() const { return size_; }

  // The communicator of `rank` in [0, size); each rank connects once.
  absl::StatusOr<std::unique_ptr<Communicator>> Connect(int rank);

  // One collective round: every rank contributes `tensor` (copied; may be
  // undefined, e.g. for Barrier) under the name `op`, and once all have
  // joined each gets every rank's contribution in rank order. Errors if ranks
  // disagree on `op` or a rank does not join within the timeout.
  absl::StatusOr<std::vector<at::Tensor>> Exchange(int rank,
                                                   std::string_view op,
                                                   const at::Tensor& tensor);
  // Mailbox from src to dst: Post copies and returns; Take waits for the
  // oldest message.
  void Post(int src, int dst, const at::Tensor& tensor);
  absl::StatusOr<at::Tensor> Take(int src, int dst);

 private:
  struct Round {
    std::string op;
    std::vector<at::Tensor> inputs;
    int arrived = 0;
    bool done = false;
    absl::Status status;
  };

  const int size_;
  const absl::Duration timeout_;
  absl::Mutex mu_;
  std::shared_ptr<Round> round_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> connected_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<int, int>, std::vector<at::Tensor>> mailboxes_
      ABSL_GUARDED_BY(mu_);
};

// Hubs by group name, for code that builds its groups through a factory
// (MeshCommunicators): Connect(name, rank, size) joins the hub of `name`,
// creating it on first use. Thread-safe; must outlive the communicators.
class FakeGroupRegistry {
 public:
  explicit FakeGroupRegistry(absl::Duration timeout = absl::Seconds(30))
      : timeout_(timeout) {}

  // Errors if `group_size` differs from the size the group was created with.
  absl::StatusOr<std::unique_ptr<Communicator>> Connect(
      const std::string& group_name, int group_rank, int group_size);

  // Names of the groups created so far, sorted.
  std::vector<std::string> GroupNames();

 private:
  const absl::Duration timeout_;
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<FakeCommunicatorHub>> hubs_
      ABSL_GUARDED_BY(mu_);
};

// Runs fn(rank, communicator) on `size` threads over a fresh hub and joins
// them. gtest assertions inside fn are reported as usual.
void RunFakeRanks(int size,
                  const std::function<void(int rank, Communicator& comm)>& fn,
                  absl::Duration timeout = absl::Seconds(30));

}  // namespace dserve::parallel::testing

#endif  // DSERVE_PARALLEL_TESTING_FAKE_COMMUNICATOR_H_
