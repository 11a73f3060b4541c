#include "worker/models/parallel_dit.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "parallel/ring_attention.h"
#include "parallel/sequence_shard.h"
#include "parallel/ulysses_comm.h"
#include "worker/models/attention.h"
#include "worker/models/pipeline_parallel.h"
#include "worker/models/sampler.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include <ATen/ATen.h>

namespace dserve::models {
namespace {

using parallel::Communicator;
using parallel::MeshDim;

void ThrowIfError(const absl::Status& s, const char* what) {
  TORCH_CHECK(s.ok(), what, ": ", std::string(s.message()));
}

template <typename T>
T ValueOrThrow(absl::StatusOr<T> v, const char* what) {
  ThrowIfError(v.status(), what);
  return *std::move(v);
}

parallel::PartialAttention BlockAttention(const at::Tensor& q,
                                          const at::Tensor& k,
                                          const at::Tensor& v,
                                          const at::Tensor& mask) {
  AttentionOutput o = AttentionWithLse(q, k, v, mask);
  return {o.out, o.lse};
}

// Self-attention over the SP group. q, k, v: (b, S/sp, H, D), this rank's
// sequence shard. Ulysses turns the shards of the ulysses group into this
// rank's ring block with H/u heads; ring attention covers the blocks of the
// ring group. `ring_block_mask` is undefined (no padding) or bool
// [1, S_padded/ring] for this ring block. `async_ulysses`: the three
// scatters are in flight together (ParallelDiTOptions).
// `sp` (null = exact): the --sp_compression references.
AttentionCore SequenceParallelCore(Communicator& ulysses, Communicator& ring,
                                   at::Tensor ring_block_mask,
                                   bool async_ulysses,
                                   parallel::SpCompressionState* sp) {
  return [&ulysses, &ring, ring_block_mask, async_ulysses, sp](
             const at::Tensor& q_in, const at::Tensor& k_in,
             const at::Tensor& v_in, const at::Tensor&) {
    at::Tensor q = q_in.contiguous(), k = k_in.contiguous(),
               v = v_in.contiguous();
    const bool scatter = ulysses.size() > 1;
    if (scatter && async_ulysses) {
      std::vector<at::Tensor> qkv = ValueOrThrow(
          parallel::UlyssesScatterHeadsAsync(ulysses, {q, k, v}, sp),
          "ulysses q/k/v");
      q = qkv[0];
      k = qkv[1];
      v = qkv[2];
    } else if (scatter) {
      q = ValueOrThrow(parallel::UlyssesScatterHeads(ulysses, q, sp), "ulysses q");
      k = ValueOrThrow(parallel::UlyssesScatterHeads(ulysses, k, sp), "ulysses k");
      v = ValueOrThrow(parallel::UlyssesScatterHeads(ulysses, v, sp), "ulysses v");
    }
    at::Tensor mask;
    if (ring_block_mask.defined()) {
      mask = ring_block_mask.expand({q.size(0), -1}).contiguous();
    }
    at::Tensor out;
    if (ring.size() > 1) {
      out = ValueOrThrow(
                parallel::RingAttention(ring, q, k, v, mask, BlockAttention, sp),
                "ring attention")
                .out;
    } else {
      out = Attention(q, k, v, mask);
    }
    if (scatter) {
      out = ValueOrThrow(parallel::UlyssesGatherHeads(ulysses, out.contiguous(), sp),
                         "ulysses out");
    }
    return out;
  };
}

// Rows [begin, begin + n) of every batched field of `a`.
DiTActivations SliceBatch(const DiTActivations& a, int64_t begin, int64_t n) {
  DiTActivations m = a;
  m.x = a.x.narrow(0, begin, n).contiguous();
  m.e = a.e.narrow(0, begin, n);
  m.e0 = a.e0.narrow(0, begin, n);
  m.context = a.context.narrow(0, begin, n);
  return m;
}

}  // namespace

absl::Status ValidateMeshForModel(const parallel::DeviceMesh& mesh,
                                  const DiTConfig& config) {
  if (absl::Status s = mesh.ValidateForModel(config.num_heads,
                                             config.num_layers);
      !s.ok()) {
    return s;
  }
  const int tp = mesh.degree(MeshDim::kTp);
  if (config.ffn_dim % tp != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mesh tp = ", tp, " does not divide the model's ffn_dim = ",
        config.ffn_dim, "; choose tp among the divisors of ffn_dim"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ParallelDiT>> ParallelDiT::Create(
    const DiT& dit, const WeightMap& weights, bool coordinate_planes,
    ParallelContext context, ParallelDiTOptions options) {
  if (context.comms == nullptr) {
    return absl::InvalidArgumentError(
        "ParallelDiT: ParallelContext.comms is null");
  }
  RETURN_IF_ERROR(ValidateMeshForModel(context.mesh, dit.config()));
  std::unique_ptr<ParallelDiT> p(
      new ParallelDiT(dit, coordinate_planes, std::move(context), options));
  const int tp = p->context_.degree(MeshDim::kTp);
  if (tp > 1) {
    // Only this stage's layers.
    const parallel::Communicator& pp = p->context_.group(MeshDim::kPp);
    const LayerRange layers =
        StageLayers(dit.config().num_layers, pp.rank(), pp.size());
    ASSIGN_OR_RETURN(
        TensorParallelBlocks blocks,
        TensorParallelBlocks::Create(dit.config(), weights,
                                     p->context_.group(MeshDim::kTp).rank(),
                                     tp, layers.first, layers.last));
    p->owned_tp_blocks_ = std::move(blocks);
    p->tp_blocks_ = &*p->owned_tp_blocks_;
  }
  return p;
}

absl::StatusOr<std::unique_ptr<ParallelDiT>> ParallelDiT::Create(
    const Pipeline& model, ParallelContext context,
    ParallelDiTOptions options) {
  if (context.comms == nullptr) {
    return absl::InvalidArgumentError(
        "ParallelDiT: ParallelContext.comms is null");
  }
  const DiTShard& shard = model.dit_shard();
  RETURN_IF_ERROR(ValidateMeshForModel(context.mesh, model.config().dit));
  DiTShare want;
  want.pp_stage = context.group(MeshDim::kPp).rank();
  want.pp_size = context.group(MeshDim::kPp).size();
  want.tp_rank = context.group(MeshDim::kTp).rank();
  want.tp_size = context.group(MeshDim::kTp).size();
  if (shard.share != want) {
    return absl::FailedPreconditionError(absl::StrCat(
        "ParallelDiT: the pipeline holds the DiT share ",
        DiTShareString(shard.share), ", but this rank is ",
        DiTShareString(want),
        "; load it with PipelineOptions::dit_share = DiTShareForRank(mesh, "
        "rank)"));
  }
  std::unique_ptr<ParallelDiT> p(new ParallelDiT(
      shard.dit, model.config().coordinate_planes, std::move(context),
      options));
  if (shard.tp_blocks.has_value()) p->tp_blocks_ = &*shard.tp_blocks;
  return p;
}

at::Tensor ParallelDiT::ForwardOrThrow(const at::Tensor& latents,
                                       const at::Tensor& timesteps,
                                       const at::Tensor& context,
                                       parallel::SpCompressionState* packing,
                                       StepCacheStep* cache,
                                       const std::vector<bool>& counted) const {
  const DiTConfig& c = dit_.config();
  DiTActivations a = dit_.Embed(latents, timesteps, context);
  const TokenGrid grid = a.grid;
  const int64_t length = grid.size();

  // Sequence parallel: this rank's block of the padded token sequence.
  Communicator& sp = context_.group(MeshDim::kSp);
  Communicator& ring = context_.group(MeshDim::kRing);
  Communicator& ulysses = context_.group(MeshDim::kUlysses);
  AttentionCore core;
  if (sp.size() > 1) {
    a.x = ValueOrThrow(parallel::ShardSequence(a.x, 1, sp.rank(), sp.size()),
                       "shard x");
    a.rope.cos = ValueOrThrow(
        parallel::ShardSequence(a.rope.cos, 0, sp.rank(), sp.size()),
        "shard rope");
    a.rope.sin = ValueOrThrow(
        parallel::ShardSequence(a.rope.sin, 0, sp.rank(), sp.size()),
        "shard rope");
    at::Tensor ring_block_mask;
    if (length % sp.size() != 0) {
      ring_block_mask = ValueOrThrow(
          parallel::ShardSequence(
              parallel::SequencePaddingMask(1, length, sp.size()), 1,
              ring.rank(), ring.size()),
          "shard mask");
    }
    core = SequenceParallelCore(ulysses, ring, ring_block_mask,
                                options_.async_ulysses, packing);
  }

  // Pipeline parallel: this stage's layers over the micro-batches.
  Communicator& pp = context_.group(MeshDim::kPp);
  const LayerRange layers = StageLayers(c.num_layers, pp.rank(), pp.size());
  const int64_t rows = a.x.size(0);
  const int64_t num_micro = std::min<int64_t>(rows, pp.size());
  std::vector<DiTActivations> micro;
  std::vector<int64_t> micro_begin;
  for (int64_t m = 0, begin = 0; m < num_micro; ++m) {
    const int64_t n = rows / num_micro + (m < rows % num_micro ? 1 : 0);
    micro.push_back(num_micro == 1 ? a : SliceBatch(a, begin, n));
    micro_begin.push_back(begin);
    begin += n;
  }
  auto run_blocks = [&](DiTActivations& mb, int first, int last) {
    if (tp_blocks_ != nullptr) {
      tp_blocks_->RunBlocks(mb, first, last, context_.group(MeshDim::kTp));
    } else {
      dit_.RunBlocks(mb, first, last, core);
    }
  };
  if (cache == nullptr) {
    RunPipelineStages(micro, pp, [&](DiTActivations& mb) {
      run_blocks(mb, layers.first, layers.last);
    });
  } else {
    // Step cache: block 0 and the decision first (stage 0 has run block 0
    // on every micro-batch when this returns), then this stage's remaining
    // blocks, or its cached residual of them.
    const int64_t shard_len = a.x.size(1);
    const int64_t valid_tokens = std::clamp<int64_t>(
        length - int64_t{sp.rank()} * shard_len, 0, shard_len);
    const bool reuse = DecideStepCache(
        micro, [&](DiTActivations& mb) { run_blocks(mb, 0, 1); },
        valid_tokens, counted, *cache);
    StepCacheState& state = *cache->state;
    const int first = pp.rank() == 0 ? 1 : layers.first;
    std::vector<at::Tensor> residuals(micro.size());
    // This rank's cached residual (or its extrapolation: elementwise, so
    // per shard and per stage it sums to the 1-process one).
    const at::Tensor reused =
        reuse ? ReusedResidual(*cache->config, cache->step, state)
              : at::Tensor();
    RunPipelineStages(micro, pp, [&](DiTActivations& mb) {
      const size_t m = static_cast<size_t>(&mb - micro.data());
      if (reuse) {
        mb.x = mb.x + reused.narrow(0, micro_begin[m], mb.x.size(0));
        return;
      }
      const at::Tensor x_in = mb.x;
      run_blocks(mb, first, layers.last);
      residuals[m] = mb.x - x_in;
    });
    if (!reuse) {
      CacheRemainingResidual(
          *cache->config,
          residuals.size() == 1 ? residuals[0] : at::cat(residuals, 0),
          cache->step, state);
    }
    RecordStep(reuse, state);
  }

  // Head on the last stage, then to every stage and every sequence shard.
  const int64_t per_token = int64_t{c.out_channels} * c.patch_volume();
  at::Tensor tokens;
  if (pp.rank() == pp.size() - 1) {
    std::vector<at::Tensor> parts;
    for (const DiTActivations& mb : micro) parts.push_back(dit_.HeadTokens(mb));
    tokens = at::cat(parts, 0).contiguous();
  } else {
    tokens = at::empty({rows, a.x.size(1), per_token}, a.x.options());
  }
  if (pp.size() > 1) {
    ThrowIfError(pp.Broadcast(tokens, pp.size() - 1), "pp broadcast");
  }
  if (sp.size() > 1) {
    tokens = ValueOrThrow(parallel::GatherSequence(sp, tokens, 1, length),
                          "sp gather");
  }
  return Unpatchify(tokens, grid, c.patch, c.out_channels);
}

bool ParallelDiT::DecideStepCache(
    std::vector<DiTActivations>& micro,
    const std::function<void(DiTActivations&)>& run_block0,
    int64_t valid_tokens, const std::vector<bool>& counted,
    StepCacheStep& cache) const {
  TORCH_CHECK(cache.config != nullptr && cache.state != nullptr,
              "ParallelDiT: StepCacheStep without config or state");
  StepCacheState& state = *cache.state;
  Communicator& world = context_.comms->world();
  const at::TensorOptions f64 =
      micro.front().x.options().dtype(at::kDouble);
  bool comparable = false;
  at::Tensor parts;  // [2] float64: Σ|r − r_prev|, Σ|r_prev|
  if (context_.group(MeshDim::kPp).rank() == 0) {
    std::vector<at::Tensor> residuals;
    for (DiTActivations& mb : micro) {
      const at::Tensor x_in = mb.x;
      run_block0(mb);
      residuals.push_back(mb.x - x_in);
    }
    at::Tensor first =
        residuals.size() == 1 ? residuals[0] : at::cat(residuals, 0);
    comparable = state.prev_first_residual.defined() &&
                 state.prev_first_residual.sizes() == first.sizes();
    // TP ranks hold the same activations: tp rank 0's parts stand for its
    // group, and only groups with tp rank 0 reduce (world rank 0 is in
    // them). Every member of a cfg/sp group agrees on that and on
    // `comparable` (same shapes), so all call the same collectives.
    if (context_.group(MeshDim::kTp).rank() == 0) {
      parts = at::zeros({2}, f64);
      if (comparable) {
        at::Tensor cur = first.narrow(1, 0, valid_tokens);
        at::Tensor prev = state.prev_first_residual.narrow(1, 0, valid_tokens);
        std::vector<int64_t> rows;
        for (size_t i = 0; i < counted.size(); ++i) {
          if (counted[i]) rows.push_back(static_cast<int64_t>(i));
        }
        if (!counted.empty() &&
            rows.size() != static_cast<size_t>(first.size(0))) {
          at::Tensor idx = at::tensor(rows, at::kLong).to(first.device());
          cur = cur.index_select(0, idx);
          prev = prev.index_select(0, idx);
        }
        parts = RelativeL1PartsTensor(cur, prev).contiguous();
      }
      for (MeshDim dim : {MeshDim::kCfg, MeshDim::kSp}) {
        Communicator& group = context_.group(dim);
        if (group.size() > 1) {
          ThrowIfError(group.AllReduceSum(parts), "step cache all-reduce");
        }
      }
    }
    state.prev_first_residual = first;
  }
  // [reuse, accumulated] from world rank 0 (cfg, sp, pp, tp coordinates 0).
  at::Tensor word = at::zeros({2}, f64);
  if (world.rank() == 0) {
    at::Tensor host = parts.cpu();
    const L1Parts sums{host.data_ptr<double>()[0], host.data_ptr<double>()[1]};
    const bool reuse =
        DecideStep(*cache.config, cache.step, cache.num_steps, comparable,
                   state.remaining_residual.defined(), sums, state);
    word = at::tensor({reuse ? 1.0 : 0.0, state.accumulated}, f64);
  }
  if (world.size() > 1) {
    ThrowIfError(world.Broadcast(word, 0), "step cache broadcast");
  }
  at::Tensor host = word.cpu();
  const bool reuse = host.data_ptr<double>()[0] != 0;
  state.accumulated = host.data_ptr<double>()[1];
  if (reuse) {
    int64_t rows = 0;
    for (const DiTActivations& mb : micro) rows += mb.x.size(0);
    TORCH_CHECK(state.remaining_residual.defined() &&
                    state.remaining_residual.size(0) == rows,
                "ParallelDiT: step ", cache.step,
                " reuses the cached residual, but this rank has none for ",
                rows, " rows");
  }
  return reuse;
}

absl::StatusOr<at::Tensor> ParallelDiT::Forward(
    const at::Tensor& latents, const at::Tensor& timesteps,
    const at::Tensor& context) const {
  at::Tensor out;
  RETURN_IF_ERROR(CatchTorch("ParallelDiT::Forward", [&] {
    out = ForwardOrThrow(latents, timesteps, context, nullptr);
  }));
  return out;
}

void ParallelDiT::ResetSpCompression() const {
  if (sp_state_ != nullptr) sp_state_->Reset();
}

void ParallelDiT::BeginSpStep(const at::Tensor& timesteps) const {
  if (sp_state_ == nullptr) return;
  // Every rank sees the same timesteps, so every rank starts a plan alike.
  const double t = timesteps.max().item<double>();
  if (sp_state_->step() < 0 || t >= sp_last_timestep_) sp_state_->Reset();
  sp_last_timestep_ = t;
  sp_state_->BeginStep();
}

absl::StatusOr<at::Tensor> ParallelDiT::GuidedPrediction(
    const at::Tensor& x, const at::Tensor& timesteps,
    const at::Tensor& cond_context, const at::Tensor& uncond_context,
    const std::vector<float>& guidance, StepCacheStep* step_cache) const {
  at::Tensor out;
  RETURN_IF_ERROR(CatchTorch("ParallelDiT::GuidedPrediction", [&] {
    BeginSpStep(timesteps);
    Communicator& cfg = context_.group(MeshDim::kCfg);
    if (cfg.size() == 1) {
      // models::GuidedPrediction calls the model once, on the 1-process
      // batch (both branches where guided): every row counts.
      DenoiseFn model = [&](const at::Tensor& xin, const at::Tensor& t,
                            const at::Tensor& ctx) {
        return ForwardOrThrow(coordinate_planes_ ? AppendCoordinatePlanes(xin)
                                                 : xin,
                              t, ctx, sp_state_.get(), step_cache);
      };
      out = models::GuidedPrediction(model, x, timesteps, cond_context,
                                     uncond_context, guidance);
      return;
    }
    // CFG parallel: one branch per cfg rank, for every item (an item with
    // guidance 1 takes the conditional branch below, as the 1-process path).
    const at::Tensor& branch = cfg.rank() == 0 ? cond_context : uncond_context;
    const at::Tensor input = coordinate_planes_ ? AppendCoordinatePlanes(x) : x;
    // The 1-process batch has no unconditional row for an item with
    // guidance 1, so its row here does not count towards the cache decision.
    std::vector<bool> counted(guidance.size(), true);
    if (cfg.rank() == 1) {
      for (size_t i = 0; i < guidance.size(); ++i) {
        counted[i] = guidance[i] != 1.0f;
      }
    }
    at::Tensor pred = ForwardOrThrow(input, timesteps, branch, sp_state_.get(),
                                     step_cache, counted)
                          .contiguous();
    const int64_t b = pred.size(0);
    std::vector<int64_t> shape = pred.sizes().vec();
    shape[0] *= cfg.size();
    at::Tensor both = at::empty(shape, pred.options());
    ThrowIfError(cfg.AllGather(pred, both), "cfg all-gather");
    at::Tensor cond = both.narrow(0, 0, b);
    at::Tensor uncond = both.narrow(0, b, b);
    std::vector<int64_t> bshape(pred.dim(), 1);
    bshape[0] = b;
    at::Tensor g = at::tensor(guidance, pred.options()).view(bshape);
    out = at::where(g == 1.0f, cond, uncond + g * (cond - uncond));
  }));
  return out;
}

}  // namespace dserve::models
