#ifndef DSERVE_FUZZ_FUZZ_CHECK_H_
#define DSERVE_FUZZ_FUZZ_CHECK_H_

// What the fuzz targets share: FUZZ_CHECK (an invariant of the code under
// test; a violation aborts so libFuzzer records the input as a crash) and
// MemFile (an in-memory file with a path, for readers that take a path).
//
// Harness code only (fuzz/); single-threaded like libFuzzer's loop.

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#define FUZZ_CHECK(cond, ...)                                          \
  do {                                                                 \
    if (!(cond)) {                                                     \
      std::fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, \
                   __LINE__, #cond);                                   \
      std::fprintf(stderr, __VA_ARGS__);                               \
      std::fprintf(stderr, "\n");                                      \
      std::abort();                                                    \
    }                                                                  \
  } while (0)

namespace dserve::fuzz {

// A memfd reachable as /proc/self/fd/N. Set() replaces its whole content.
class MemFile {
 public:
  explicit MemFile(const char* name) : fd_(memfd_create(name, 0)) {
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;

  void Set(const uint8_t* data, size_t size) {
    if (ftruncate(fd_, 0) != 0 ||
        (size > 0 && pwrite(fd_, data, size, 0) != static_cast<ssize_t>(size))) {
      std::perror("memfd write");
      std::abort();
    }
  }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

}  // namespace dserve::fuzz

#endif  // DSERVE_FUZZ_FUZZ_CHECK_H_
