// CPU/GPU time of one umT5 encode with random weights at any size: the tiny
// test config by default, or one real umT5-XXL layer with
//   umt5_bench --dim=4096 --heads=64 --head_dim=64 --ffn=10240 --layers=1
// Prints the median of --repeats encodes of --tokens tokens (after one
// warm-up).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/blas_kernels.h"
#include "worker/models/text/umt5_encoder.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

ABSL_FLAG(int64_t, vocab, 300, "Vocabulary rows.");
ABSL_FLAG(int64_t, dim, 32, "Model width.");
ABSL_FLAG(int64_t, heads, 4, "Attention heads.");
ABSL_FLAG(int64_t, head_dim, 8, "Width per head.");
ABSL_FLAG(int64_t, ffn, 48, "Gated FFN width.");
ABSL_FLAG(int64_t, layers, 2, "Blocks.");
ABSL_FLAG(int64_t, tokens, 100, "Tokens per encode (</s> included).");
ABSL_FLAG(std::string, dtype, "fp32", "fp32 or bf16.");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda.");
ABSL_FLAG(int, repeats, 5, "Timed encodes (median reported).");
ABSL_FLAG(int, threads, 0, "Intra-op threads (0 = LibTorch's default).");

int main(int argc, char** argv) {
  using dserve::models::Umt5Config;
  dserve::common::ReexecWithOpenBlasCoreType(argv);
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_threads) > 0) {
    at::set_num_threads(absl::GetFlag(FLAGS_threads));
  }
  Umt5Config c;
  c.vocab = absl::GetFlag(FLAGS_vocab);
  c.dim = absl::GetFlag(FLAGS_dim);
  c.num_heads = absl::GetFlag(FLAGS_heads);
  c.head_dim = absl::GetFlag(FLAGS_head_dim);
  c.ffn_dim = absl::GetFlag(FLAGS_ffn);
  c.num_layers = absl::GetFlag(FLAGS_layers);
  const bool bf16 = absl::GetFlag(FLAGS_dtype) == "bf16";
  dserve::models::Umt5Numerics numerics;
  numerics.device = at::Device(absl::GetFlag(FLAGS_device));
  numerics.compute_dtype = bf16 ? at::kBFloat16 : at::kFloat;
  dserve::models::WeightMap weights;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  for (const auto& [key, shape] : dserve::models::Umt5WeightShapes(c)) {
    at::Tensor t = at::randn(shape, gen, at::kFloat);
    if (shape.size() == 2 && key.find("embedding") == std::string::npos) {
      t = t / std::sqrt(static_cast<double>(shape[1]));
    }
    weights[key] = bf16 ? t.to(at::kBFloat16) : t;
  }
  auto encoder = dserve::models::Umt5Encoder::Create(weights, numerics);
  if (!encoder.ok()) {
    std::fprintf(stderr, "umt5_bench: %s\n",
                 encoder.status().ToString().c_str());
    return 1;
  }
  weights.clear();
  std::vector<int64_t> ids(absl::GetFlag(FLAGS_tokens));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = 2 + (i * 7919) % (c.vocab - 2);
  ids.back() = 1;
  std::vector<double> ms;
  for (int r = 0; r <= absl::GetFlag(FLAGS_repeats); ++r) {
    const auto start = std::chrono::steady_clock::now();
    auto out = (*encoder)->Encode(ids);
    if (!out.ok()) {
      std::fprintf(stderr, "umt5_bench: %s\n", out.status().ToString().c_str());
      return 1;
    }
    (void)out->sum().item<float>();  // waits for the device
    const auto end = std::chrono::steady_clock::now();
    if (r > 0) {
      ms.push_back(std::chrono::duration<double, std::milli>(end - start).count());
    }
  }
  std::sort(ms.begin(), ms.end());
  std::printf(
      "umT5 encode: vocab %lld dim %lld heads %lldx%lld ffn %lld layers %lld, "
      "%zu tokens, %s on %s, %d threads: median %.3f ms (min %.3f, max %.3f)\n",
      static_cast<long long>(c.vocab), static_cast<long long>(c.dim),
      static_cast<long long>(c.num_heads), static_cast<long long>(c.head_dim),
      static_cast<long long>(c.ffn_dim), static_cast<long long>(c.num_layers),
      ids.size(), absl::GetFlag(FLAGS_dtype).c_str(),
      absl::GetFlag(FLAGS_device).c_str(), at::get_num_threads(), ms[ms.size() / 2],
      ms.front(), ms.back());
  return 0;
}
