#ifndef DSERVE_COMMON_BUILD_INFO_H_
#define DSERVE_COMMON_BUILD_INFO_H_

// What this binary is: dserve's version and how it was built. One place for
// the version string that --version prints, GetServerInfo reports and the
// dserve_build_info metric exports.
//
// Stateless, thread-safe, never blocks.

#include <string>

namespace dserve::common {

// The release version of every dserve binary ("0.1.0").
inline constexpr char kDserveVersion[] = "0.1.0";

struct BuildInfo {
  std::string version;     // kDserveVersion
  std::string build_date;  // compile date and time of this file, "Dec  1 2026 21:50:00"
  std::string compiler;    // e.g. "gcc 12.2.0"
  std::string mode;        // "opt" (NDEBUG) or "dbg"
};

BuildInfo GetBuildInfo();

// "<program> 0.1.0 (build Dec  1 2026 21:50:00, gcc 12.2.0, opt)".
std::string VersionLine(const std::string& program);

}  // namespace dserve::common

#endif  // DSERVE_COMMON_BUILD_INFO_H_
