#include "common/program_flags.h"

#include <cstdlib>
#include <iostream>

#include "absl/flags/internal/usage.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/build_info.h"

namespace dserve::common {

bool IsProgramFlagFile(const std::string& filename) {
  // absl registers --flagfile, --fromenv, --help... from absl/flags/*.cc.
  return !absl::StrContains(filename, "absl/");
}

std::vector<std::string> RepeatedFlagValues(int argc, char** argv,
                                            const std::string& name) {
  std::vector<std::string> values;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (!absl::ConsumePrefix(&arg, "--")) {
      if (!absl::ConsumePrefix(&arg, "-")) continue;
    }
    if (!absl::ConsumePrefix(&arg, name)) continue;
    if (absl::ConsumePrefix(&arg, "=")) {
      values.emplace_back(arg);
    } else if (arg.empty() && i + 1 < argc) {
      values.emplace_back(argv[++i]);
    }
  }
  return values;
}

std::vector<char*> ParseProgramFlags(int argc, char** argv,
                                     const std::string& program,
                                     const std::string& usage) {
  absl::SetProgramUsageMessage(usage);
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return IsProgramFlagFile(std::string(file));
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  config.contains_helppackage_flags = config.contains_help_flags;
  config.version_string = [program] { return VersionLine(program) + "\n"; };
  absl::SetFlagsUsageConfig(config);

  // absl answers --help with exit code 1 and, before this config, with "No
  // flags matched"; a user asking for help did nothing wrong.
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "--help" || arg == "-help" || arg == "-h" ||
        arg == "--helpfull" || arg == "--helpshort") {
      absl::flags_internal::SetFlagsHelpMode(
          absl::flags_internal::HelpMode::kImportant);
      absl::flags_internal::HandleUsageFlags(std::cout, usage);
      std::cout.flush();
      std::exit(0);
    }
  }
  return absl::ParseCommandLine(argc, argv);
}

}  // namespace dserve::common
