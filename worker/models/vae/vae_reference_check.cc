// Checks the C++ Wan VAE against a reference case written by the independent
// PyTorch reference (tools/reference/wan_reference.py vae, see
// /work/notes/wan_contract.md):
//
//   vae_reference_check --case=vae.safetensors --tol=1e-4
//
// The file holds the VAE's random weights under the Wan names, input.latents
// and expected.video = clamp(decode(latents·std + mean), −1, 1), input.video
// and expected.latents = (mu − mean)/std, and __metadata__.config (the case
// config, compared with the config inferred from the weights). Prints
// max|d|/max|ref| per output (decode chunked and one-shot, encode chunked
// and one-shot) and exits 1 if any exceeds --tol.

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "worker/models/safetensors.h"
#include "worker/models/vae/wan_vae.h"
#include "worker/models/vae/wan_vae_config.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

ABSL_FLAG(std::string, case, "", "Reference case file (safetensors).");
ABSL_FLAG(double, tol, 1e-4, "Largest allowed max|d|/max|ref|.");
ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads.");

namespace dserve::models {
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "vae_reference_check: %s\n", message.c_str());
  return 1;
}

// Compares the case's config with the one inferred from its weights; "" if
// they agree, else what differs.
std::string CompareConfig(const std::string& json_text,
                          const WanVaeConfig& c) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "config is not a JSON object";
  std::string diff;
  auto check = [&](const char* key, const nlohmann::json& inferred) {
    if (!j.contains(key) || j[key] != inferred) {
      diff += std::string(key) + ": case " +
              (j.contains(key) ? j[key].dump() : "(absent)") +
              ", inferred " + inferred.dump() + "; ";
    }
  };
  check("base_dim", c.base_dim);
  check("z_dim", c.z_dim);
  check("dim_mult", c.dim_mult);
  check("num_res_blocks", c.num_res_blocks);
  check("temporal_downsample", c.temporal_downsample);
  return diff;
}

// Prints max|d|/max|ref| and returns whether it is within tol.
bool Report(const std::string& name, const absl::StatusOr<at::Tensor>& got,
            const at::Tensor& want, double tol) {
  if (!got.ok()) {
    std::printf("%s: error: %s\n", name.c_str(),
                std::string(got.status().message()).c_str());
    return false;
  }
  if (got->sizes() != want.sizes()) {
    std::printf("%s: shape [%s], expected [%s]\n", name.c_str(),
                absl::StrJoin(got->sizes(), ", ").c_str(),
                absl::StrJoin(want.sizes(), ", ").c_str());
    return false;
  }
  const at::Tensor ref = want.to(at::kDouble);
  const double err = (got->to(at::kDouble) - ref).abs().max().item<double>() /
                     ref.abs().max().item<double>();
  const bool ok = err <= tol;
  std::printf("%s: max|d|/max|ref| = %.3g (tol %.3g) %s\n", name.c_str(), err,
              tol, ok ? "ok" : "FAIL");
  return ok;
}

int Run() {
  const std::string path = absl::GetFlag(FLAGS_case);
  if (path.empty()) return Fail("--case is required");
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  absl::StatusOr<WeightMap> all = ReadSafetensors(path);
  if (!all.ok()) return Fail(std::string(all.status().message()));
  absl::StatusOr<std::map<std::string, std::string>> meta =
      ReadSafetensorsMetadata(path);
  if (!meta.ok()) return Fail(std::string(meta.status().message()));

  WeightMap weights, io;
  for (const auto& [key, tensor] : *all) {
    const bool is_io = absl::StartsWith(key, "input.") ||
                       absl::StartsWith(key, "expected.");
    (is_io ? io : weights)[key] = tensor;
  }
  for (const char* key : {"input.latents", "expected.video", "input.video",
                          "expected.latents"}) {
    if (io.count(key) == 0) return Fail(path + ": missing tensor " + key);
  }
  absl::StatusOr<WanVae> vae = WanVae::Create(weights);
  if (!vae.ok()) return Fail(std::string(vae.status().message()));
  auto config = meta->find("config");
  if (config == meta->end()) return Fail(path + ": no metadata \"config\"");
  const std::string diff = CompareConfig(config->second, vae->config());
  if (!diff.empty()) return Fail(path + ": config mismatch: " + diff);

  const double tol = absl::GetFlag(FLAGS_tol);
  bool ok = true;
  ok &= Report("decode (chunked) video", vae->Decode(io["input.latents"]),
               io["expected.video"], tol);
  ok &= Report("decode (one-shot) video",
               vae->DecodeOneShot(io["input.latents"]), io["expected.video"],
               tol);
  ok &= Report("encode (chunked) latents", vae->Encode(io["input.video"]),
               io["expected.latents"], tol);
  ok &= Report("encode (one-shot) latents",
               vae->EncodeOneShot(io["input.video"]), io["expected.latents"],
               tol);
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace dserve::models

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return dserve::models::Run();
}
