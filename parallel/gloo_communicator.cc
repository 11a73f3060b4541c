#include "parallel/gloo_communicator.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "parallel/communicator.h"
#include "parallel/communicator_checks.h"
#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace dserve::parallel {
namespace {

constexpr int kGlooThreads = 3;

// Gloo's typed collectives know float, double, half and 8/32/64-bit
// integers. Ops that only move bytes can carry other dtypes as a same-width
// type it knows.
at::Tensor WireView(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kBFloat16:
    case at::kShort:
      return t.view(at::kHalf);
    case at::kBool:
      return t.view(at::kByte);
    default:
      return t;
  }
}

// Converts an exception from LibTorch or Gloo where it arises. A timeout
// means a peer is stuck or gone; either way the replica must be restarted,
// but the distinction helps the operator.
absl::Status StatusFromException(const std::string& context,
                                 const std::exception& e) {
  std::string what = e.what();
  if (auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    what = c10_error->what_without_backtrace();
  }
  std::string message = absl::StrCat(context, " failed: ", what);
  if (absl::StrContains(what, "imed out") || absl::StrContains(what, "imeout")) {
    return absl::DeadlineExceededError(message);
  }
  return absl::UnavailableError(message);
}

// An op queued on a ProcessGroupGloo's worker threads. Wait() blocks on the
// c10d work and converts its exception; the destructor waits for a work
// that was never waited for, so `output` is not written behind the
// caller's back after the op is gone.
class GlooPendingOp : public PendingOp {
 public:
  GlooPendingOp(c10::intrusive_ptr<c10d::Work> work, std::string context,
                at::Tensor input, at::Tensor output)
      : work_(std::move(work)),
        context_(std::move(context)),
        input_(std::move(input)),
        output_(std::move(output)) {}

  ~GlooPendingOp() override {
    if (work_) Wait().IgnoreError();
  }

  absl::Status Wait() override {
    if (!work_) {
      return absl::FailedPreconditionError(
          absl::StrCat(context_, ": Wait called twice"));
    }
    c10::intrusive_ptr<c10d::Work> work = std::move(work_);
    work_.reset();
    try {
      work->wait();
    } catch (const std::exception& e) {
      return StatusFromException(context_, e);
    }
    return absl::OkStatus();
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::string context_;
  at::Tensor input_;
  at::Tensor output_;
};

class GlooCommunicator : public Communicator {
 public:
  GlooCommunicator(c10::intrusive_ptr<c10d::ProcessGroupGloo> pg,
                   std::string group_name, int rank, int size)
      : pg_(std::move(pg)),
        group_name_(std::move(group_name)),
        rank_(rank),
        size_(size),
        send_seq_(size, 0),
        recv_seq_(size, 0),
        send_waiter_([this] { WaitForSends(); }) {}

  ~GlooCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    // Drains the sends still in flight; each wait is bounded by the group
    // timeout, so a vanished peer cannot hang shutdown forever.
    send_waiter_.join();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend_name() const override { return "gloo"; }

  absl::Status Broadcast(at::Tensor& tensor, int root) override {
    RETURN_IF_ERROR(CheckBroadcastArgs(tensor, root, size_));
    absl::Status s = Run("Broadcast", [&] {
      std::vector<at::Tensor> tensors = {WireView(tensor)};
      c10d::BroadcastOptions opts;
      opts.rootRank = root;
      return pg_->broadcast(tensors, opts);
    });
    if (s.ok()) CountBroadcast(stats_, tensor.nbytes(), size_, rank_ == root);
    return s;
  }

  absl::Status AllReduceSum(at::Tensor& tensor) override {
    RETURN_IF_ERROR(CheckTensor(tensor, "AllReduceSum", "tensor"));
    // Gloo cannot add bf16; sum in fp32 (also more accurate) and round once.
    const bool upcast = tensor.scalar_type() == at::kBFloat16;
    at::Tensor work = upcast ? tensor.to(at::kFloat) : tensor;
    absl::Status s = Run("AllReduceSum", [&] {
      std::vector<at::Tensor> tensors = {work};
      return pg_->allreduce(tensors);
    });
    if (!s.ok()) return s;
    if (upcast) tensor.copy_(work);
    CountAllReduce(stats_, tensor.nbytes(), size_);
    return s;
  }

  absl::Status AllGather(const at::Tensor& input, at::Tensor& output) override {
    RETURN_IF_ERROR(CheckAllGatherArgs(input, output, size_));
    // _allgather_base is not implemented for Gloo in LibTorch 1.13; the list
    // form writes each rank's block into a dim-0 slice of `output`, which is
    // contiguous because output is.
    at::Tensor wire_out = WireView(output);
    const int64_t block = input.size(0);
    absl::Status s = Run("AllGather", [&] {
      std::vector<std::vector<at::Tensor>> outputs(1);
      for (int r = 0; r < size_; ++r) {
        outputs[0].push_back(wire_out.narrow(0, r * block, block));
      }
      std::vector<at::Tensor> inputs = {WireView(input)};
      return pg_->allgather(outputs, inputs);
    });
    if (s.ok()) CountAllGather(stats_, input.nbytes(), size_);
    return s;
  }

  absl::Status AllToAll(const at::Tensor& input, at::Tensor& output) override {
    RETURN_IF_ERROR(CheckAllToAllArgs(input, output, size_));
    // Only the flat alltoall_base works with Gloo; empty split lists mean
    // equal chunks along dim 0, which is our contract.
    absl::Status s = Run("AllToAll", [&] {
      at::Tensor in = WireView(input);
      at::Tensor out = WireView(output);
      std::vector<int64_t> out_counts;
      std::vector<int64_t> in_counts;
      return pg_->alltoall_base(out, in, out_counts, in_counts);
    });
    if (s.ok()) CountAllToAll(stats_, input.nbytes(), size_);
    return s;
  }

  absl::StatusOr<std::unique_ptr<PendingOp>> AllToAllAsync(
      const at::Tensor& input, at::Tensor& output) override {
    RETURN_IF_ERROR(CheckAllToAllArgs(input, output, size_));
    RETURN_IF_ERROR(SendError());
    at::Tensor in = WireView(input);
    at::Tensor out = WireView(output);
    c10::intrusive_ptr<c10d::Work> work;
    try {
      std::vector<int64_t> out_counts;
      std::vector<int64_t> in_counts;
      // c10d queues the op for the process group's worker threads and
      // returns at once; the work keeps the tensors alive until done.
      work = pg_->alltoall_base(out, in, out_counts, in_counts);
    } catch (const std::exception& e) {
      return StatusFromException(OpContext("AllToAllAsync"), e);
    }
    CountAllToAll(stats_, input.nbytes(), size_);
    return std::unique_ptr<PendingOp>(std::make_unique<GlooPendingOp>(
        std::move(work), OpContext("AllToAllAsync"), std::move(in),
        std::move(out)));
  }

  absl::Status Send(const at::Tensor& tensor, int peer) override {
    RETURN_IF_ERROR(CheckPeer(tensor, "Send", peer, rank_, size_));
    RETURN_IF_ERROR(SendError());
    // The n-th Send to a peer matches that peer's n-th Recv from us; the
    // sequence number as tag makes a mismatch fail loudly instead of
    // delivering the wrong message.
    const int tag = NextTag(send_seq_[peer]);
    // A Gloo send completes only once the peer has posted its Recv. Sending
    // from a private copy and waiting on another thread makes Send buffered
    // (see communicator.h), so every rank of a ring can Send before it Recvs.
    PendingSend pending;
    pending.buffer = tensor.clone();
    absl::Status s = Run("Send", [&] {
      std::vector<at::Tensor> tensors = {pending.buffer};
      pending.work = pg_->send(tensors, peer, tag);
      return c10::intrusive_ptr<c10d::Work>();
    });
    if (!s.ok()) return s;
    pending.peer = peer;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.push_back(std::move(pending));
    }
    cv_.notify_all();
    CountSend(stats_, tensor.nbytes());
    return s;
  }

  absl::Status Recv(at::Tensor& tensor, int peer) override {
    RETURN_IF_ERROR(CheckPeer(tensor, "Recv", peer, rank_, size_));
    const int tag = NextTag(recv_seq_[peer]);
    absl::Status s = Run("Recv", [&] {
      std::vector<at::Tensor> tensors = {tensor};
      return pg_->recv(tensors, peer, tag);
    });
    if (s.ok()) CountCall(stats_);
    return s;
  }

  absl::Status SendRecv(const at::Tensor& send, int dst, at::Tensor& recv,
                        int src) override {
    RETURN_IF_ERROR(CheckPeer(send, "SendRecv", dst, rank_, size_));
    RETURN_IF_ERROR(CheckPeer(recv, "SendRecv", src, rank_, size_));
    RETURN_IF_ERROR(SendError());
    // Both halves in flight at once, so no copy is needed: `send` is only
    // released after its send has completed.
    const int send_tag = NextTag(send_seq_[dst]);
    const int recv_tag = NextTag(recv_seq_[src]);
    try {
      std::vector<at::Tensor> out = {send};
      std::vector<at::Tensor> in = {recv};
      c10::intrusive_ptr<c10d::Work> sent = pg_->send(out, dst, send_tag);
      c10::intrusive_ptr<c10d::Work> received = pg_->recv(in, src, recv_tag);
      received->wait();
      sent->wait();
    } catch (const std::exception& e) {
      return StatusFromException(
          absl::StrCat("gloo SendRecv (to ", dst, ", from ", src,
                       ") on group \"", group_name_, "\" (rank ", rank_,
                       " of ", size_, ")"),
          e);
    }
    CountSend(stats_, send.nbytes());
    CountCall(stats_);
    return absl::OkStatus();
  }

  absl::Status Barrier() override {
    absl::Status s = Run("Barrier", [&] { return pg_->barrier(); });
    if (s.ok()) CountCall(stats_);
    return s;
  }

 private:
  struct PendingSend {
    at::Tensor buffer;
    c10::intrusive_ptr<c10d::Work> work;
    int peer = -1;
  };

  // The body of send_waiter_: waits for each started send in order and
  // frees its buffer; the first failure is kept and returned by every later
  // call (a failed group is unusable, see communicator.h).
  void WaitForSends() {
    while (true) {
      PendingSend next;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
        if (pending_.empty()) return;
        next = std::move(pending_.front());
        pending_.pop_front();
      }
      try {
        next.work->wait();
      } catch (const std::exception& e) {
        absl::Status failed = StatusFromException(
            absl::StrCat("gloo Send to rank ", next.peer, " on group \"",
                         group_name_, "\" (rank ", rank_, " of ", size_, ")"),
            e);
        std::lock_guard<std::mutex> lock(mu_);
        if (send_error_.ok()) send_error_ = failed;
      }
    }
  }

  absl::Status SendError() {
    std::lock_guard<std::mutex> lock(mu_);
    return send_error_;
  }

  static int NextTag(int64_t& seq) {
    // Tags are ints; wrapping is harmless because messages between one pair
    // are matched in order anyway.
    return static_cast<int>(seq++ % (int64_t{1} << 30));
  }

  std::string OpContext(const char* op) const {
    return absl::StrCat("gloo ", op, " on group \"", group_name_, "\" (rank ",
                        rank_, " of ", size_, ")");
  }

  // Starts the op, waits for it, and converts LibTorch/Gloo exceptions.
  template <typename StartFn>
  absl::Status Run(const char* op, StartFn start) {
    try {
      RETURN_IF_ERROR(SendError());
      c10::intrusive_ptr<c10d::Work> work = start();
      if (work) work->wait();
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return StatusFromException(
          absl::StrCat("gloo ", op, " on group \"", group_name_, "\" (rank ",
                       rank_, " of ", size_, ")"),
          e);
    }
  }

  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg_;
  std::string group_name_;
  int rank_;
  int size_;
  std::vector<int64_t> send_seq_;
  std::vector<int64_t> recv_seq_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<PendingSend> pending_;  // guarded by mu_
  absl::Status send_error_;          // guarded by mu_
  bool stopping_ = false;            // guarded by mu_
  // Declared last: it starts in the constructor and uses the members above.
  std::thread send_waiter_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(
    const c10::intrusive_ptr<c10d::Store>& store, const std::string& group_name,
    int group_rank, int group_size, std::chrono::milliseconds timeout) {
  RETURN_IF_ERROR(CheckGroupArgs("CreateGlooCommunicator", store.defined(),
                                 group_name, group_rank, group_size));
  if (timeout.count() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("CreateGlooCommunicator: timeout ", timeout.count(),
                     " ms is invalid; it must be > 0"));
  }
  try {
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>(group_name, store);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    options->devices.push_back(
        c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    // Ulysses keeps three AllToAllAsync ops (q, k, v) in flight at once;
    // one worker thread each lets them move concurrently instead of queueing
    // behind one another. Blocking calls use one thread at a time.
    options->threads = kGlooThreads;
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(
        prefixed, group_rank, group_size, options);
    return std::unique_ptr<Communicator>(std::make_unique<GlooCommunicator>(
        std::move(pg), group_name, group_rank, group_size));
  } catch (const std::exception& e) {
    return StatusFromException(
        absl::StrCat("gloo rendezvous of group \"", group_name, "\" (rank ",
                     group_rank, " of ", group_size, ")"),
        e);
  }
}

}  // namespace dserve::parallel
