// Times the C++ Wan2.1 components on the reference case files written by
// tools/reference/wan_reference.py (the same weights and inputs
// tools/reference/wan_bench.py times in Python): umT5 encode of the t5
// case's two prompts, one DiT forward and one CFG step (cond + uncond
// forwards, v_u + g (v_c − v_u), an Euler update) on the dit case, and the
// chunked VAE decode of the vae case's latents. fp32 on the CPU, --threads
// intra-op threads, median of --repeats after one warm-up. Prints one JSON
// object with the same keys as wan_bench.py plus each result's
// max|d|/max|ref| against the case's expected tensor, so a timing is only
// reported for a computation that gives the reference's numbers.
//
//   wan_component_timer --t5_case=T5 --dit_case=DIT --vae_case=VAE \
//       [--threads=1] [--repeats=5]
//
// bench/wan_component_bench.sh runs this and the Python side in one go and
// prints the C++/Python ratios.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "worker/models/dit.h"
#include "worker/models/model_config.h"
#include "worker/models/safetensors.h"
#include "worker/models/text/umt5_encoder.h"
#include "worker/models/vae/wan_vae.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

ABSL_FLAG(std::string, t5_case, "", "wan_reference.py t5 case file.");
ABSL_FLAG(std::string, dit_case, "", "wan_reference.py dit case file.");
ABSL_FLAG(std::string, vae_case, "", "wan_reference.py vae case file.");
ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads.");
ABSL_FLAG(int, repeats, 5, "Timed runs per component (median reported).");
ABSL_FLAG(double, guidance, 5.0, "CFG scale of the timed step.");

namespace dserve::bench {
namespace {

using nlohmann::json;

struct Case {
  models::WeightMap weights;  // everything but input.* / expected.*
  models::WeightMap io;       // input.* and expected.*
  json config;
};

absl::StatusOr<Case> LoadCase(const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        "a case file flag is empty; write the cases with "
        "tools/reference/wan_reference.py CASE --out FILE");
  }
  ASSIGN_OR_RETURN(models::WeightMap all, models::ReadSafetensors(path));
  ASSIGN_OR_RETURN(auto meta, models::ReadSafetensorsMetadata(path));
  Case c;
  auto it = meta.find("config");
  if (it == meta.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no \"config\" in __metadata__"));
  }
  c.config = json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  if (c.config.is_discarded() || !c.config.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": __metadata__ config is not a JSON object"));
  }
  for (auto& [name, tensor] : all) {
    if (absl::StartsWith(name, "input.") ||
        absl::StartsWith(name, "expected.") ||
        absl::StartsWith(name, "debug.")) {
      c.io[name] = tensor;
    } else {
      c.weights[name] = tensor;
    }
  }
  return c;
}

absl::StatusOr<at::Tensor> Get(const Case& c, const std::string& name,
                               const std::string& path) {
  auto it = c.io.find(name);
  if (it == c.io.end()) {
    return absl::NotFoundError(absl::StrCat(path, ": no tensor ", name));
  }
  return it->second;
}

// Median wall time of `fn` over `repeats` runs after one warm-up.
double MedianSeconds(const std::function<void()>& fn, int repeats) {
  fn();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(
                        std::chrono::steady_clock::now() - start)
                        .count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

double RelErr(const at::Tensor& out, const at::Tensor& ref) {
  const at::Tensor o = out.to(at::kDouble).cpu();
  const at::Tensor r = ref.to(at::kDouble).cpu();
  return ((o - r).abs().max() / r.abs().max()).item<double>();
}

std::vector<int64_t> Ids(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kLong).contiguous().cpu();
  return std::vector<int64_t>(c.data_ptr<int64_t>(),
                              c.data_ptr<int64_t>() + c.numel());
}

absl::Status TimeT5(const std::string& path, int repeats, json& out) {
  ASSIGN_OR_RETURN(Case c, LoadCase(path));
  ASSIGN_OR_RETURN(at::Tensor ids0, Get(c, "input.ids.0", path));
  ASSIGN_OR_RETURN(at::Tensor ids1, Get(c, "input.ids.1", path));
  ASSIGN_OR_RETURN(at::Tensor expected, Get(c, "expected.context", path));
  ASSIGN_OR_RETURN(std::unique_ptr<models::Umt5Encoder> encoder,
                   models::Umt5Encoder::Create(c.weights));
  const std::vector<std::vector<int64_t>> prompts = {Ids(ids0), Ids(ids1)};
  const int64_t text_len = c.config.value("text_len", int64_t{0});
  absl::StatusOr<at::Tensor> context;
  out["t5_encode_s"] = MedianSeconds(
      [&] { context = encoder->EncodeContext(prompts, text_len); }, repeats);
  RETURN_IF_ERROR(context.status());
  out["max_rel_err_vs_expected"]["t5"] = RelErr(*context, expected);
  return absl::OkStatus();
}

absl::StatusOr<models::DiTConfig> DiTConfigOf(const json& j,
                                              const std::string& path) {
  models::DiTConfig c;
  try {
    c.dim = j.at("dim").get<int>();
    c.num_heads = j.at("heads").get<int>();
    c.ffn_dim = j.at("ffn_dim").get<int>();
    c.num_layers = j.at("layers").get<int>();
    c.freq_dim = j.at("freq_dim").get<int>();
    c.text_dim = j.at("text_dim").get<int>();
    c.text_len = j.at("text_len").get<int>();
    c.in_channels = j.at("in_dim").get<int>();
    c.out_channels = j.at("out_dim").get<int>();
    const auto patch = j.at("patch").get<std::vector<int>>();
    if (patch.size() != 3) throw std::runtime_error("patch needs 3 values");
    c.patch = {patch[0], patch[1], patch[2]};
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": DiT config ", j.dump(), ": ", e.what()));
  }
  return c;
}

absl::Status TimeDiT(const std::string& path, int repeats, double guidance,
                     json& out) {
  ASSIGN_OR_RETURN(Case c, LoadCase(path));
  ASSIGN_OR_RETURN(models::DiTConfig config, DiTConfigOf(c.config, path));
  ASSIGN_OR_RETURN(at::Tensor x, Get(c, "input.latents", path));
  ASSIGN_OR_RETURN(at::Tensor t, Get(c, "input.timestep", path));
  ASSIGN_OR_RETURN(at::Tensor cond, Get(c, "input.context", path));
  ASSIGN_OR_RETURN(at::Tensor expected, Get(c, "expected.velocity", path));
  ASSIGN_OR_RETURN(models::DiT dit, models::DiT::Create(config, c.weights));
  // timesteps as the DiT takes them (σ·1000, a float dtype)
  const at::Tensor timesteps = t.to(at::kFloat);
  const at::Tensor uncond = at::zeros_like(cond);
  return CatchTorch(absl::StrCat("DiT on ", path), [&] {
    at::Tensor v;
    out["dit_forward_s"] = MedianSeconds(
        [&] { v = dit.Forward(x, timesteps, cond); }, repeats);
    out["max_rel_err_vs_expected"]["dit"] = RelErr(v, expected);
    out["dit_cfg_step_s"] = MedianSeconds(
        [&] {
          const at::Tensor v_c = dit.Forward(x, timesteps, cond);
          const at::Tensor v_u = dit.Forward(x, timesteps, uncond);
          v = x + (0.9 - 0.95) * (v_u + guidance * (v_c - v_u));
        },
        repeats);
  });
}

absl::Status TimeVae(const std::string& path, int repeats, json& out) {
  ASSIGN_OR_RETURN(Case c, LoadCase(path));
  ASSIGN_OR_RETURN(at::Tensor z, Get(c, "input.latents", path));
  ASSIGN_OR_RETURN(at::Tensor expected, Get(c, "expected.video", path));
  ASSIGN_OR_RETURN(models::WanVae vae, models::WanVae::Create(c.weights));
  absl::StatusOr<at::Tensor> video;
  out["vae_decode_s"] =
      MedianSeconds([&] { video = vae.Decode(z); }, repeats);
  RETURN_IF_ERROR(video.status());
  out["max_rel_err_vs_expected"]["vae"] = RelErr(*video, expected);
  return absl::OkStatus();
}

int Run() {
  const int threads = absl::GetFlag(FLAGS_threads);
  const int repeats = absl::GetFlag(FLAGS_repeats);
  if (threads < 1 || repeats < 1) {
    std::fprintf(stderr,
                 "wan_component_timer: --threads=%d --repeats=%d; both must "
                 "be >= 1\n",
                 threads, repeats);
    return 1;
  }
  at::set_num_threads(threads);
  json out = {{"threads", threads},
              {"dtype", "float32"},
              {"repeats", repeats},
              {"side", "C++"}};
  at::NoGradGuard no_grad;
  absl::Status s = TimeT5(absl::GetFlag(FLAGS_t5_case), repeats, out);
  if (s.ok()) {
    s = TimeDiT(absl::GetFlag(FLAGS_dit_case), repeats,
                absl::GetFlag(FLAGS_guidance), out);
  }
  if (s.ok()) s = TimeVae(absl::GetFlag(FLAGS_vae_case), repeats, out);
  if (!s.ok()) {
    std::fprintf(stderr, "wan_component_timer: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace
}  // namespace dserve::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return dserve::bench::Run();
}
