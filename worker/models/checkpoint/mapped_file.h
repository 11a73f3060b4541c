#ifndef DSERVE_WORKER_MODELS_CHECKPOINT_MAPPED_FILE_H_
#define DSERVE_WORKER_MODELS_CHECKPOINT_MAPPED_FILE_H_

// A read-only view of a whole file through mmap(2), and CPU tensors that are
// views into it. Checkpoint readers (safetensors, torch.save .pth) use this so
// loading a multi-GB checkpoint costs page-cache pages, not a second copy, and
// a rank that touches only its shard of the weights faults in only those
// pages.
//
// Ownership: a MappedFile owns the mapping; it is unmapped when the last
// shared_ptr goes. Every tensor made by TensorView holds such a shared_ptr in
// its storage deleter, so a WeightMap of views keeps its file mapped for as
// long as any of its tensors (or views of them) live.
//
// The mapping is MAP_PRIVATE and writable: an in-place op on a weight tensor
// copies the touched page (copy-on-write) and never writes to the file.
// Thread-safety: immutable after Open; safe to share across threads. Open
// blocks on the file system (open + fstat + mmap; no data is read).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include <ATen/core/Tensor.h>

namespace dserve::models::checkpoint {

class MappedFile {
 public:
  // NOT_FOUND if `path` cannot be opened; INTERNAL if it cannot be mapped.
  // An empty file maps to size() == 0 and data() == nullptr.
  static absl::StatusOr<std::shared_ptr<const MappedFile>> Open(
      const std::string& path);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  MappedFile(std::string path, uint8_t* data, uint64_t size)
      : path_(std::move(path)), data_(data), size_(size) {}

  std::string path_;
  uint8_t* data_;
  uint64_t size_;
};

// A CPU tensor of `dtype` viewing bytes [offset, offset + bytes) of `file`
// with the given sizes and strides (element units; storage_offset is applied
// by the caller through `offset`). The storage covers `bytes`, which the
// caller has checked lies inside the file and covers every element the
// sizes/strides reach. If the start is not aligned to the element size the
// bytes are copied into an owned tensor instead (a view would be misaligned).
at::Tensor TensorView(const std::shared_ptr<const MappedFile>& file,
                      uint64_t offset, uint64_t bytes, at::ScalarType dtype,
                      const std::vector<int64_t>& sizes,
                      const std::vector<int64_t>& strides);

// If `t` is a view made by TensorView (or a view of one), drops the pages of
// the mapping under its storage from this process (madvise MADV_DONTNEED):
// they stop counting in its RSS, the tensor stays valid, and a later read
// faults them in again from the page cache. A loader calls it once it has
// materialised what it keeps from a weight, so the rank's peak RSS is what
// it keeps, not the file it read. The range is widened to whole pages, which
// may drop neighbouring weights' pages too (re-read on use). Copy-on-write
// pages (a weight written in place) would revert to the file's bytes, so
// call it only on weights nobody writes. Returns the bytes advised; 0 for
// any tensor that is not a mapped view (owned memory is never touched).
uint64_t ReleaseMappedPages(const at::Tensor& t);

}  // namespace dserve::models::checkpoint

#endif  // DSERVE_WORKER_MODELS_CHECKPOINT_MAPPED_FILE_H_
