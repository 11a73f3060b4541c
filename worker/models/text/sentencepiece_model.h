#ifndef DSERVE_WORKER_MODELS_TEXT_SENTENCEPIECE_MODEL_H_
#define DSERVE_WORKER_MODELS_TEXT_SENTENCEPIECE_MODEL_H_

// Debian's libsentencepiece, reached only through libdserve_spm_shim.so
// (spm_shim.{h,cc}), which this code dlopen()s with RTLD_NOW | RTLD_LOCAL |
// RTLD_DEEPBIND. libsentencepiece.so.0 carries and exports its own static
// protobuf 3.14; linked into a process that also has libprotobuf 3.21
// (LibTorch, gRPC) it crashes before main. Loaded deep-bound and local, its
// protobuf binds to itself and nothing else sees it (README.md).
//
// Owns one model handle in the shim; immutable after creation, so every
// method is safe from many threads at once. Creation reads the shim from
// disk (once per process and path); nothing else blocks.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace dserve::models {

namespace spm_internal {
struct ShimLibrary;
}  // namespace spm_internal

// File name of the shim; a data dependency of :sentencepiece_model.
inline constexpr char kSpmShimFileName[] = "libdserve_spm_shim.so";

// Where the shim is looked for when no explicit path is given, in order:
// <exe>.runfiles/dserve/worker/models/text/<shim>, $RUNFILES_DIR/dserve/...,
// $TEST_SRCDIR/dserve/..., <dir of exe>/<shim> (the deploy image layout),
// worker/models/text/<shim> under bazel-bin/ relative to the cwd.
std::vector<std::string> SpmShimCandidates();

class SentencePieceModel {
 public:
  // Parses a serialized model (the bytes of spiece.model). `shim_path`:
  // the shim to load, or empty for SpmShimCandidates(). NotFound /
  // FailedPrecondition name the shim path(s) when the shim cannot be found,
  // dlopen()ed or lacks a symbol; InvalidArgument when the bytes are not a
  // model.
  static absl::StatusOr<std::unique_ptr<SentencePieceModel>> Load(
      std::string_view model_proto, const std::string& shim_path = "");

  // As Load with the default shim; on failure returns null and sets *error.
  static std::unique_ptr<SentencePieceModel> Create(
      std::string_view model_proto, std::string* error);

  ~SentencePieceModel();
  SentencePieceModel(const SentencePieceModel&) = delete;
  SentencePieceModel& operator=(const SentencePieceModel&) = delete;

  // Piece ids of `text` (no special tokens added). False + *error on
  // failure.
  bool Encode(std::string_view text, std::vector<int>* ids,
              std::string* error) const;

  int piece_size() const;
  int eos_id() const;  // -1 if the model has none
  int pad_id() const;
  std::string IdToPiece(int id) const;

 private:
  SentencePieceModel(const spm_internal::ShimLibrary* shim, void* handle);
  const spm_internal::ShimLibrary* shim_;  // process-lifetime, not owned
  void* handle_;                           // owned (shim's free)
};

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_TEXT_SENTENCEPIECE_MODEL_H_
