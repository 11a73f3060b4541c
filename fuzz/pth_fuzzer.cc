// Fuzzes the torch.save (.pth) reader (worker/models/checkpoint/pth_reader.cc
// and zip_archive.cc): the input is a whole .pth file (zip + pickle), read
// through a memfd path as ReadPth maps real checkpoints.
//
// Invariants: every returned tensor's elements (sizes, strides, storage
// offset) lie inside its storage, and every storage inside the file (all its
// bytes are read, so a view past the mapping faults); keys are non-empty;
// errors are bounded.

#include <cstdint>
#include <string>

#include "fuzz/fuzz_check.h"
#include "worker/models/checkpoint/pth_reader.h"
#include <ATen/ATen.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto* const file = new dserve::fuzz::MemFile("fuzz.pth");
  file->Set(data, size);
  absl::StatusOr<dserve::models::WeightMap> weights =
      dserve::models::checkpoint::ReadPth(file->path());
  if (!weights.ok()) {
    FUZZ_CHECK(weights.status().message().size() <= 4096,
               "error message of %zu bytes",
               weights.status().message().size());
    return 0;
  }
  uint64_t sum = 0;
  for (const auto& [key, tensor] : *weights) {
    FUZZ_CHECK(!key.empty(), "empty key");
    FUZZ_CHECK(tensor.defined() && tensor.device().is_cpu(),
               "key %s: undefined or not a CPU tensor", key.c_str());
    // Every element the sizes/strides reach lies inside the storage...
    int64_t last = tensor.storage_offset();
    bool empty = false;
    for (int64_t d = 0; d < tensor.dim(); ++d) {
      FUZZ_CHECK(tensor.stride(d) >= 0, "key %s: negative stride", key.c_str());
      if (tensor.size(d) == 0) empty = true;
      else last += (tensor.size(d) - 1) * tensor.stride(d);
    }
    const int64_t storage_elems =
        tensor.storage().nbytes() / tensor.element_size();
    FUZZ_CHECK(empty || last < storage_elems,
               "key %s reaches element %lld of a %lld-element storage",
               key.c_str(), static_cast<long long>(last),
               static_cast<long long>(storage_elems));
    // ...and the storage inside the file: read all of it.
    const auto* p = static_cast<const uint8_t*>(tensor.storage().data());
    for (size_t i = 0; i < tensor.storage().nbytes(); ++i) sum += p[i];
  }
  (void)sum;
  return 0;
}
