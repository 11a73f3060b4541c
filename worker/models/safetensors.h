#ifndef DSERVE_WORKER_MODELS_SAFETENSORS_H_
#define DSERVE_WORKER_MODELS_SAFETENSORS_H_

// Reader and writer for the safetensors format, the format published DiT
// checkpoints ship in:
//   [u64 little-endian header length N][N bytes of JSON header][raw data]
// The header maps each tensor name to {"dtype", "shape", "data_offsets":
// [begin, end)} relative to the start of the data; an optional
// "__metadata__" entry holds string pairs.
//
// Supported dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL.
// Functions are stateless and thread-safe; they block on file I/O.
//
// Reading memory-maps the file (checkpoint/mapped_file.h): every tensor
// returned is a CPU view into the mapping, and the returned WeightMap's
// tensors hold the mapping (it is unmapped when the last of them, or of any
// view of them, is gone). Nothing is copied at load time; pages are read on
// first touch, so a rank that uses part of a checkpoint reads only that part.
// The mapping is private copy-on-write: in-place ops on a weight never reach
// the file. Do not truncate or rewrite a file in place while its weights are
// alive (accessing a page past a truncated end raises SIGBUS); replace it by
// writing a new file and renaming, as WriteSafetensors callers do.

#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/models/model_config.h"

namespace dserve::models {

// Selects which keys a reader returns (null = all). Every header entry is
// still validated; unselected tensors are just not returned.
using KeyFilter = std::function<bool(const std::string& key)>;

// Reads every tensor of `path` (those `keep` selects). Errors (NOT_FOUND for
// a missing file, DATA_LOSS for a corrupt or truncated one, INVALID_ARGUMENT
// for an unsupported dtype) name the file and, where one is at fault, the
// key.
absl::StatusOr<WeightMap> ReadSafetensors(const std::string& path,
                                          const KeyFilter& keep = nullptr);

// Writes `weights` (any device; copied to CPU, made contiguous) in key order
// with the header padded to 8 bytes, so equal inputs give equal bytes.
absl::Status WriteSafetensors(
    const WeightMap& weights, const std::string& path,
    const std::map<std::string, std::string>& metadata = {});

// Reads a sharded checkpoint through its Hugging Face style index
// ({"weight_map": {"<key>": "<shard file>", ...}}; shard paths relative to
// the index's directory), as large DiTs ship. Every key the index names must
// be in its shard (DATA_LOSS naming key and shard otherwise); each shard is
// read once; a shard holding no selected key is not opened. A shard name
// that is absolute or has a ".." component is refused (INVALID_ARGUMENT
// naming the shard), so an index cannot read files outside its directory.
absl::StatusOr<WeightMap> ReadSafetensorsIndex(const std::string& index_path,
                                               const KeyFilter& keep = nullptr);

// checkpoint::ReleaseMappedPages for every tensor of `weights`: the pages
// of memory-mapped views that were read leave this process's RSS (the views
// stay valid and re-read on use); other tensors are not touched. Call once
// what is kept has been materialised from them.
void ReleaseMappedPages(const WeightMap& weights);

// The "__metadata__" entry of `path` (empty if absent).
absl::StatusOr<std::map<std::string, std::string>> ReadSafetensorsMetadata(
    const std::string& path);

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_SAFETENSORS_H_
