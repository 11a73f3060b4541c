#include "worker/models/checkpoint/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>

namespace dserve::models::checkpoint {

absl::StatusOr<std::shared_ptr<const MappedFile>> MappedFile::Open(
    const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::InternalError(
        absl::StrCat("cannot stat ", path, ": ", std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  uint8_t* data = nullptr;
  if (size > 0) {
    // MAP_NORESERVE: a private writable mapping of a large checkpoint must
    // not be charged as anonymous memory up front; pages are only copied if
    // someone writes to a weight in place.
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_NORESERVE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat("cannot mmap ", path, " (",
                                              size, " bytes): ",
                                              std::strerror(err)));
    }
    data = static_cast<uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
  return std::shared_ptr<const MappedFile>(
      new MappedFile(path, data, size));
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

namespace {

// Owns one reference to the mapping for as long as a storage uses it.
struct KeepAlive {
  std::shared_ptr<const MappedFile> file;
};

void DeleteKeepAlive(void* ctx) { delete static_cast<KeepAlive*>(ctx); }

}  // namespace

at::Tensor TensorView(const std::shared_ptr<const MappedFile>& file,
                      uint64_t offset, uint64_t bytes, at::ScalarType dtype,
                      const std::vector<int64_t>& sizes,
                      const std::vector<int64_t>& strides) {
  const at::TensorOptions options = at::TensorOptions().dtype(dtype);
  const size_t element = c10::elementSize(dtype);
  // Writable through MAP_PRIVATE (copy-on-write), so handing out a non-const
  // pointer is safe.
  uint8_t* start = const_cast<uint8_t*>(file->data()) + offset;
  if (bytes == 0 || file->data() == nullptr) {
    return at::empty_strided(sizes, strides, options);
  }
  if (reinterpret_cast<uintptr_t>(start) % element != 0) {
    at::Tensor owned = at::empty({static_cast<int64_t>(bytes / element)},
                                 options);
    std::memcpy(owned.data_ptr(), start, bytes);
    return owned.as_strided(sizes, strides);
  }
  auto* keep = new KeepAlive{file};
  c10::DataPtr data_ptr(start, keep, &DeleteKeepAlive, c10::Device(c10::kCPU));
  c10::Storage storage(c10::Storage::use_byte_size_t(), bytes,
                       std::move(data_ptr), /*allocator=*/nullptr,
                       /*resizable=*/false);
  return at::empty({0}, options).set_(storage, 0, sizes, strides);
}

uint64_t ReleaseMappedPages(const at::Tensor& t) {
  if (!t.defined() || !t.has_storage() || !t.device().is_cpu()) return 0;
  const c10::Storage& storage = t.storage();
  const c10::DataPtr& ptr = storage.data_ptr();
  if (ptr.get_deleter() != &DeleteKeepAlive || ptr.get_context() == nullptr) {
    return 0;
  }
  const MappedFile& file =
      *static_cast<const KeepAlive*>(ptr.get_context())->file;
  const uintptr_t map_begin = reinterpret_cast<uintptr_t>(file.data());
  const uintptr_t map_end = map_begin + file.size();
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  uintptr_t begin = reinterpret_cast<uintptr_t>(ptr.get());
  uintptr_t end = begin + storage.nbytes();
  begin = std::max(map_begin, begin / page * page);
  end = std::min(map_end, (end + page - 1) / page * page);
  // The mapping's start is page-aligned; its end may not be, and madvise
  // takes a length that it rounds up to whole pages itself.
  if (end <= begin) return 0;
  if (::madvise(reinterpret_cast<void*>(begin), end - begin,
                MADV_DONTNEED) != 0) {
    return 0;
  }
  return end - begin;
}

}  // namespace dserve::models::checkpoint
