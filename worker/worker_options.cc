#include "worker/worker_options.h"

#include <limits>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "parallel/devices.h"

namespace dserve::worker {

absl::StatusOr<HostPort> ParseHostPort(absl::string_view text,
                                       absl::string_view field) {
  const size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", field, "='", text, "' must be HOST:PORT"));
  }
  absl::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  if (!absl::SimpleAtoi(text.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", field, "='", text, "' has an invalid port; allowed 0 to 65535"));
  }
  return HostPort{std::string(host), port};
}

absl::Status ValidateWorkerOptions(const WorkerOptions& o) {
  if (o.world < 1 || o.world > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--world=", o.world, " is out of range; allowed 1 to 4096"));
  }
  if (o.rank < 0 || o.rank >= o.world) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rank=", o.rank, " is out of range; allowed 0 to ",
                     o.world - 1, " (--world=", o.world, ")"));
  }
  if (o.replica < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--replica=", o.replica, " must be >= 0"));
  }
  if (o.store_file.empty() && o.store.host.empty()) {
    return absl::InvalidArgumentError("--store must name a host: HOST:PORT");
  }
  if (o.store_file.empty() && o.rank != 0 && o.store.port == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--store port 0 is allowed only on rank 0 (which hosts the store); "
        "rank ",
        o.rank, " must be given the port rank 0 reported"));
  }
  absl::StatusOr<parallel::Device> device = parallel::ParseDevice(o.device);
  if (!device.ok()) return device.status();
  if (!o.dtype.empty() && o.dtype != "bf16" && o.dtype != "fp16" &&
      o.dtype != "fp32") {
    return absl::InvalidArgumentError(
        absl::StrCat("--dtype='", o.dtype,
                     "' is not a dtype; allowed: bf16, fp16, fp32 (empty = "
                     "bf16 on CUDA, fp32 on CPU)"));
  }
  if (o.comm != "auto" && o.comm != "nccl" && o.comm != "gloo") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--comm='", o.comm, "' is not a backend; allowed: auto, nccl, gloo"));
  }
  if (o.comm == "nccl" && !device->is_cuda()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--comm=nccl needs a CUDA device but --device=", o.device,
        "; use --comm=gloo (or auto) on the CPU"));
  }
  if (o.text_cache_mb < 0 || o.text_cache_mb > (1 << 20)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--text_cache_mb=", o.text_cache_mb,
        " is out of range; allowed 0 (off) to 1048576"));
  }
  if (o.sp_exact_steps < 1 ||
      o.sp_exact_steps > parallel::kMaxSpExactSteps) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--sp_compression_exact_steps=", o.sp_exact_steps,
        " is out of range; allowed 1 (the first step has no reference) to ",
        parallel::kMaxSpExactSteps));
  }
  if (o.threads < 1 || o.threads > 256) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--threads=", o.threads, " is out of range; allowed 1 to 256"));
  }
  if (o.ready_fd < -1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--ready_fd=", o.ready_fd, " must be -1 (none) or an open descriptor"));
  }
  if (o.rank == 0 && o.leader_address.host.empty()) {
    return absl::InvalidArgumentError(
        "--leader_address must name a host: HOST:PORT");
  }
  if (o.collective_timeout.count() < 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("--collective_timeout_ms=", o.collective_timeout.count(),
                     " is too short; allowed >= 100"));
  }
  if (o.heartbeat_interval.count() < 10 ||
      o.heartbeat_interval * 2 > o.collective_timeout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--heartbeat_ms=", o.heartbeat_interval.count(),
        " is out of range; allowed 10 to half of --collective_timeout_ms (",
        o.collective_timeout.count() / 2, ")"));
  }
  if (!o.model_dir.empty() && !o.models.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--model_dir=", o.model_dir,
        " and --model are exclusive; name every model with --model"));
  }
  if (!o.default_model.empty() && o.models.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--default_model=", o.default_model, " needs --model=NAME=DIR"));
  }
  if (absl::Status s = common::CheckModelList(o.models, o.default_model);
      !s.ok()) {
    return s;
  }
  if (o.rendezvous_timeout.count() < 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rendezvous_timeout_ms=", o.rendezvous_timeout.count(),
                     " is too short; allowed >= 1000"));
  }
  return absl::OkStatus();
}

std::string EffectiveDtype(const WorkerOptions& options) {
  if (!options.dtype.empty()) return options.dtype;
  absl::StatusOr<parallel::Device> device = parallel::ParseDevice(options.device);
  return device.ok() && device->is_cuda() ? "bf16" : "fp32";
}

}  // namespace dserve::worker
