#ifndef DSERVE_WORKER_MODELS_STATUS_UTIL_H_
#define DSERVE_WORKER_MODELS_STATUS_UTIL_H_

// Status plumbing shared by the model code: early-return macros and the one
// place where LibTorch's c10::Error becomes an absl::Status. Header-only,
// stateless, thread-safe.

#include <exception>
#include <new>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include <c10/util/Exception.h>

#define MODELS_STATUS_CONCAT_INNER_(a, b) a##b
#define MODELS_STATUS_CONCAT_(a, b) MODELS_STATUS_CONCAT_INNER_(a, b)

#define MODELS_RETURN_IF_ERROR(expr)        \
  do {                                      \
    ::absl::Status _models_st = (expr);     \
    if (!_models_st.ok()) return _models_st; \
  } while (0)

#define MODELS_ASSIGN_OR_RETURN(lhs, expr)                                  \
  MODELS_ASSIGN_OR_RETURN_IMPL_(                                            \
      MODELS_STATUS_CONCAT_(_models_statusor_, __LINE__), lhs, expr)
#define MODELS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(*tmp)

namespace dserve::models {

// Runs `fn` and converts a LibTorch exception (shape mismatch, allocation
// failure) into INTERNAL with `what` as context, so no c10::Error crosses a
// Status-returning API.
template <typename Fn>
absl::Status CatchTorch(const std::string& what, Fn&& fn) {
  try {
    std::forward<Fn>(fn)();
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat(what, ": ", e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, ": out of memory"));
  }
  return absl::OkStatus();
}

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_STATUS_UTIL_H_
