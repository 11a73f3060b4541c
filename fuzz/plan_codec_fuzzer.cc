// Fuzzes the follower side of the leader→rank command protocol
// (worker/plan_codec.cc): ReceiveCommand reads a header broadcast and, for
// kPlan, a payload broadcast of the length the header claims, then parses it
// as an ExecutionPlan. Here the "broadcasts" come from the input:
//   [int64 command][int64 payload_bytes][payload...]
// as a rank would receive them from a confused or hostile rank 0.
//
// Invariants: a received plan re-encodes (EncodePlan) and decodes to the
// same bytes; SendCommand of it followed by ReceiveCommand on the far side
// gives it back; SpecFromPlan keeps every item.

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "fuzz/fuzz_check.h"
#include "parallel/communicator.h"
#include "worker/plan_codec.h"
#include <ATen/ATen.h>

namespace {

// Rank 1 of 2 whose broadcasts read successive chunks of a byte string, or
// rank 0 whose broadcasts append to one. Other collectives are not used by
// the codec and fail.
class ByteStreamCommunicator final : public dserve::parallel::Communicator {
 public:
  ByteStreamCommunicator(int rank, std::string* bytes)
      : rank_(rank), bytes_(bytes) {}
  int rank() const override { return rank_; }
  int size() const override { return 2; }
  std::string backend_name() const override { return "fuzz"; }

  absl::Status Broadcast(at::Tensor& tensor, int root) override {
    FUZZ_CHECK(root == 0, "broadcast from root %d", root);
    FUZZ_CHECK(tensor.is_contiguous(), "non-contiguous broadcast");
    const size_t n = tensor.numel() * tensor.element_size();
    auto* p = static_cast<char*>(tensor.data_ptr());
    if (rank_ == 0) {
      bytes_->append(p, n);
      return absl::OkStatus();
    }
    // A broadcast the input cannot fill fails, as it does when the peer
    // goes away mid-collective.
    if (n > bytes_->size() - offset_) {
      return absl::UnavailableError("peer closed mid-broadcast");
    }
    if (n > 0) std::memcpy(p, bytes_->data() + offset_, n);
    offset_ += n;
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
    return absl::UnimplementedError("not used by the plan codec");
  }
  const int rank_;
  std::string* const bytes_;
  size_t offset_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  ByteStreamCommunicator follower(1, &input);
  absl::StatusOr<dserve::worker::ReceivedCommand> received =
      dserve::worker::ReceiveCommand(follower);
  if (!received.ok()) return 0;
  if (received->command != dserve::worker::Command::kPlan) return 0;
  const auto& plan = received->plan;

  const dserve::models::GenerationSpec spec =
      dserve::worker::SpecFromPlan(plan);
  FUZZ_CHECK(static_cast<int>(spec.items.size()) == plan.items_size(),
             "%zu spec items for %d plan items", spec.items.size(),
             plan.items_size());
  FUZZ_CHECK(!dserve::worker::PlanJobIds(plan).empty(), "empty job ids");

  absl::StatusOr<at::Tensor> encoded = dserve::worker::EncodePlan(plan);
  FUZZ_CHECK(encoded.ok(), "received plan does not encode: %s",
             encoded.status().ToString().c_str());
  absl::StatusOr<dserve::internal::v1::ExecutionPlan> decoded =
      dserve::worker::DecodePlan(*encoded);
  FUZZ_CHECK(decoded.ok(), "encoded plan does not decode: %s",
             decoded.status().ToString().c_str());
  FUZZ_CHECK(decoded->SerializeAsString() == plan.SerializeAsString(),
             "plan changed in an encode/decode round trip");

  std::string wire;
  ByteStreamCommunicator leader(0, &wire);
  FUZZ_CHECK(dserve::worker::SendCommand(leader,
                                         dserve::worker::Command::kPlan, plan)
                 .ok(),
             "SendCommand failed");
  ByteStreamCommunicator peer(1, &wire);
  absl::StatusOr<dserve::worker::ReceivedCommand> echoed =
      dserve::worker::ReceiveCommand(peer);
  FUZZ_CHECK(echoed.ok() && echoed->command == dserve::worker::Command::kPlan &&
                 echoed->plan.SerializeAsString() == plan.SerializeAsString(),
             "SendCommand/ReceiveCommand round trip lost the plan");
  return 0;
}
