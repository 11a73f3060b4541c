#ifndef DSERVE_COMMON_TORCH_STATUS_H_
#define DSERVE_COMMON_TORCH_STATUS_H_

// The one place where LibTorch's exceptions become absl::Status, so no
// c10::Error crosses a Status-returning API. Header-only, stateless,
// thread-safe. Separate from status_macros.h so torch-free code does not
// pull in LibTorch.

#include <exception>
#include <new>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include <c10/util/Exception.h>

namespace dserve {

// Runs `fn` and converts a LibTorch exception (shape mismatch, allocation
// failure) into INTERNAL (RESOURCE_EXHAUSTED for out of memory) with `what`
// as context.
template <typename Fn>
absl::Status CatchTorch(const std::string& what, Fn&& fn) {
  try {
    std::forward<Fn>(fn)();
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat(what, ": ", e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(what, ": out of memory"));
  }
  return absl::OkStatus();
}

}  // namespace dserve

#endif  // DSERVE_COMMON_TORCH_STATUS_H_
