#ifndef DSERVE_WORKER_TESTING_BROADCAST_PIPE_H_
#define DSERVE_WORKER_TESTING_BROADCAST_PIPE_H_

// Both ends of a two-rank world in one thread, for testing the leader ↔
// follower protocol without processes: what rank 0 broadcasts is queued and
// handed, in order, to rank 1's matching broadcast. Shapes and dtypes must
// match as on a real group; a receive with nothing queued fails with
// UNAVAILABLE, which is what a follower sees when its leader is gone.
// Other collectives are not part of the protocol and return UNIMPLEMENTED.
//
// Owns the queued tensors; not thread-safe; nothing blocks.

#include <deque>
#include <string>

#include "absl/status/status.h"
#include "parallel/communicator.h"
#include <ATen/ATen.h>

namespace dserve::worker::testing {

class BroadcastPipe {
 public:
  class End final : public parallel::Communicator {
   public:
    End(BroadcastPipe* pipe, int rank) : pipe_(pipe), rank_(rank) {}
    int rank() const override { return rank_; }
    int size() const override { return 2; }
    std::string backend_name() const override { return "pipe"; }

    absl::Status Broadcast(at::Tensor& tensor, int root) override {
      if (root != 0) return absl::InvalidArgumentError("root must be 0");
      if (rank_ == 0) {
        pipe_->queue_.push_back(tensor.clone());
        return absl::OkStatus();
      }
      if (pipe_->queue_.empty()) {
        return absl::UnavailableError("the leader broadcast nothing more");
      }
      at::Tensor sent = pipe_->queue_.front();
      pipe_->queue_.pop_front();
      if (!sent.sizes().equals(tensor.sizes()) ||
          sent.scalar_type() != tensor.scalar_type()) {
        return absl::InvalidArgumentError("broadcast shape or dtype mismatch");
      }
      tensor.copy_(sent);
      return absl::OkStatus();
    }
    absl::Status AllReduceSum(at::Tensor&) override { return Unused(); }
    absl::Status AllGather(const at::Tensor&, at::Tensor&) override {
      return Unused();
    }
    absl::Status AllToAll(const at::Tensor&, at::Tensor&) override {
      return Unused();
    }
    absl::Status Send(const at::Tensor&, int) override { return Unused(); }
    absl::Status Recv(at::Tensor&, int) override { return Unused(); }
    absl::Status Barrier() override { return Unused(); }

   private:
    static absl::Status Unused() {
      return absl::UnimplementedError("not part of the leader protocol");
    }
    BroadcastPipe* pipe_;
    int rank_;
  };

  End leader{this, 0};
  End follower{this, 1};
  // Broadcasts sent and not yet received.
  size_t pending() const { return queue_.size(); }

 private:
  std::deque<at::Tensor> queue_;
};

}  // namespace dserve::worker::testing

#endif  // DSERVE_WORKER_TESTING_BROADCAST_PIPE_H_
