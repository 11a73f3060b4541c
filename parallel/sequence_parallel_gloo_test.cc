// Ulysses, Ring and USP (Ulysses inside Ring) attention in real processes
// over Gloo, built from MeshCommunicators, against unsharded attention.

#include <chrono>
#include <cmath>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "parallel/communicator.h"
#include "parallel/device_mesh.h"
#include "parallel/mesh_communicators.h"
#include "parallel/ring_attention.h"
#include "parallel/sequence_shard.h"
#include "parallel/testing/multiprocess.h"
#include "parallel/ulysses_comm.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace dserve::parallel {
namespace {

PartialAttention Reference(const at::Tensor& q, const at::Tensor& k,
                           const at::Tensor& v, const at::Tensor& mask) {
  at::Tensor scores = at::einsum("bqhd,bkhd->bhqk", {q, k}) /
                      std::sqrt(static_cast<double>(q.size(3)));
  if (mask.defined()) {
    scores = scores.masked_fill(mask.view({mask.size(0), 1, 1, mask.size(1)}),
                                -std::numeric_limits<double>::infinity());
  }
  at::Tensor lse = at::logsumexp(scores, -1);
  at::Tensor p = at::exp(scores - lse.unsqueeze(-1));
  p = at::where(at::isnan(p), at::zeros_like(p), p);
  return {at::einsum("bhqk,bkhd->bqhd", {p, v}), lse};
}

// The SP attention of one rank: Ulysses scatters heads within the ulysses
// group (turning the sp shard into this ring block), the ring group runs
// ring attention, Ulysses gathers the heads back.
void CheckSequenceParallelAttention(const std::string& spec, int rank,
                                    const c10::intrusive_ptr<c10d::Store>& store) {
  at::set_num_threads(1);
  auto degrees = ParseMeshSpec(spec);
  ASSERT_TRUE(degrees.ok());
  auto mesh = DeviceMesh::OverRanks(*degrees);
  ASSERT_TRUE(mesh.ok()) << mesh.status();
  auto comms = MeshCommunicators::Create(
      *mesh, rank, store, GlooCommunicatorFactory(std::chrono::seconds(20)));
  ASSERT_TRUE(comms.ok()) << comms.status();

  // Same inputs on every rank (fixed seed); 4 heads, 10 tokens.
  at::manual_seed(7);
  const int64_t length = 10;
  at::Tensor q = at::randn({1, length, 4, 8});
  at::Tensor k = at::randn({1, length, 4, 8});
  at::Tensor v = at::randn({1, length, 4, 8});
  const at::Tensor want = Reference(q, k, v, at::Tensor()).out;

  Communicator& sp = comms->group(MeshDim::kSp);
  Communicator& ulysses = comms->group(MeshDim::kUlysses);
  Communicator& ring = comms->group(MeshDim::kRing);
  const int parts = sp.size();
  const int index = sp.rank();
  auto q_s = ShardSequence(q, 1, index, parts);
  auto k_s = ShardSequence(k, 1, index, parts);
  auto v_s = ShardSequence(v, 1, index, parts);
  // After the head scatter a rank holds the keys of the ulysses shards of
  // its ring block, so its mask is the block's mask, gathered the same way.
  at::Tensor mask = SequencePaddingMask(1, length, parts);
  auto mask_block = ShardSequence(mask, 1, ring.rank(), ring.size());
  ASSERT_TRUE(q_s.ok() && k_s.ok() && v_s.ok() && mask_block.ok());

  auto q_h = UlyssesScatterHeads(ulysses, *q_s);
  auto k_h = UlyssesScatterHeads(ulysses, *k_s);
  auto v_h = UlyssesScatterHeads(ulysses, *v_s);
  ASSERT_TRUE(q_h.ok() && k_h.ok() && v_h.ok());
  auto attended = RingAttention(ring, *q_h, *k_h, *v_h, *mask_block, Reference);
  ASSERT_TRUE(attended.ok()) << attended.status();
  auto out_shard = UlyssesGatherHeads(ulysses, attended->out);
  ASSERT_TRUE(out_shard.ok()) << out_shard.status();
  auto out = GatherSequence(sp, *out_shard, 1, length);
  ASSERT_TRUE(out.ok()) << out.status();
  const double err = (*out - want).abs().max().item<double>() /
                     want.abs().max().item<double>();
  EXPECT_LT(err, 1e-5) << spec << " rank " << rank;
}

TEST(SequenceParallelGlooTest, Ulysses2) {
  absl::Status run = testing::RunRanks(2, [](int rank, int, auto store) {
    CheckSequenceParallelAttention("ulysses=2", rank, store);
  });
  EXPECT_TRUE(run.ok()) << run;
}

TEST(SequenceParallelGlooTest, Ring2) {
  absl::Status run = testing::RunRanks(2, [](int rank, int, auto store) {
    CheckSequenceParallelAttention("ring=2", rank, store);
  });
  EXPECT_TRUE(run.ok()) << run;
}

TEST(SequenceParallelGlooTest, UspRing2Ulysses2) {
  absl::Status run = testing::RunRanks(4, [](int rank, int, auto store) {
    CheckSequenceParallelAttention("ring=2,ulysses=2", rank, store);
  });
  EXPECT_TRUE(run.ok()) << run;
}

}  // namespace
}  // namespace dserve::parallel
