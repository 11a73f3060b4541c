#include "common/build_info.h"

#include "absl/strings/str_cat.h"

namespace dserve::common {

BuildInfo GetBuildInfo() {
  BuildInfo info;
  info.version = kDserveVersion;
  info.build_date = absl::StrCat(__DATE__, " ", __TIME__);
#if defined(__clang__)
  info.compiler = absl::StrCat("clang ", __clang_major__, ".", __clang_minor__,
                               ".", __clang_patchlevel__);
#elif defined(__GNUC__)
  info.compiler = absl::StrCat("gcc ", __GNUC__, ".", __GNUC_MINOR__, ".",
                               __GNUC_PATCHLEVEL__);
#else
  info.compiler = "unknown";
#endif
#ifdef NDEBUG
  info.mode = "opt";
#else
  info.mode = "dbg";
#endif
  return info;
}

std::string VersionLine(const std::string& program) {
  const BuildInfo info = GetBuildInfo();
  return absl::StrCat(program, " ", info.version, " (build ", info.build_date,
                      ", ", info.compiler, ", ", info.mode, ")");
}

}  // namespace dserve::common
