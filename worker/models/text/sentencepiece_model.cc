#include "worker/models/text/sentencepiece_model.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/models/text/spm_shim.h"

namespace dserve::models {
namespace spm_internal {

// One dlopen()ed shim. Never dlclose()d: libsentencepiece keeps static state.
struct ShimLibrary {
  void* dl = nullptr;
  int (*abi_version)() = nullptr;
  void* (*load)(const char*, size_t, char**) = nullptr;
  void (*free_handle)(void*) = nullptr;
  void (*free_buffer)(void*) = nullptr;
  int (*encode)(const void*, const char*, size_t, int**, size_t*,
                char**) = nullptr;
  int (*piece_size)(const void*) = nullptr;
  int (*eos_id)(const void*) = nullptr;
  int (*pad_id)(const void*) = nullptr;
  char* (*id_to_piece)(const void*, int) = nullptr;
};

}  // namespace spm_internal

namespace {

using spm_internal::ShimLibrary;

constexpr char kRunfilesShim[] = "dserve/worker/models/text/";

std::string TakeString(const ShimLibrary& shim, char* s) {
  if (s == nullptr) return "";
  std::string out(s);
  shim.free_buffer(s);
  return out;
}

template <typename Fn>
absl::Status Resolve(void* dl, const std::string& path, const char* name,
                     Fn* fn) {
  dlerror();
  void* sym = dlsym(dl, name);
  if (sym == nullptr) {
    const char* err = dlerror();
    return absl::FailedPreconditionError(
        absl::StrCat("SentencePiece shim ", path, ": no symbol ", name, ": ",
                     err == nullptr ? "null" : err));
  }
  *fn = reinterpret_cast<Fn>(sym);
  return absl::OkStatus();
}

absl::StatusOr<const ShimLibrary*> OpenShim(const std::string& path) {
  static std::mutex mu;
  static auto* opened = new std::map<std::string, const ShimLibrary*>();
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = opened->find(path); it != opened->end()) return it->second;
  void* dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (dl == nullptr) {
    const char* err = dlerror();
    return absl::FailedPreconditionError(
        absl::StrCat("SentencePiece shim ", path, ": dlopen failed: ",
                     err == nullptr ? "unknown error" : err));
  }
  auto shim = std::make_unique<ShimLibrary>();
  shim->dl = dl;
  absl::Status s = Resolve(dl, path, "dserve_spm_abi_version",
                           &shim->abi_version);
  if (s.ok()) s = Resolve(dl, path, "dserve_spm_load", &shim->load);
  if (s.ok()) s = Resolve(dl, path, "dserve_spm_free", &shim->free_handle);
  if (s.ok()) {
    s = Resolve(dl, path, "dserve_spm_free_buffer", &shim->free_buffer);
  }
  if (s.ok()) s = Resolve(dl, path, "dserve_spm_encode", &shim->encode);
  if (s.ok()) {
    s = Resolve(dl, path, "dserve_spm_piece_size", &shim->piece_size);
  }
  if (s.ok()) s = Resolve(dl, path, "dserve_spm_eos_id", &shim->eos_id);
  if (s.ok()) s = Resolve(dl, path, "dserve_spm_pad_id", &shim->pad_id);
  if (s.ok()) {
    s = Resolve(dl, path, "dserve_spm_id_to_piece", &shim->id_to_piece);
  }
  if (s.ok() && shim->abi_version() != DSERVE_SPM_SHIM_ABI) {
    s = absl::FailedPreconditionError(absl::StrCat(
        "SentencePiece shim ", path, ": ABI version ", shim->abi_version(),
        ", this binary needs ", DSERVE_SPM_SHIM_ABI));
  }
  if (!s.ok()) {
    dlclose(dl);
    return s;
  }
  const ShimLibrary* result = shim.release();
  (*opened)[path] = result;
  return result;
}

absl::StatusOr<std::string> FindShim() {
  const std::vector<std::string> candidates = SpmShimCandidates();
  for (const std::string& path : candidates) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(path, ec)) return path;
  }
  return absl::NotFoundError(absl::StrCat(
      "SentencePiece shim ", kSpmShimFileName, " not found; looked in ",
      absl::StrJoin(candidates, ", "),
      ". Depend on //worker/models/text:sentencepiece_model (it carries the "
      "shim as data) or pass the shim path."));
}

}  // namespace

std::vector<std::string> SpmShimCandidates() {
  std::vector<std::string> out;
  std::error_code ec;
  const std::filesystem::path exe =
      std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec && !exe.empty()) {
    out.push_back(absl::StrCat(exe.string(), ".runfiles/", kRunfilesShim,
                               kSpmShimFileName));
  }
  for (const char* var : {"RUNFILES_DIR", "TEST_SRCDIR"}) {
    const char* dir = std::getenv(var);
    if (dir != nullptr && *dir != '\0') {
      out.push_back(absl::StrCat(dir, "/", kRunfilesShim, kSpmShimFileName));
    }
  }
  if (!ec && !exe.empty()) {
    out.push_back((exe.parent_path() / kSpmShimFileName).string());
  }
  out.push_back(absl::StrCat("bazel-bin/worker/models/text/", kSpmShimFileName));
  return out;
}

SentencePieceModel::SentencePieceModel(const spm_internal::ShimLibrary* shim,
                                       void* handle)
    : shim_(shim), handle_(handle) {}

SentencePieceModel::~SentencePieceModel() { shim_->free_handle(handle_); }

absl::StatusOr<std::unique_ptr<SentencePieceModel>> SentencePieceModel::Load(
    std::string_view model_proto, const std::string& shim_path) {
  std::string path = shim_path;
  if (path.empty()) {
    absl::StatusOr<std::string> found = FindShim();
    if (!found.ok()) return found.status();
    path = *std::move(found);
  }
  absl::StatusOr<const ShimLibrary*> shim = OpenShim(path);
  if (!shim.ok()) return shim.status();
  char* error = nullptr;
  void* handle =
      (*shim)->load(model_proto.data(), model_proto.size(), &error);
  if (handle == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a SentencePiece model (", model_proto.size(),
                     " bytes): ", TakeString(**shim, error)));
  }
  return std::unique_ptr<SentencePieceModel>(
      new SentencePieceModel(*shim, handle));
}

std::unique_ptr<SentencePieceModel> SentencePieceModel::Create(
    std::string_view model_proto, std::string* error) {
  absl::StatusOr<std::unique_ptr<SentencePieceModel>> model =
      Load(model_proto);
  if (!model.ok()) {
    *error = std::string(model.status().message());
    return nullptr;
  }
  return *std::move(model);
}

bool SentencePieceModel::Encode(std::string_view text, std::vector<int>* ids,
                                std::string* error) const {
  int* out = nullptr;
  size_t count = 0;
  char* err = nullptr;
  if (shim_->encode(handle_, text.data(), text.size(), &out, &count, &err) !=
      0) {
    *error = TakeString(*shim_, err);
    return false;
  }
  ids->assign(out, out + count);
  shim_->free_buffer(out);
  return true;
}

int SentencePieceModel::piece_size() const {
  return shim_->piece_size(handle_);
}
int SentencePieceModel::eos_id() const { return shim_->eos_id(handle_); }
int SentencePieceModel::pad_id() const { return shim_->pad_id(handle_); }
std::string SentencePieceModel::IdToPiece(int id) const {
  return TakeString(*shim_, shim_->id_to_piece(handle_, id));
}

}  // namespace dserve::models
