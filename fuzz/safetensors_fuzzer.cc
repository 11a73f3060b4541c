// Fuzzes the safetensors reader (worker/models/safetensors.cc): the input is
// a whole .safetensors file, read through a memfd path as ReadSafetensors
// maps real checkpoints.
//
// Invariants: every returned tensor lies inside the file (all its bytes are
// read, so a view past the mapping faults); a file that reads back is
// written again by WriteSafetensors and reads back to the same keys, dtypes,
// shapes and bytes; the metadata reader agrees with the tensor reader on
// whether the file is valid.

#include <cstdint>
#include <cstring>
#include <string>

#include "fuzz/fuzz_check.h"
#include "worker/models/safetensors.h"
#include <ATen/ATen.h>

namespace {

// Sum of all bytes of a tensor: touches every element it views.
uint64_t ByteSum(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  const auto* p = static_cast<const uint8_t*>(c.data_ptr());
  const size_t n = c.numel() * c.element_size();
  uint64_t sum = 0;
  for (size_t i = 0; i < n; ++i) sum += p[i];
  return sum;
}

bool SameBytes(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor ca = a.contiguous();
  const at::Tensor cb = b.contiguous();
  const size_t n = ca.numel() * ca.element_size();
  return n == static_cast<size_t>(cb.numel() * cb.element_size()) &&
         (n == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), n) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto* const file = new dserve::fuzz::MemFile("fuzz.safetensors");
  static auto* const copy = new dserve::fuzz::MemFile("copy.safetensors");
  file->Set(data, size);
  absl::StatusOr<dserve::models::WeightMap> weights =
      dserve::models::ReadSafetensors(file->path());
  absl::StatusOr<std::map<std::string, std::string>> metadata =
      dserve::models::ReadSafetensorsMetadata(file->path());
  if (!weights.ok()) return 0;
  FUZZ_CHECK(metadata.ok(), "tensors read but metadata refused: %s",
             metadata.status().ToString().c_str());
  uint64_t sum = 0;
  for (const auto& [key, tensor] : *weights) sum += ByteSum(tensor);
  (void)sum;

  copy->Set(nullptr, 0);
  const absl::Status written =
      dserve::models::WriteSafetensors(*weights, copy->path(), *metadata);
  FUZZ_CHECK(written.ok(), "read file does not write back: %s",
             written.ToString().c_str());
  absl::StatusOr<dserve::models::WeightMap> again =
      dserve::models::ReadSafetensors(copy->path());
  FUZZ_CHECK(again.ok(), "written file does not read: %s",
             again.status().ToString().c_str());
  FUZZ_CHECK(again->size() == weights->size(), "%zu keys, then %zu",
             weights->size(), again->size());
  for (const auto& [key, tensor] : *weights) {
    auto it = again->find(key);
    FUZZ_CHECK(it != again->end(), "key %s lost", key.c_str());
    FUZZ_CHECK(it->second.scalar_type() == tensor.scalar_type() &&
                   it->second.sizes() == tensor.sizes() &&
                   SameBytes(it->second, tensor),
               "key %s changed in a write/read round trip", key.c_str());
  }
  return 0;
}
