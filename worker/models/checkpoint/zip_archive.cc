#include "worker/models/checkpoint/zip_archive.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace dserve::models::checkpoint {
namespace {

constexpr uint32_t kEndOfCentralDir = 0x06054b50;
constexpr uint32_t kZip64EndOfCentralDir = 0x06064b50;
constexpr uint32_t kZip64Locator = 0x07064b50;
constexpr uint32_t kCentralHeader = 0x02014b50;
constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint16_t kZip64ExtraId = 0x0001;

// Little-endian reads from a bounds-checked cursor.
class Reader {
 public:
  Reader(const uint8_t* data, uint64_t size) : data_(data), size_(size) {}
  bool Has(uint64_t at, uint64_t n) const {
    return at <= size_ && n <= size_ - at;
  }
  uint64_t Le(uint64_t at, int bytes) const {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | data_[at + i];
    return v;
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
};

}  // namespace

absl::StatusOr<std::map<std::string, ZipEntry>> ReadZipDirectory(
    const MappedFile& file) {
  const std::string& path = file.path();
  auto corrupt = [&](const std::string& detail) {
    return absl::DataLossError(
        absl::StrCat("zip archive ", path, ": ", detail));
  };
  const uint64_t size = file.size();
  const Reader r(file.data(), size);
  if (size < 22) return corrupt("too short to be a zip archive");
  // The end-of-central-directory record is the last 22 bytes plus a comment
  // of at most 65535 bytes.
  uint64_t eocd = UINT64_MAX;
  const uint64_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
  for (uint64_t at = size - 22;; --at) {
    if (r.Le(at, 4) == kEndOfCentralDir) {
      eocd = at;
      break;
    }
    if (at == lowest) break;
  }
  if (eocd == UINT64_MAX) {
    return corrupt("no end-of-central-directory record (not a zip file?)");
  }
  if (r.Le(eocd + 4, 2) != 0 || r.Le(eocd + 6, 2) != 0) {
    return corrupt("multi-disk archives are not supported");
  }
  uint64_t count = r.Le(eocd + 10, 2);
  uint64_t dir_size = r.Le(eocd + 12, 4);
  uint64_t dir_offset = r.Le(eocd + 16, 4);
  if (count == 0xFFFF || dir_size == 0xFFFFFFFF || dir_offset == 0xFFFFFFFF) {
    // ZIP64: a locator just before the record points at the real one.
    if (eocd < 20 || r.Le(eocd - 20, 4) != kZip64Locator) {
      return corrupt("ZIP64 sizes without a ZIP64 locator");
    }
    const uint64_t z = r.Le(eocd - 20 + 8, 8);
    if (!r.Has(z, 56) || r.Le(z, 4) != kZip64EndOfCentralDir) {
      return corrupt(absl::StrCat("no ZIP64 end-of-central-directory at ", z));
    }
    count = r.Le(z + 32, 8);
    dir_size = r.Le(z + 40, 8);
    dir_offset = r.Le(z + 48, 8);
  }
  if (!r.Has(dir_offset, dir_size)) {
    return corrupt(absl::StrCat("central directory [", dir_offset, ", +",
                                dir_size, ") is outside the file of ", size,
                                " bytes"));
  }
  std::map<std::string, ZipEntry> entries;
  uint64_t at = dir_offset;
  for (uint64_t i = 0; i < count; ++i) {
    if (!r.Has(at, 46) || r.Le(at, 4) != kCentralHeader) {
      return corrupt(absl::StrCat("central directory entry ", i,
                                  " is malformed"));
    }
    const uint64_t flags = r.Le(at + 8, 2);
    const uint64_t method = r.Le(at + 10, 2);
    uint64_t csize = r.Le(at + 20, 4);
    uint64_t usize = r.Le(at + 24, 4);
    const uint64_t name_len = r.Le(at + 28, 2);
    const uint64_t extra_len = r.Le(at + 30, 2);
    const uint64_t comment_len = r.Le(at + 32, 2);
    uint64_t local = r.Le(at + 42, 4);
    if (!r.Has(at + 46, name_len + extra_len + comment_len)) {
      return corrupt(absl::StrCat("central directory entry ", i,
                                  " runs past the file"));
    }
    const std::string name(reinterpret_cast<const char*>(file.data()) + at + 46,
                           name_len);
    // ZIP64 extra field: the 64-bit values of the fields saturated above,
    // in this order.
    for (uint64_t e = at + 46 + name_len; e + 4 <= at + 46 + name_len + extra_len;) {
      const uint64_t id = r.Le(e, 2);
      const uint64_t len = r.Le(e + 2, 2);
      if (e + 4 + len > at + 46 + name_len + extra_len) {
        return corrupt(absl::StrCat("entry \"", name, "\": bad extra field"));
      }
      if (id == kZip64ExtraId) {
        uint64_t p = e + 4;
        auto take = [&](uint64_t& field) -> bool {
          if (p + 8 > e + 4 + len) return false;
          field = r.Le(p, 8);
          p += 8;
          return true;
        };
        if ((usize == 0xFFFFFFFF && !take(usize)) ||
            (csize == 0xFFFFFFFF && !take(csize)) ||
            (local == 0xFFFFFFFF && !take(local))) {
          return corrupt(
              absl::StrCat("entry \"", name, "\": short ZIP64 extra field"));
        }
      }
      e += 4 + len;
    }
    if (flags & 1) {
      return absl::UnimplementedError(absl::StrCat(
          "zip archive ", path, ": entry \"", name, "\" is encrypted"));
    }
    if (method != 0) {
      return absl::UnimplementedError(absl::StrCat(
          "zip archive ", path, ": entry \"", name,
          "\" is compressed (method ", method,
          "); only stored entries are supported, as torch.save writes them"));
    }
    if (csize != usize) {
      return corrupt(absl::StrCat("stored entry \"", name, "\" has size ",
                                  usize, " but ", csize, " stored bytes"));
    }
    if (!r.Has(local, 30) || r.Le(local, 4) != kLocalHeader) {
      return corrupt(absl::StrCat("entry \"", name,
                                  "\": no local header at ", local));
    }
    const uint64_t data =
        local + 30 + r.Le(local + 26, 2) + r.Le(local + 28, 2);
    if (!r.Has(data, usize)) {
      return corrupt(absl::StrCat("entry \"", name, "\": data [", data, ", +",
                                  usize, ") is outside the file of ", size,
                                  " bytes"));
    }
    entries[name] = ZipEntry{data, usize};
    at += 46 + name_len + extra_len + comment_len;
  }
  return entries;
}

}  // namespace dserve::models::checkpoint
