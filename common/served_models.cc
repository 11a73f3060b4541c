#include "common/served_models.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/generation_limits.h"

namespace dserve::common {
namespace {

constexpr char kNameRule[] =
    "allowed: 1 to 64 characters of A-Z a-z 0-9 . _ -, starting with a "
    "letter or digit";

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
         c == '_' || c == '-';
}

}  // namespace

absl::Status ValidateModelName(absl::string_view name, absl::string_view what) {
  if (name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": the model name is empty (", kNameRule, ")"));
  }
  const bool valid =
      name.size() <= static_cast<size_t>(kMaxModelNameChars) &&
      absl::ascii_isalnum(static_cast<unsigned char>(name.front())) &&
      std::all_of(name.begin(), name.end(), IsNameChar);
  if (valid) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      what, ": model name \"", EchoValue(name), "\" is not valid (", kNameRule,
      ")"));
}

absl::StatusOr<ModelSpec> ParseModelFlag(absl::string_view text) {
  const std::string what = absl::StrCat("--model=", EchoValue(text));
  const size_t eq = text.find('=');
  if (eq == absl::string_view::npos) {
    if (text == kBuiltinModelName) {
      return ModelSpec{std::string(text), "", what};
    }
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": expected NAME=DIR (a model directory); only the built-in "
              "model may be named alone (--model=",
        kBuiltinModelName, ")"));
  }
  ModelSpec spec{std::string(text.substr(0, eq)),
                 std::string(text.substr(eq + 1)), what};
  if (absl::Status s = ValidateModelName(spec.name, what); !s.ok()) return s;
  if (spec.dir.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": the directory after '=' is empty; expected "
                           "NAME=DIR"));
  }
  return spec;
}

absl::StatusOr<ModelSpec> ParseWorkerModelFlag(absl::string_view text) {
  const std::string what = absl::StrCat("--model=", EchoValue(text));
  const size_t eq = text.find('=');
  if (eq == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": expected NAME=DIR (DIR empty = the built-in model)"));
  }
  ModelSpec spec{std::string(text.substr(0, eq)),
                 std::string(text.substr(eq + 1)), ""};
  if (absl::Status s = ValidateModelName(spec.name, what); !s.ok()) return s;
  return spec;
}

std::string FormatWorkerModelFlag(const ModelSpec& spec) {
  return absl::StrCat(spec.name, "=", spec.dir);
}

absl::StatusOr<std::vector<ModelSpec>> ScanModelRepository(
    const std::string& dir) {
  const std::string flag = absl::StrCat("--model_repository=", dir);
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": not a folder", ec ? " (" + ec.message() + ")" : ""));
  }
  std::vector<std::string> names;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": cannot list it: ", ec.message()));
  }
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": cannot list it: ", ec.message()));
    }
    const std::string name = it->path().filename().string();
    // Kubernetes volumes hold "..data"-style entries and ext4 roots a
    // lost+found; neither is a model.
    if (name.empty() || name.front() == '.' || name == "lost+found") continue;
    std::error_code type_ec;
    if (!std::filesystem::is_directory(it->path(), type_ec)) continue;
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  std::vector<ModelSpec> models;
  for (const std::string& name : names) {
    const std::string source = absl::StrCat(flag, " (subfolder ", name, ")");
    if (absl::Status s = ValidateModelName(name, source); !s.ok()) return s;
    models.push_back(
        ModelSpec{name, (std::filesystem::path(dir) / name).string(), source});
  }
  if (models.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": no model subfolders (each subfolder is a model named after "
              "it)"));
  }
  return models;
}

std::string JoinModelNames(const std::vector<ModelSpec>& models) {
  constexpr size_t kMaxListed = 16;
  std::vector<std::string> names;
  for (const ModelSpec& m : models) {
    if (names.size() == kMaxListed) {
      names.push_back(absl::StrCat("and ", models.size() - kMaxListed, " more"));
      break;
    }
    names.push_back(m.name);
  }
  return absl::StrJoin(names, ", ");
}

absl::Status CheckModelList(const std::vector<ModelSpec>& models,
                            absl::string_view default_model) {
  std::set<std::string> seen;
  for (const ModelSpec& m : models) {
    const std::string what =
        m.source.empty() ? absl::StrCat("--model=", EchoValue(m.name), "=",
                                        m.dir)
                         : m.source;
    if (absl::Status s = ValidateModelName(m.name, what); !s.ok()) return s;
    if (!seen.insert(m.name).second) {
      const auto first =
          std::find_if(models.begin(), models.end(),
                       [&m](const ModelSpec& o) { return o.name == m.name; });
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": model \"", m.name, "\" is served twice (also ",
          first->source.empty() ? first->dir : first->source,
          "); every model needs its own name"));
    }
  }
  if (!default_model.empty() && seen.count(std::string(default_model)) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--default_model=", EchoValue(default_model),
        " is not a served model (served: ", JoinModelNames(models), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ServedModels> ResolveServedModels(const ModelFlags& flags) {
  ServedModels out;
  if (!flags.model_dir.empty()) {
    if (!flags.models.empty() || !flags.model_repository.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--model_dir=", flags.model_dir,
          " serves one model and cannot be combined with --model or "
          "--model_repository; serve it as --model=NAME=",
          flags.model_dir, " instead"));
    }
    if (!flags.default_model.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--default_model=", EchoValue(flags.default_model),
          " needs --model or --model_repository; with --model_dir the one "
          "model is the default"));
    }
    out.models.push_back(
        ModelSpec{"", flags.model_dir, absl::StrCat("--model_dir=",
                                                    flags.model_dir)});
    return out;
  }
  for (const std::string& text : flags.models) {
    absl::StatusOr<ModelSpec> spec = ParseModelFlag(text);
    if (!spec.ok()) return spec.status();
    out.models.push_back(*std::move(spec));
  }
  if (!flags.model_repository.empty()) {
    absl::StatusOr<std::vector<ModelSpec>> found =
        ScanModelRepository(flags.model_repository);
    if (!found.ok()) return found.status();
    out.models.insert(out.models.end(), found->begin(), found->end());
  }
  if (out.models.empty()) {
    if (!flags.default_model.empty() &&
        flags.default_model != kBuiltinModelName) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--default_model=", EchoValue(flags.default_model),
          " is not a served model (no --model or --model_repository given, "
          "so the server serves only the built-in ",
          kBuiltinModelName, ")"));
    }
    out.models.push_back(ModelSpec{kBuiltinModelName, "", "(built-in)"});
  }
  if (absl::Status s = CheckModelList(out.models, flags.default_model);
      !s.ok()) {
    return s;
  }
  out.default_model = flags.default_model.empty() ? out.models.front().name
                                                  : flags.default_model;
  return out;
}

absl::Status CheckModelDirectory(const std::string& dir,
                                 absl::string_view flag_text) {
  std::error_code ec;
  const std::string config = dir + "/config.json";
  const std::string index = dir + "/model_index.json";
  if (std::filesystem::is_regular_file(config, ec) ||
      std::filesystem::is_regular_file(index, ec)) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      flag_text, ": the model's weights are missing (no ", config, " or ",
      index, "); mount or copy the model there"));
}

}  // namespace dserve::common
