#ifndef DSERVE_WORKER_MODELS_TEXT_SPM_SHIM_H_
#define DSERVE_WORKER_MODELS_TEXT_SPM_SHIM_H_

// The C ABI of libdserve_spm_shim.so, the only object that links Debian's
// libsentencepiece. sentencepiece_model.cc dlopen()s the shim with
// RTLD_LOCAL | RTLD_DEEPBIND so libsentencepiece's embedded protobuf 3.14
// binds to itself and never meets the process's libprotobuf (README.md).
//
// Strings and id arrays returned through out-parameters are malloc()ed and
// owned by the caller (free with dserve_spm_free_buffer). A handle is
// immutable after load: every call but dserve_spm_free is thread-safe.

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Bumped on any change to the functions below.
#define DSERVE_SPM_SHIM_ABI 1
int dserve_spm_abi_version(void);

// Parses a serialized model. Null + *error on failure.
void* dserve_spm_load(const char* model_proto, size_t size, char** error);
void dserve_spm_free(void* handle);
void dserve_spm_free_buffer(void* buffer);

// Piece ids of text[0, size). 0 on success (*ids, *count set); else -1 and
// *error.
int dserve_spm_encode(const void* handle, const char* text, size_t size,
                      int** ids, size_t* count, char** error);
int dserve_spm_piece_size(const void* handle);
int dserve_spm_eos_id(const void* handle);
int dserve_spm_pad_id(const void* handle);
// The piece of `id` (NUL-terminated), "" for an id out of range.
char* dserve_spm_id_to_piece(const void* handle, int id);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // DSERVE_WORKER_MODELS_TEXT_SPM_SHIM_H_
