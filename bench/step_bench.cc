// Times one denoising step (classifier-free guidance on: cond + uncond in one
// batch of 2, then the CFG combine and the Euler update) of the DiT with
// random weights, and reports achieved TFLOP/s and MFU against a matmul peak
// measured in the same process on the same device.
//
//   step_bench --model=wan1.3b --device=cuda --dtype=bf16      # 480x832x81
//   step_bench --model=wan1.3b --layers=1 --frames=9 --height=16 --width=16
//   step_bench --model=default --device=cpu --dtype=fp32
//
// FLOPs are counted analytically (2 per multiply-add) for the linear layers
// and the attention core, as /work/shared/reference/wan21.md "Cost" does:
// per layer and item, self-attention q/k/v/o 8·S·D², cross-attention q/o
// 4·S·D² and k/v 4·L·D², FFN 4·S·D·F, attention core 4·S²·D + 4·S·L·D; plus
// the patch, text, time embeddings and the head. Norms, RoPE and
// element-wise work are not counted (they are <1% at video shapes).
//
// Sizes are in pixels: the latent grid is frames (4n+1) → (frames−1)/4+1,
// height/8, width/8 for Wan (its VAE compresses 4×8×8); the default model
// is pixel-space (no compression, two coordinate planes appended).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "bench/bench_model.h"
#include "common/blas_kernels.h"
#include "worker/models/dit.h"
#include "worker/models/model_config.h"
#include "worker/models/sampler.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

ABSL_FLAG(std::string, model, "wan1.3b",
          "wan1.3b (Wan2.1-T2V-1.3B shapes) or default (the built-in model).");
ABSL_FLAG(int, frames, 81, "Video frames (Wan: 4n+1).");
ABSL_FLAG(int, height, 480, "Height in pixels.");
ABSL_FLAG(int, width, 832, "Width in pixels.");
ABSL_FLAG(int, layers, 0, "DiT layers (0 = the model's).");
ABSL_FLAG(int, text_len, 0, "Text tokens (0 = the model's).");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda.");
ABSL_FLAG(std::string, dtype, "fp32",
          "Compute dtype of matmuls and attention: fp32 or bf16.");
ABSL_FLAG(int, warmup, 1, "Untimed steps first.");
ABSL_FLAG(int, repeats, 3, "Timed steps (median reported).");
ABSL_FLAG(int, threads, 2, "LibTorch intra-op threads (CPU).");
ABSL_FLAG(int, peak_n, 0,
          "n of the n×n×n matmul that measures the peak (0 = 8192 on cuda, "
          "1024 on cpu).");
ABSL_FLAG(double, guidance, 5.0, "CFG scale.");
ABSL_FLAG(uint64_t, seed, 0, "Seed of the random weights and inputs.");

namespace dserve::bench {
namespace {

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

// Dense matmul throughput on this device and dtype (TFLOP/s), the MFU
// denominator: best of several n×n×n products after warm-up.
double MeasurePeak(const at::TensorOptions& opts, int n) {
  at::Tensor a = at::randn({n, n}, opts);
  at::Tensor b = at::randn({n, n}, opts);
  at::Tensor c;
  for (int i = 0; i < 3; ++i) c = at::mm(a, b);
  Sync(c);
  double best = 1e30;
  for (int r = 0; r < 5; ++r) {
    const int reps = opts.device().is_cpu() ? 1 : 10;
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) c = at::mm(a, b);
    Sync(c);
    best = std::min(best, Seconds(start) / reps);
  }
  return 2.0 * n * n * static_cast<double>(n) / best / 1e12;
}

int Run() {
  absl::StatusOr<BenchShape> shape = MakeBenchShape(
      absl::GetFlag(FLAGS_model), absl::GetFlag(FLAGS_frames),
      absl::GetFlag(FLAGS_height), absl::GetFlag(FLAGS_width),
      absl::GetFlag(FLAGS_layers), absl::GetFlag(FLAGS_text_len));
  if (!shape.ok()) {
    std::fprintf(stderr, "step_bench: %s\n", shape.status().ToString().c_str());
    return 2;
  }
  const std::string device_flag = absl::GetFlag(FLAGS_device);
  const std::string dtype_flag = absl::GetFlag(FLAGS_dtype);
  if (device_flag != "cpu" && device_flag != "cuda") {
    std::fprintf(stderr, "step_bench: --device = %s; allowed: cpu, cuda\n",
                 device_flag.c_str());
    return 2;
  }
  if (dtype_flag != "fp32" && dtype_flag != "bf16") {
    std::fprintf(stderr, "step_bench: --dtype = %s; allowed: fp32, bf16\n",
                 dtype_flag.c_str());
    return 2;
  }
  const at::Device device(device_flag == "cuda" ? at::kCUDA : at::kCPU);
  const at::ScalarType dtype =
      dtype_flag == "bf16" ? at::kBFloat16 : at::kFloat;
  const at::TensorOptions fp32 =
      at::TensorOptions().device(device).dtype(at::kFloat);
  at::manual_seed(absl::GetFlag(FLAGS_seed));

  const models::DiTConfig& c = shape->dit;
  absl::StatusOr<models::DiT> dit = models::DiT::Create(
      c, RandomDiTWeights(c, fp32), models::DiTNumerics{device, dtype});
  if (!dit.ok()) {
    std::fprintf(stderr, "step_bench: %s\n", dit.status().ToString().c_str());
    return 1;
  }
  // Inputs: latents at σ = 0.9, cond and uncond text of text_len tokens.
  const int64_t b = 1;
  at::Tensor x = at::randn({b, shape->latent_channels, shape->latent_frames,
                            shape->latent_height, shape->latent_width},
                           fp32);
  at::Tensor cond = at::randn({b, c.text_len, c.text_dim}, fp32).to(dtype);
  at::Tensor uncond = at::randn({b, c.text_len, c.text_dim}, fp32).to(dtype);
  const double sigma = 0.9, sigma_next = 0.85;
  at::Tensor t = at::full({b}, models::SigmaToTimestep(sigma), fp32);
  const std::vector<float> guidance(b, absl::GetFlag(FLAGS_guidance));
  const bool planes = shape->coordinate_planes;
  models::DenoiseFn model = [&](const at::Tensor& xin, const at::Tensor& tin,
                                const at::Tensor& ctx) {
    return dit->Forward(planes ? models::AppendCoordinatePlanes(xin) : xin,
                        tin, ctx);
  };
  auto step = [&](const at::Tensor& latents) {
    at::Tensor v =
        models::GuidedPrediction(model, latents, t, cond, uncond, guidance);
    return models::EulerStep(latents, v, sigma, sigma_next);
  };

  at::Tensor out;
  for (int i = 0; i < absl::GetFlag(FLAGS_warmup); ++i) out = step(x);
  if (out.defined()) Sync(out);
  std::vector<double> seconds;
  for (int i = 0; i < std::max(1, absl::GetFlag(FLAGS_repeats)); ++i) {
    auto start = std::chrono::steady_clock::now();
    out = step(x);
    Sync(out);
    seconds.push_back(Seconds(start));
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2];
  TORCH_CHECK(at::isfinite(out).all().item<bool>(),
              "step_bench: the step produced non-finite values");

  int peak_n = absl::GetFlag(FLAGS_peak_n);
  if (peak_n <= 0) peak_n = device.is_cuda() ? 8192 : 1024;
  const double peak = MeasurePeak(
      at::TensorOptions().device(device).dtype(dtype), peak_n);
  const Flops f = ForwardFlops(*shape, /*batch=*/2);  // CFG: cond + uncond
  const double achieved = f.total() / median / 1e12;

  std::printf(
      "model=%s device=%s dtype=%s threads=%d\n"
      "latents=%lldx%lldx%lldx%lld tokens=%lld text_len=%d layers=%d dim=%d "
      "heads=%d ffn=%d\n"
      "step (CFG, batch 2): median %.4f s, min %.4f s, max %.4f s over %zu\n"
      "flops/step: %.3f TFLOP (linear %.3f, attention core %.3f = %.0f%%)\n"
      "achieved: %.2f TFLOP/s; matmul peak (%dx%dx%d %s): %.2f TFLOP/s; "
      "MFU %.1f%%\n",
      absl::GetFlag(FLAGS_model).c_str(), device_flag.c_str(),
      dtype_flag.c_str(), at::get_num_threads(),
      static_cast<long long>(shape->latent_channels),
      static_cast<long long>(shape->latent_frames),
      static_cast<long long>(shape->latent_height),
      static_cast<long long>(shape->latent_width),
      static_cast<long long>(shape->tokens()), c.text_len, c.num_layers, c.dim,
      c.num_heads, c.ffn_dim, median, seconds.front(), seconds.back(),
      seconds.size(), f.total() / 1e12, f.linear / 1e12, f.attention / 1e12,
      100.0 * f.attention / f.total(), achieved, peak_n, peak_n, peak_n,
      dtype_flag.c_str(), peak, 100.0 * achieved / peak);
  return 0;
}

}  // namespace
}  // namespace dserve::bench

int main(int argc, char** argv) {
  dserve::common::ReexecWithOpenBlasCoreType(argv);
  absl::SetProgramUsageMessage(
      "Times one CFG denoising step of the DiT and reports TFLOP/s and MFU.");
  absl::ParseCommandLine(argc, argv);
  at::set_num_threads(std::max(1, absl::GetFlag(FLAGS_threads)));
  return dserve::bench::Run();
}
