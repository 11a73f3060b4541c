#ifndef DSERVE_COMMON_SERVED_MODELS_H_
#define DSERVE_COMMON_SERVED_MODELS_H_

// Which models a server (and each of its workers) serves, from the command
// line, as one validated list. Shared by dserve_server (which resolves its
// --model / --model_repository / --model_dir / --default_model flags) and
// dserve_worker (which is handed --model=NAME=DIR per model and
// --default_model by the server).
//
//   --model=NAME=DIR        one model named NAME from DIR (repeatable);
//   --model=dserve-tiny-shapes
//                           the built-in model (its shipped weights);
//   --model_repository=DIR  every subfolder of DIR is a model named after
//                           the subfolder (hidden entries and lost+found
//                           skipped);
//   --model_dir=DIR         one model under the name in its own config
//                           (the single-model form; not combinable);
//   nothing                 the built-in model alone.
// The default model (what a request with an empty `model` runs) is
// --default_model, else the first --model, else the repository's first
// subfolder in name order.
//
// Pure functions on values, except ScanModelRepository and
// CheckModelDirectory, which read the file system (a few stat() calls and a
// directory listing). Thread-safe.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dserve::common {

// The model a server serves when it is given none (its weights ship in
// //worker/models/default_model; worker/models/model_config.h names it).
inline constexpr char kBuiltinModelName[] = "dserve-tiny-shapes";
// Longest served model name.
inline constexpr int kMaxModelNameChars = 64;

struct ModelSpec {
  // The served name (what GenerateRequest.model names). Empty only for the
  // single-model --model_dir form: the model keeps the name in its config.
  std::string name;
  // The model directory (dserve, Wan release or diffusers layout); empty =
  // the built-in model.
  std::string dir;
  // Where it came from, for errors: "--model=wan=/models/wan",
  // "--model_repository=/models (subfolder wan)". Empty on the worker.
  std::string source;
};

// 1 to 64 characters of [A-Za-z0-9._-], the first a letter or a digit.
// INVALID_ARGUMENT "<what>: model name \"...\" ..." naming what is allowed
// (`what` names the flag or folder the name came from).
absl::Status ValidateModelName(absl::string_view name, absl::string_view what);

// The value of one server --model flag: "NAME=DIR" with DIR non-empty, or
// the built-in model's bare name (then `dir` is empty).
absl::StatusOr<ModelSpec> ParseModelFlag(absl::string_view text);

// The value of one worker --model flag: "NAME=DIR", DIR empty = the
// built-in model under NAME (the server resolved everything else).
absl::StatusOr<ModelSpec> ParseWorkerModelFlag(absl::string_view text);

// "NAME=DIR", as ParseWorkerModelFlag reads it.
std::string FormatWorkerModelFlag(const ModelSpec& spec);

// Every subfolder of `dir` (symlinks to folders count), sorted by name, as
// a model named after it with `dir`/<name> as its directory. Hidden entries
// (".*") and "lost+found" are skipped; a subfolder whose name is not a
// valid model name, a `dir` that is not a folder, and a repository with no
// model are INVALID_ARGUMENT naming --model_repository.
absl::StatusOr<std::vector<ModelSpec>> ScanModelRepository(
    const std::string& dir);

// The server's model flags as given.
struct ModelFlags {
  // Every --model value, in command-line order.
  std::vector<std::string> models;
  std::string model_repository;
  std::string default_model;
  std::string model_dir;
};

struct ServedModels {
  // Non-empty; --model entries first, then the repository's.
  std::vector<ModelSpec> models;
  // A name from `models`; empty only for the --model_dir form (the model's
  // own name, known once a worker loaded it).
  std::string default_model;
};

// Resolves the flags into the served list (see the file comment). Errors
// name the flag: a malformed --model, a bad name, a name served twice, a
// --default_model that is not served, --model_dir mixed with the others.
// Reads the file system only to scan --model_repository.
absl::StatusOr<ServedModels> ResolveServedModels(const ModelFlags& flags);

// Names valid and unique, and `default_model` ("" = none named) one of
// them. The worker checks what the server handed it with this.
absl::Status CheckModelList(const std::vector<ModelSpec>& models,
                            absl::string_view default_model);

// FAILED_PRECONDITION naming `flag_text` and the files looked for unless
// `dir` holds a model marker: config.json (dserve or Wan release layout) or
// model_index.json (diffusers). The workers check the rest when they load.
absl::Status CheckModelDirectory(const std::string& dir,
                                 absl::string_view flag_text);

// "a, b, c" (at most 16 names, then "and N more").
std::string JoinModelNames(const std::vector<ModelSpec>& models);

}  // namespace dserve::common

#endif  // DSERVE_COMMON_SERVED_MODELS_H_
