#ifndef DSERVE_WORKER_MODELS_CHECKPOINT_PTH_READER_H_
#define DSERVE_WORKER_MODELS_CHECKPOINT_PTH_READER_H_

// Reads a state dict saved by `torch.save(state_dict, path)` (the zip format
// of PyTorch >= 1.6), as Wan2.1 ships its umT5 encoder
// (models_t5_umt5-xxl-enc-bf16.pth) and VAE (Wan2.1_VAE.pth). LibTorch 1.13's
// torch::pickle_load rejects these (an OrderedDict with a `_metadata`
// attribute), so this is a small reader of its own:
//   - the zip central directory (zip_archive.h; stored entries, ZIP64);
//   - <archive>/data.pkl interpreted with the pickle opcodes a state dict
//     uses (protocol 2..5 framing; OrderedDict, torch._utils.
//     _rebuild_tensor_v2 (and _rebuild_parameter), torch.<Type>Storage
//     persistent ids, containers,
//     ints, floats, strings, bools, None, memo). Any other opcode or global
//     is an error naming it, so arbitrary pickles are never executed;
//   - every tensor is a memory-mapped view (storage offset, sizes, strides)
//     of its <archive>/data/<key> record; tensors sharing a storage view the
//     same bytes.
// The top-level object must be a dict (OrderedDict or dict) of string →
// tensor; `_metadata` (BUILD state) is accepted and ignored.
//
// Dtypes: the storages Double Float Half BFloat16 Long Int Short Char Byte
// Bool. The returned tensors hold the mapping (see safetensors.h: do not
// rewrite the file in place while they live). Stateless, thread-safe, blocks
// on the file system.

#include <string>

#include "absl/status/statusor.h"
#include "worker/models/model_config.h"
#include "worker/models/safetensors.h"

namespace dserve::models::checkpoint {

// Errors name the file and (where one is at fault) the key or opcode:
// NOT_FOUND (missing file), DATA_LOSS (malformed archive or pickle, a tensor
// reaching past its storage), UNIMPLEMENTED (compressed entries, an opcode
// or global outside the state-dict subset, big-endian data).
absl::StatusOr<WeightMap> ReadPth(const std::string& path,
                                  const KeyFilter& keep = nullptr);

}  // namespace dserve::models::checkpoint

#endif  // DSERVE_WORKER_MODELS_CHECKPOINT_PTH_READER_H_
