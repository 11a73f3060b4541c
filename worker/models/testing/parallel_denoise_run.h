#ifndef DSERVE_WORKER_MODELS_TESTING_PARALLEL_DENOISE_RUN_H_
#define DSERVE_WORKER_MODELS_TESTING_PARALLEL_DENOISE_RUN_H_

// Test-only scaffolding of the multi-rank denoising runs that measure
// --sp_compression (tests/sp_compression_test gates them,
// bench/sp_compression_bench reports them): one real process per rank of a
// mesh layout over loopback Gloo (parallel::testing::RunRanks), a Pipeline
// over each rank's share of random DiT weights, a whole denoising run
// through ParallelDiT with the bytes each step sent, and image quality of
// one decoded run against another.
//
// Blocking; not thread-safe (call from the test's main thread). Failures
// inside a rank are gtest failures of that rank, which fail the run.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "parallel/device_mesh.h"
#include "parallel/mesh_communicators.h"
#include "worker/models/model_config.h"
#include "worker/models/parallel_dit.h"
#include "worker/models/pipeline.h"
#include <ATen/core/Tensor.h>

namespace dserve::models::testing {

// The default model's pipeline with a small DiT: `dim` wide, 4 heads, 4
// layers, FFN 2 x dim (random weights make it cheap on 2 CPU cores).
PipelineConfig SmallDiTConfig(int64_t dim);

// `items` at size x size, one frame, `steps` flow-Euler steps, shift 3.
GenerationSpec SquareSpec(int size, int steps,
                          std::vector<GenerationItem> items);

// One rank of a mesh layout, in its own process. Owns its communicators
// and its Pipeline.
struct MeshRank {
  std::string mesh_spec;
  int rank = 0;
  parallel::DeviceMesh mesh;
  parallel::MeshCommunicators comms;
  std::unique_ptr<Pipeline> pipeline;
};

// Runs `fn` once per rank of `mesh_spec` ("ring=2,ulysses=2"; devices 0..
// world-1), each in a process of its own with one intra-op thread, over a
// Pipeline of `config` with RandomWeights(config, weights_seed) (its DiT
// share for the rank). Returns RunRanks' status: OK only if every rank
// recorded no failure before `timeout`. In the parent process `fn` does
// not run.
absl::Status RunOnMeshRanks(const std::string& mesh_spec,
                            const PipelineConfig& config,
                            uint64_t weights_seed, absl::Duration timeout,
                            const std::function<void(MeshRank&)>& fn);

struct DenoiseRun {
  at::Tensor latents;  // after the last step (full shape, every rank)
  at::Tensor pixels;   // decoded, [B, F, H, W, 3] in [0, 1]
  // CommStats bytes this rank sent during each step, every mesh group.
  std::vector<int64_t> step_bytes;

  int64_t total_bytes() const;
  // Mean of step_bytes[from..] (0 if empty).
  double mean_step_bytes(size_t from = 0) const;
};

// Every step of `spec` through a new ParallelDiT with `options` (fresh
// compression references). Undefined tensors (and a gtest failure) on an
// error.
DenoiseRun RunDenoise(MeshRank& rank, const GenerationSpec& spec,
                      const ParallelDiTOptions& options);

// Image quality of decoded pixels `a` against `b` ([B, F, H, W, 3] in
// [0, 1]): PSNR in dB (infinity when equal), and mean SSIM over 7x7
// uniform windows per colour plane (Wang et al. 2004 constants).
double ImagePsnr(const at::Tensor& a, const at::Tensor& b);
double ImageSsim(const at::Tensor& a, const at::Tensor& b);

// A gtest parameter name for a mesh spec: "ring=2,ulysses=2" ->
// "ring_2_ulysses_2".
std::string MeshTestName(const std::string& mesh_spec);

}  // namespace dserve::models::testing

#endif  // DSERVE_WORKER_MODELS_TESTING_PARALLEL_DENOISE_RUN_H_
