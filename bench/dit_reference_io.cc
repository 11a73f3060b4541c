// Writes what tools/reference/wan_dit_reference.py needs to check the C++
// DiT against an independent PyTorch implementation: the DiT weights
// (model.safetensors, Wan key names), the shapes (reference.json) and the
// inputs and outputs of one forward and of one CFG denoising step
// (io.safetensors), plus the C++ step time.
//
//   dit_reference_io --out_dir=/tmp/ref --model=default            # CPU fp32
//   dit_reference_io --out_dir=/tmp/ref --model=wan1.3b --device=cuda \
//       --dtype=bf16 --layers=30 --frames=81 --height=480 --width=832
//
// --model=default uses the built-in model's random weights (RandomWeights,
// the weights the server runs before a trained model is shipped); wan1.3b
// draws Wan2.1-T2V-1.3B-shaped random weights. Weights are written in the
// compute dtype, so both sides multiply by the same bf16 numbers.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "bench/bench_model.h"
#include "worker/models/dit.h"
#include "worker/models/model_config.h"
#include "worker/models/random_weights.h"
#include "worker/models/safetensors.h"
#include "worker/models/sampler.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

ABSL_FLAG(std::string, out_dir, "", "Directory to write (must exist).");
ABSL_FLAG(std::string, model, "default", "default or wan1.3b.");
ABSL_FLAG(int, frames, 1, "Frames (pixels; Wan: 4n+1).");
ABSL_FLAG(int, height, 32, "Height in pixels.");
ABSL_FLAG(int, width, 48, "Width in pixels.");
ABSL_FLAG(int, layers, 0, "DiT layers (0 = the model's).");
ABSL_FLAG(int, text_len, 0, "Text tokens (0 = the model's).");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda.");
ABSL_FLAG(std::string, dtype, "fp32", "fp32 or bf16 (matmuls, attention).");
ABSL_FLAG(int, repeats, 3, "Timed steps (median reported).");
ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads (CPU).");
ABSL_FLAG(uint64_t, seed, 0, "Seed of weights and inputs.");

namespace dserve::bench {
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "dit_reference_io: %s\n", message.c_str());
  return 1;
}

int Run() {
  const std::string dir = absl::GetFlag(FLAGS_out_dir);
  if (dir.empty()) return Fail("--out_dir is required");
  const std::string device_flag = absl::GetFlag(FLAGS_device);
  const std::string dtype_flag = absl::GetFlag(FLAGS_dtype);
  if (device_flag != "cpu" && device_flag != "cuda") {
    return Fail("--device = " + device_flag + "; allowed: cpu, cuda");
  }
  if (dtype_flag != "fp32" && dtype_flag != "bf16") {
    return Fail("--dtype = " + dtype_flag + "; allowed: fp32, bf16");
  }
  absl::StatusOr<BenchShape> shape = MakeBenchShape(
      absl::GetFlag(FLAGS_model), absl::GetFlag(FLAGS_frames),
      absl::GetFlag(FLAGS_height), absl::GetFlag(FLAGS_width),
      absl::GetFlag(FLAGS_layers), absl::GetFlag(FLAGS_text_len));
  if (!shape.ok()) return Fail(std::string(shape.status().message()));
  const at::Device device(device_flag == "cuda" ? at::kCUDA : at::kCPU);
  const at::ScalarType dtype =
      dtype_flag == "bf16" ? at::kBFloat16 : at::kFloat;
  const models::DiTConfig& c = shape->dit;
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  at::manual_seed(seed);

  // Weights: the default model's own random weights, or Wan-shaped ones;
  // rounded to the compute dtype so both implementations read equal bits.
  models::WeightMap all;
  if (absl::GetFlag(FLAGS_model) == "default") {
    models::PipelineConfig pc = models::DefaultModelConfig();
    pc.dit = c;
    all = models::RandomWeights(pc, seed);
  } else {
    all = RandomDiTWeights(c, at::TensorOptions().device(device));
  }
  models::WeightMap weights;
  for (const auto& [key, shape_unused] : models::DiTWeightShapes(c)) {
    weights[key] = all.at(key).to(device).to(dtype);
  }
  all.clear();
  absl::Status st = models::WriteSafetensors(weights, dir + "/model.safetensors");
  if (!st.ok()) return Fail(std::string(st.message()));
  absl::StatusOr<models::DiT> dit =
      models::DiT::Create(c, weights, models::DiTNumerics{device, dtype});
  if (!dit.ok()) return Fail(std::string(dit.status().message()));
  weights.clear();

  // Inputs drawn on the CPU (same bits whatever the device), then moved.
  at::Generator gen = at::detail::createCPUGenerator(seed + 1);
  auto f32 = at::TensorOptions().dtype(at::kFloat);
  at::Tensor x = at::randn({1, shape->latent_channels, shape->latent_frames,
                            shape->latent_height, shape->latent_width},
                           gen, f32);
  at::Tensor cond = at::randn({1, c.text_len, c.text_dim}, gen, f32);
  at::Tensor uncond = at::randn({1, c.text_len, c.text_dim}, gen, f32);
  const double sigma = 0.9, sigma_next = 0.85, guidance = 5.0;
  at::Tensor t = at::full({1}, models::SigmaToTimestep(sigma), f32);
  at::Tensor xd = x.to(device), td = t.to(device);
  at::Tensor cd = cond.to(device).to(dtype), ud = uncond.to(device).to(dtype);
  const bool planes = shape->coordinate_planes;
  models::DenoiseFn model = [&](const at::Tensor& xin, const at::Tensor& tin,
                                const at::Tensor& ctx) {
    return dit->Forward(planes ? models::AppendCoordinatePlanes(xin) : xin,
                        tin, ctx);
  };
  at::Tensor forward = model(xd, td, cd);
  auto step = [&] {
    at::Tensor v = models::GuidedPrediction(model, xd, td, cd, ud,
                                            {static_cast<float>(guidance)});
    return models::EulerStep(xd, v, sigma, sigma_next);
  };
  at::Tensor stepped = step();  // also the warm-up
  Sync(stepped);
  std::vector<double> seconds;
  for (int r = 0; r < std::max(1, absl::GetFlag(FLAGS_repeats)); ++r) {
    auto start = std::chrono::steady_clock::now();
    stepped = step();
    Sync(stepped);
    seconds.push_back(std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - start)
                          .count());
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2];

  st = models::WriteSafetensors(
      {{"x", x}, {"timesteps", t}, {"cond", cond}, {"uncond", uncond},
       {"forward", forward.cpu()}, {"step", stepped.cpu()}},
      dir + "/io.safetensors");
  if (!st.ok()) return Fail(std::string(st.message()));
  const std::string json = absl::StrCat(
      "{\n  \"model\": \"", absl::GetFlag(FLAGS_model), "\",\n",
      "  \"in_channels\": ", c.in_channels, ",\n",
      "  \"out_channels\": ", c.out_channels, ",\n",
      "  \"patch\": [", c.patch[0], ", ", c.patch[1], ", ", c.patch[2], "],\n",
      "  \"dim\": ", c.dim, ",\n  \"ffn_dim\": ", c.ffn_dim, ",\n",
      "  \"num_heads\": ", c.num_heads, ",\n  \"num_layers\": ", c.num_layers,
      ",\n  \"freq_dim\": ", c.freq_dim, ",\n  \"text_dim\": ", c.text_dim,
      ",\n  \"text_len\": ", c.text_len, ",\n  \"eps\": ", c.eps, ",\n",
      "  \"coordinate_planes\": ", planes ? "true" : "false", ",\n",
      "  \"sigma\": ", sigma, ",\n  \"sigma_next\": ", sigma_next, ",\n",
      "  \"guidance\": ", guidance, ",\n",
      "  \"device\": \"", device_flag, "\",\n  \"dtype\": \"", dtype_flag,
      "\",\n  \"threads\": ", at::get_num_threads(), ",\n",
      "  \"repeats\": ", seconds.size(), ",\n",
      "  \"cpp_step_seconds\": ", median, "\n}\n");
  std::ofstream(dir + "/reference.json") << json;
  std::printf("C++ step (CFG, %s %s, %lld tokens, %d layers): median %.4f s; "
              "wrote %s/{model,io}.safetensors, reference.json\n",
              device_flag.c_str(), dtype_flag.c_str(),
              static_cast<long long>(shape->tokens()), c.num_layers, median,
              dir.c_str());
  return 0;
}

}  // namespace
}  // namespace dserve::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Writes DiT weights, inputs and outputs for the Python reference.");
  absl::ParseCommandLine(argc, argv);
  at::set_num_threads(std::max(1, absl::GetFlag(FLAGS_threads)));
  return dserve::bench::Run();
}
