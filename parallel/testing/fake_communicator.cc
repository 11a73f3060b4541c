#include "parallel/testing/fake_communicator.h"

#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "gtest/gtest.h"
#include "parallel/communicator.h"
#include "parallel/communicator_checks.h"
#include <ATen/ATen.h>

namespace dserve::parallel::testing {
namespace {

absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

std::string Describe(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes() << " " << c10::toString(t.scalar_type());
  return out.str();
}

// Every rank's contribution must have rank 0's shape and dtype (what a real
// backend assumes without checking).
absl::Status CheckSameShapes(std::string_view op,
                             const std::vector<at::Tensor>& inputs) {
  for (size_t r = 1; r < inputs.size(); ++r) {
    if (inputs[r].sizes() != inputs[0].sizes() ||
        inputs[r].scalar_type() != inputs[0].scalar_type()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "fake ", Sv(op), ": rank ", r, " passed ", Describe(inputs[r]),
          " but rank 0 passed ", Describe(inputs[0]),
          "; every rank must pass the same shape and dtype"));
    }
  }
  return absl::OkStatus();
}

class FakeCommunicator : public Communicator {
 public:
  FakeCommunicator(FakeCommunicatorHub* hub, int rank)
      : hub_(hub), rank_(rank) {}

  int rank() const override { return rank_; }
  int size() const override { return hub_->size(); }
  std::string backend_name() const override { return "fake"; }

  absl::Status Broadcast(at::Tensor& tensor, int root) override {
    RETURN_IF_ERROR(CheckBroadcastArgs(tensor, root, size()));
    auto all = hub_->Exchange(rank_, "Broadcast", tensor);
    if (!all.ok()) return all.status();
    RETURN_IF_ERROR(CheckSameShapes("Broadcast", *all));
    tensor.copy_((*all)[root]);
    CountBroadcast(stats_, tensor.nbytes(), size(), rank_ == root);
    return absl::OkStatus();
  }

  absl::Status AllReduceSum(at::Tensor& tensor) override {
    RETURN_IF_ERROR(CheckTensor(tensor, "AllReduceSum", "tensor"));
    auto all = hub_->Exchange(rank_, "AllReduceSum", tensor);
    if (!all.ok()) return all.status();
    RETURN_IF_ERROR(CheckSameShapes("AllReduceSum", *all));
    // Sum in rank order so every rank gets bit-identical results; reduced
    // precision sums in fp32 and rounds once, like the Gloo backend.
    const bool upcast = tensor.scalar_type() == at::kBFloat16 ||
                        tensor.scalar_type() == at::kHalf;
    at::Tensor sum = upcast ? (*all)[0].to(at::kFloat) : (*all)[0].clone();
    for (size_t r = 1; r < all->size(); ++r) sum.add_((*all)[r]);
    tensor.copy_(sum);
    CountAllReduce(stats_, tensor.nbytes(), size());
    return absl::OkStatus();
  }

  absl::Status AllGather(const at::Tensor& input, at::Tensor& output) override {
    RETURN_IF_ERROR(CheckAllGatherArgs(input, output, size()));
    auto all = hub_->Exchange(rank_, "AllGather", input);
    if (!all.ok()) return all.status();
    RETURN_IF_ERROR(CheckSameShapes("AllGather", *all));
    output.copy_(at::cat(*all, 0));
    CountAllGather(stats_, input.nbytes(), size());
    return absl::OkStatus();
  }

  absl::Status AllToAll(const at::Tensor& input, at::Tensor& output) override {
    RETURN_IF_ERROR(CheckAllToAllArgs(input, output, size()));
    auto all = hub_->Exchange(rank_, "AllToAll", input);
    if (!all.ok()) return all.status();
    RETURN_IF_ERROR(CheckSameShapes("AllToAll", *all));
    const int64_t chunk = input.size(0) / size();
    for (int src = 0; src < size(); ++src) {
      output.narrow(0, src * chunk, chunk)
          .copy_((*all)[src].narrow(0, rank_ * chunk, chunk));
    }
    CountAllToAll(stats_, input.nbytes(), size());
    return absl::OkStatus();
  }

  absl::Status Send(const at::Tensor& tensor, int peer) override {
    RETURN_IF_ERROR(CheckPeer(tensor, "Send", peer, rank_, size()));
    hub_->Post(rank_, peer, tensor);
    CountSend(stats_, tensor.nbytes());
    return absl::OkStatus();
  }

  absl::Status Recv(at::Tensor& tensor, int peer) override {
    RETURN_IF_ERROR(CheckPeer(tensor, "Recv", peer, rank_, size()));
    auto message = hub_->Take(peer, rank_);
    if (!message.ok()) return message.status();
    if (message->sizes() != tensor.sizes() ||
        message->scalar_type() != tensor.scalar_type()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "fake Recv: rank ", rank_, " expected ", Describe(tensor),
          " from rank ", peer, " but it sent ", Describe(*message)));
    }
    tensor.copy_(*message);
    CountCall(stats_);
    return absl::OkStatus();
  }

  absl::Status Barrier() override {
    auto all = hub_->Exchange(rank_, "Barrier", at::Tensor());
    if (!all.ok()) return all.status();
    CountCall(stats_);
    return absl::OkStatus();
  }

 private:
  FakeCommunicatorHub* hub_;
  int rank_;
};

}  // namespace

FakeCommunicatorHub::FakeCommunicatorHub(int size, absl::Duration timeout)
    : size_(size),
      timeout_(timeout),
      round_(std::make_shared<Round>()),
      connected_(size, false) {
  round_->inputs.resize(size_);
}

absl::StatusOr<std::unique_ptr<Communicator>> FakeCommunicatorHub::Connect(
    int rank) {
  absl::MutexLock lock(&mu_);
  if (rank < 0 || rank >= size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("fake Connect: rank ", rank,
                     " is out of range; allowed range is [0, ", size_, ")"));
  }
  if (connected_[rank]) {
    return absl::AlreadyExistsError(
        absl::StrCat("fake Connect: rank ", rank, " is already connected"));
  }
  connected_[rank] = true;
  return std::unique_ptr<Communicator>(
      std::make_unique<FakeCommunicator>(this, rank));
}

absl::StatusOr<std::vector<at::Tensor>> FakeCommunicatorHub::Exchange(
    int rank, std::string_view op, const at::Tensor& tensor) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<Round> round = round_;
  if (round->arrived == 0) {
    round->op = std::string(op);
  } else if (round->op != op && round->status.ok()) {
    round->status = absl::FailedPreconditionError(absl::StrCat(
        "fake communicator: rank ", rank, " called ", Sv(op),
        " while another rank called ", round->op,
        " in the same round; every rank must call collectives in the same "
        "order"));
  }
  round->inputs[rank] = tensor.defined() ? tensor.clone() : tensor;
  if (++round->arrived == size_) {
    round->done = true;
    round_ = std::make_shared<Round>();
    round_->inputs.resize(size_);
  } else {
    bool done = mu_.AwaitWithTimeout(
        absl::Condition(+[](Round* r) { return r->done; }, round.get()),
        timeout_);
    if (!done) {
      // Poison the round so that latecomers fail too instead of computing
      // with a stale contribution.
      round->status = absl::DeadlineExceededError(absl::StrCat(
          "fake ", Sv(op), ": rank ", rank, " waited ",
          absl::FormatDuration(timeout_), " but only ", round->arrived,
          " of ", size_, " ranks joined"));
      round->done = true;
      round_ = std::make_shared<Round>();
      round_->inputs.resize(size_);
    }
  }
  if (!round->status.ok()) return round->status;
  return round->inputs;
}

void FakeCommunicatorHub::Post(int src, int dst, const at::Tensor& tensor) {
  at::Tensor copy = tensor.clone();
  absl::MutexLock lock(&mu_);
  mailboxes_[{src, dst}].push_back(std::move(copy));
}

absl::StatusOr<at::Tensor> FakeCommunicatorHub::Take(int src, int dst) {
  absl::MutexLock lock(&mu_);
  std::vector<at::Tensor>* box = &mailboxes_[{src, dst}];
  bool arrived = mu_.AwaitWithTimeout(
      absl::Condition(+[](std::vector<at::Tensor>* b) { return !b->empty(); },
                      box),
      timeout_);
  if (!arrived) {
    return absl::DeadlineExceededError(absl::StrCat(
        "fake Recv: rank ", dst, " waited ", absl::FormatDuration(timeout_),
        " for a message from rank ", src));
  }
  at::Tensor message = std::move(box->front());
  box->erase(box->begin());
  return message;
}

absl::StatusOr<std::unique_ptr<Communicator>> FakeGroupRegistry::Connect(
    const std::string& group_name, int group_rank, int group_size) {
  if (group_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fake Connect: group_size ", group_size, " must be >= 1"));
  }
  FakeCommunicatorHub* hub = nullptr;
  {
    absl::MutexLock lock(&mu_);
    auto& slot = hubs_[group_name];
    if (slot == nullptr) {
      slot = std::make_unique<FakeCommunicatorHub>(group_size, timeout_);
    }
    hub = slot.get();
  }
  if (hub->size() != group_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fake Connect: group \"", group_name, "\" has size ", hub->size(),
        " but rank ", group_rank, " asked for size ", group_size));
  }
  return hub->Connect(group_rank);
}

std::vector<std::string> FakeGroupRegistry::GroupNames() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> names;
  for (const auto& [name, hub] : hubs_) names.push_back(name);
  return names;
}

void RunFakeRanks(int size,
                  const std::function<void(int rank, Communicator& comm)>& fn,
                  absl::Duration timeout) {
  FakeCommunicatorHub hub(size, timeout);
  std::vector<std::unique_ptr<Communicator>> comms;
  for (int r = 0; r < size; ++r) {
    auto comm = hub.Connect(r);
    ASSERT_TRUE(comm.ok()) << comm.status();
    comms.push_back(std::move(*comm));
  }
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] { fn(r, *comms[r]); });
  }
  for (std::thread& t : threads) t.join();
}

}  // namespace dserve::parallel::testing
