// libdserve_spm_shim.so: Debian's libsentencepiece behind the C ABI of
// spm_shim.h. Standard library only (sentencepiece_processor.h redefines
// absl::string_view, and this object must not link protobuf or abseil).

#include "worker/models/text/spm_shim.h"

#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

using sentencepiece::SentencePieceProcessor;

char* CopyString(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out != nullptr) std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

const SentencePieceProcessor* Processor(const void* handle) {
  return static_cast<const SentencePieceProcessor*>(handle);
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int dserve_spm_abi_version(void) {
  return DSERVE_SPM_SHIM_ABI;
}

__attribute__((visibility("default"))) void* dserve_spm_load(
    const char* model_proto, size_t size, char** error) {
  auto* processor = new SentencePieceProcessor();
  const auto status =
      processor->LoadFromSerializedProto(std::string_view(model_proto, size));
  if (!status.ok()) {
    *error = CopyString(status.ToString());
    delete processor;
    return nullptr;
  }
  return processor;
}

__attribute__((visibility("default"))) void dserve_spm_free(void* handle) {
  delete static_cast<SentencePieceProcessor*>(handle);
}

__attribute__((visibility("default"))) void dserve_spm_free_buffer(
    void* buffer) {
  std::free(buffer);
}

__attribute__((visibility("default"))) int dserve_spm_encode(
    const void* handle, const char* text, size_t size, int** ids,
    size_t* count, char** error) {
  std::vector<int> out;
  const auto status =
      Processor(handle)->Encode(std::string_view(text, size), &out);
  if (!status.ok()) {
    *error = CopyString(status.ToString());
    return -1;
  }
  *count = out.size();
  *ids = static_cast<int*>(std::malloc(sizeof(int) * (out.empty() ? 1 : out.size())));
  if (*ids == nullptr) {
    *error = CopyString("out of memory");
    return -1;
  }
  if (!out.empty()) std::memcpy(*ids, out.data(), sizeof(int) * out.size());
  return 0;
}

__attribute__((visibility("default"))) int dserve_spm_piece_size(
    const void* handle) {
  return Processor(handle)->GetPieceSize();
}

__attribute__((visibility("default"))) int dserve_spm_eos_id(
    const void* handle) {
  return Processor(handle)->eos_id();
}

__attribute__((visibility("default"))) int dserve_spm_pad_id(
    const void* handle) {
  return Processor(handle)->pad_id();
}

__attribute__((visibility("default"))) char* dserve_spm_id_to_piece(
    const void* handle, int id) {
  const SentencePieceProcessor* p = Processor(handle);
  if (id < 0 || id >= p->GetPieceSize()) return CopyString("");
  return CopyString(p->IdToPiece(id));
}

}  // extern "C"
