#include "worker/mesh_backend.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "parallel/gloo_communicator.h"
#include "parallel/host_staging_communicator.h"

#if defined(DSERVE_WITH_CUDA)
#include "parallel/nccl_communicator.h"
#include "worker/device_runtime.h"
#endif

namespace dserve::worker {

bool BuiltWithNccl() {
#if defined(DSERVE_WITH_CUDA)
  return true;
#else
  return false;
#endif
}

absl::StatusOr<std::string> ResolveCommBackend(const std::string& comm,
                                               bool cuda, bool have_nccl) {
  if (comm == "gloo") return std::string("gloo");
  if (comm == "auto") {
    return std::string(cuda && have_nccl ? "nccl" : "gloo");
  }
  if (comm != "nccl") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--comm='", comm, "' is not a backend; allowed: auto, nccl, gloo"));
  }
  if (!cuda) {
    return absl::InvalidArgumentError(
        "--comm=nccl needs a CUDA device; use --comm=gloo (or auto) on the "
        "CPU");
  }
  if (!have_nccl) {
    return absl::FailedPreconditionError(
        "--comm=nccl: this dserve_worker was built without NCCL; build it "
        "with bazel --config=cuda (or cmake -DDSERVE_WITH_CUDA=ON), or use "
        "--comm=gloo");
  }
  return std::string("nccl");
}

absl::StatusOr<parallel::CommunicatorFactory> MeshCommunicatorFactory(
    const std::string& backend, const at::Device& device,
    std::chrono::milliseconds timeout) {
  if (backend == "gloo") {
    parallel::CommunicatorFactory gloo =
        parallel::GlooCommunicatorFactory(timeout);
    if (device.is_cpu()) return gloo;
    return parallel::CommunicatorFactory(
        [gloo = std::move(gloo)](const c10::intrusive_ptr<c10d::Store>& store,
                                 const std::string& name, int rank, int size)
            -> absl::StatusOr<std::unique_ptr<parallel::Communicator>> {
          absl::StatusOr<std::unique_ptr<parallel::Communicator>> inner =
              gloo(store, name, rank, size);
          if (!inner.ok()) return inner.status();
          return parallel::WrapWithHostStaging(*std::move(inner));
        });
  }
#if defined(DSERVE_WITH_CUDA)
  if (backend == "nccl" && device.is_cuda()) {
    parallel::NcclOptions nccl;
    nccl.cuda_device = device.index();
    nccl.timeout = timeout;
    nccl.current_stream = CurrentCudaStreamFn();
    return parallel::CommunicatorFactory(
        [nccl](const c10::intrusive_ptr<c10d::Store>& store,
               const std::string& name, int rank, int size) {
          return parallel::CreateNcclCommunicator(store, name, rank, size,
                                                  nccl);
        });
  }
#endif
  return absl::FailedPreconditionError(absl::StrCat(
      "no '", backend, "' communicator for device ", device.str(),
      " in this build (NCCL built in: ", BuiltWithNccl() ? "yes" : "no", ")"));
}

}  // namespace dserve::worker
