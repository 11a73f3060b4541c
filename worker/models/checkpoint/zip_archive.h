#ifndef DSERVE_WORKER_MODELS_CHECKPOINT_ZIP_ARCHIVE_H_
#define DSERVE_WORKER_MODELS_CHECKPOINT_ZIP_ARCHIVE_H_

// The central directory of a zip archive whose entries are STORED (not
// compressed), as torch.save writes them: for each entry, where its bytes lie
// in the file. ZIP64 (archives or entries over 4 GiB, e.g. the 11 GB umT5-XXL
// .pth) is supported. Compressed, encrypted or multi-disk entries are
// refused with an error naming the entry.
//
// A plain value; reading blocks on nothing (the file is already mapped).

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "worker/models/checkpoint/mapped_file.h"

namespace dserve::models::checkpoint {

struct ZipEntry {
  uint64_t data_offset = 0;  // from the start of the file
  uint64_t size = 0;
};

// Entry name → location. DATA_LOSS (naming the file and entry) for a
// malformed archive or an entry whose data lies outside the file;
// UNIMPLEMENTED for a compressed or encrypted entry.
absl::StatusOr<std::map<std::string, ZipEntry>> ReadZipDirectory(
    const MappedFile& file);

}  // namespace dserve::models::checkpoint

#endif  // DSERVE_WORKER_MODELS_CHECKPOINT_ZIP_ARCHIVE_H_
