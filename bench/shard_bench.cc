// Scaling estimate on ONE device: times each rank's compute at its shard
// shape and adds communication time from the bytes each mode moves and an
// assumed link bandwidth, giving predicted speedups of one CFG denoising
// step for Ulysses, Ring, USP, CFG and PP at 2, 4 and 8 GPUs.
//
//   shard_bench --model=wan1.3b --device=cuda --dtype=bf16 --link_gbps=350
//   shard_bench --model=wan1.3b --layers=1 --frames=9 --height=32 --width=32
//
// Per rank of degree N (S tokens, H heads, L layers, batch 2 = cond+uncond):
//   token-local work  everything but the self-attention core, at S/N tokens
//                     (the DiT run with a pass-through attention core)
//   Ulysses-N         local(S/N) + L·attn(S×S, H/N heads); 4 all-to-alls of
//                     the (B,S,D) activations per layer, (N−1)/N of each leaves
//   Ring-N            local(S/N) + L·N·attn_lse(S/N×S/N, H); K and V blocks
//                     (2·B·S/N·D each) travel N−1 hops per layer
//   USP u×r           local(S/ur) + L·r·attn_lse(S/r×S/r, H/u); both traffics
//   CFG-2             one branch per rank (batch 1); an all-gather of the
//                     prediction
//   PP-N              the two CFG halves as micro-batches: (N+1) stage times
//                     of L/N layers at batch 1; P2P of the fp32 residual
// Communication is added, not overlapped (an upper bound on the time), at
// --link_gbps per GPU per direction. NVLink 4 (H100/H200 SXM) is 450 GB/s
// per direction; NCCL all-to-all reaches ~350 GB/s bus bandwidth on 8 GPUs,
// hence the default. Speedup = 1-GPU step time / predicted per-rank time.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "bench/bench_model.h"
#include "common/blas_kernels.h"
#include "worker/models/attention.h"
#include "worker/models/dit.h"
#include "worker/models/model_config.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

ABSL_FLAG(std::string, model, "wan1.3b", "wan1.3b or default.");
ABSL_FLAG(int, frames, 81, "Video frames (Wan: 4n+1).");
ABSL_FLAG(int, height, 480, "Height in pixels.");
ABSL_FLAG(int, width, 832, "Width in pixels.");
ABSL_FLAG(int, layers, 0, "DiT layers (0 = the model's).");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda.");
ABSL_FLAG(std::string, dtype, "fp32", "fp32 or bf16.");
ABSL_FLAG(int, repeats, 3, "Timed repetitions of each piece (median).");
ABSL_FLAG(int, threads, 2, "LibTorch intra-op threads (CPU).");
ABSL_FLAG(double, link_gbps, 350.0,
          "Assumed per-GPU, per-direction bandwidth of the collectives, GB/s.");

namespace dserve::bench {
namespace {

struct Timer {
  int repeats;
  // Median seconds of fn() (after one warm-up), synchronising on its result.
  double operator()(const std::function<at::Tensor()>& fn) const {
    Sync(fn());
    std::vector<double> s;
    for (int i = 0; i < std::max(1, repeats); ++i) {
      auto start = std::chrono::steady_clock::now();
      Sync(fn());
      s.push_back(std::chrono::duration<double>(
                      std::chrono::steady_clock::now() - start)
                      .count());
    }
    std::sort(s.begin(), s.end());
    return s[s.size() / 2];
  }
};

int Run() {
  absl::StatusOr<BenchShape> shape = MakeBenchShape(
      absl::GetFlag(FLAGS_model), absl::GetFlag(FLAGS_frames),
      absl::GetFlag(FLAGS_height), absl::GetFlag(FLAGS_width),
      absl::GetFlag(FLAGS_layers), 0);
  if (!shape.ok()) {
    std::fprintf(stderr, "shard_bench: %s\n", shape.status().ToString().c_str());
    return 2;
  }
  const std::string device_flag = absl::GetFlag(FLAGS_device);
  const std::string dtype_flag = absl::GetFlag(FLAGS_dtype);
  if ((device_flag != "cpu" && device_flag != "cuda") ||
      (dtype_flag != "fp32" && dtype_flag != "bf16")) {
    std::fprintf(stderr,
                 "shard_bench: --device = %s, --dtype = %s; allowed: cpu|cuda, "
                 "fp32|bf16\n",
                 device_flag.c_str(), dtype_flag.c_str());
    return 2;
  }
  const at::Device device(device_flag == "cuda" ? at::kCUDA : at::kCPU);
  const at::ScalarType dtype =
      dtype_flag == "bf16" ? at::kBFloat16 : at::kFloat;
  const at::TensorOptions fp32 =
      at::TensorOptions().device(device).dtype(at::kFloat);
  const at::TensorOptions compute = fp32.dtype(dtype);
  const double elem = dtype == at::kBFloat16 ? 2.0 : 4.0;
  const double bw = absl::GetFlag(FLAGS_link_gbps) * 1e9;
  at::manual_seed(0);

  const models::DiTConfig& c = shape->dit;
  absl::StatusOr<models::DiT> dit = models::DiT::Create(
      c, RandomDiTWeights(c, fp32), models::DiTNumerics{device, dtype});
  if (!dit.ok()) {
    std::fprintf(stderr, "shard_bench: %s\n", dit.status().ToString().c_str());
    return 1;
  }
  const Timer time{absl::GetFlag(FLAGS_repeats)};
  const int64_t S = shape->tokens();
  const int64_t H = c.num_heads, D = c.dim, hd = c.head_dim();
  const int L = c.num_layers;
  const int in_ch = c.in_channels;
  const int64_t lf = shape->latent_frames, lh = shape->latent_height,
                lw = shape->latent_width;

  // Token-local work of the whole DiT over `tokens` tokens (a shard of the
  // frame axis is the same work as any S/N tokens), batch b, layers
  // [0, layers): the self-attention core passes v through.
  auto local = [&](int64_t frames, int b, int layers) {
    at::Tensor x = at::randn({b, in_ch, frames, lh, lw}, fp32);
    at::Tensor t = at::full({b}, 900.0, fp32);
    at::Tensor ctx = at::randn({b, c.text_len, c.text_dim}, compute);
    models::AttentionCore pass = [](const at::Tensor&, const at::Tensor&,
                                    const at::Tensor& v, const at::Tensor&) {
      return v;
    };
    return time([&] {
      models::DiTActivations a = dit->Embed(x, t, ctx);
      dit->RunBlocks(a, 0, layers, pass);
      return dit->HeadTokens(a);
    });
  };
  auto full_forward = [&](int b, int layers) {
    at::Tensor x = at::randn({b, in_ch, lf, lh, lw}, fp32);
    at::Tensor t = at::full({b}, 900.0, fp32);
    at::Tensor ctx = at::randn({b, c.text_len, c.text_dim}, compute);
    return time([&] {
      models::DiTActivations a = dit->Embed(x, t, ctx);
      dit->RunBlocks(a, 0, layers);
      return dit->HeadTokens(a);
    });
  };
  // One self-attention core call, batch 2.
  auto attn = [&](int64_t sq, int64_t sk, int64_t heads, bool lse) {
    at::Tensor q = at::randn({2, sq, heads, hd}, compute);
    at::Tensor k = at::randn({2, sk, heads, hd}, compute);
    at::Tensor v = at::randn({2, sk, heads, hd}, compute);
    return time([&] {
      return lse ? models::AttentionWithLse(q, k, v).out
                 : models::Attention(q, k, v);
    });
  };

  const double t1 = full_forward(2, L);  // the 1-GPU CFG step's DiT work
  const double t1_b1 = full_forward(1, L);
  std::printf(
      "model=%s device=%s dtype=%s tokens=%lld heads=%lld layers=%d "
      "link=%.0f GB/s\n1 GPU: CFG forward (batch 2) %.4f s; batch 1 %.4f s\n",
      absl::GetFlag(FLAGS_model).c_str(), device_flag.c_str(),
      dtype_flag.c_str(), static_cast<long long>(S),
      static_cast<long long>(H), L, bw / 1e9, t1, t1_b1);
  std::printf("%-12s %10s %10s %10s %8s\n", "mode", "compute_s", "comm_s",
              "total_s", "speedup");
  auto row = [&](const std::string& mode, double compute_s, double comm_s) {
    std::printf("%-12s %10.4f %10.4f %10.4f %7.2fx\n", mode.c_str(), compute_s,
                comm_s, compute_s + comm_s, t1 / (compute_s + comm_s));
  };
  const double act_bytes = 2.0 * S * D * elem;  // (B=2, S, D) activations
  for (int n : {2, 4, 8}) {
    // Token shards: the latent frames split n ways (rounded up: padding).
    const int64_t shard_frames = (lf + n - 1) / n;
    const double loc = local(shard_frames, 2, L);
    const int64_t s_shard = shard_frames * (S / lf);
    // Ulysses-n: heads must divide.
    if (H % n == 0) {
      const double a = L * attn(S, S, H / n, false);
      const double comm = L * 4 * act_bytes * (n - 1) / n / n / bw;
      row("ulysses" + std::to_string(n), loc + a, comm);
    } else {
      std::printf("%-12s n/a: %lld heads not divisible by %d\n",
                  ("ulysses" + std::to_string(n)).c_str(),
                  static_cast<long long>(H), n);
    }
    // Ring-n.
    {
      const double a = L * n * attn(s_shard, s_shard, H, true);
      const double comm =
          L * (n - 1) * 2.0 * (2.0 * s_shard * D * elem) / bw;
      row("ring" + std::to_string(n), loc + a, comm);
    }
    // USP u x r with the largest u that divides the heads.
    int u = n;
    while (u > 1 && (H % u != 0 || n % u != 0)) --u;
    const int r = n / u;
    if (u > 1 && r > 1) {
      const int64_t s_r = (S + r - 1) / r;
      const double a = L * r * attn(s_r, s_r, H / u, true);
      const double comm = L * (4 * act_bytes * (u - 1) / u / n +
                               (r - 1) * 2.0 * (2.0 * s_r * (D / u) * elem)) /
                          bw;
      row("usp" + std::to_string(u) + "x" + std::to_string(r), loc + a, comm);
    }
    // PP-n: 2 micro-batches (the CFG halves) through n stages.
    {
      const int stage_layers = (L + n - 1) / n;
      const double stage = full_forward(1, stage_layers);
      const double comm = (n - 1) * 2 * (S * D * 4.0) / bw;  // fp32 residual
      row("pp" + std::to_string(n), (n + 1) * stage, comm);
    }
  }
  // CFG-2: one branch per rank, all-gather of the fp32 prediction.
  row("cfg2", t1_b1,
      (S * static_cast<double>(c.out_channels) * c.patch_volume() * 4.0) / bw);
  return 0;
}

}  // namespace
}  // namespace dserve::bench

int main(int argc, char** argv) {
  dserve::common::ReexecWithOpenBlasCoreType(argv);
  absl::SetProgramUsageMessage(
      "Predicts multi-GPU speedups from per-shard timings on one device.");
  absl::ParseCommandLine(argc, argv);
  at::set_num_threads(std::max(1, absl::GetFlag(FLAGS_threads)));
  return dserve::bench::Run();
}
