#ifndef DSERVE_COMMON_PROGRAM_FLAGS_H_
#define DSERVE_COMMON_PROGRAM_FLAGS_H_

// ParseProgramFlags: absl::ParseCommandLine for dserve's binaries, with the
// two flags every user tries first made to work:
//   --help (also -h, -help, --helpfull): the usage message and every flag
//     this program defines (name, meaning, default; absl's own plumbing
//     flags left out) on stdout, exit 0;
//   --version: common::VersionLine on stdout, exit 0.
// Anything else is absl's parsing (an unknown flag exits 1 with a message).
//
// Touches absl's global flag registry and usage config, so call it once, at
// the start of main, before any thread starts. May exit the process.

#include <string>
#include <vector>

namespace dserve::common {

// `program` names the binary in --version; `usage` is the first paragraph
// of --help. Returns the positional arguments (argv[0] first), as
// absl::ParseCommandLine does.
std::vector<char*> ParseProgramFlags(int argc, char** argv,
                                     const std::string& program,
                                     const std::string& usage);

// Every value of the flag `name` on the command line, in order, for flags
// that may be given several times (absl keeps only the last): "--name=V",
// "-name=V", "--name V" and "-name V"; nothing after a bare "--". Pure; call
// it beside ParseProgramFlags (which still validates the flag's last value).
std::vector<std::string> RepeatedFlagValues(int argc, char** argv,
                                            const std::string& name);

// True for flags defined in dserve's own sources (not absl's internals);
// these are the ones --help lists. Public for tests.
bool IsProgramFlagFile(const std::string& filename);

}  // namespace dserve::common

#endif  // DSERVE_COMMON_PROGRAM_FLAGS_H_
