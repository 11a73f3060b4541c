#ifndef DSERVE_COMMON_STATUS_MACROS_H_
#define DSERVE_COMMON_STATUS_MACROS_H_

// Early-return macros for absl::Status / absl::StatusOr code, used by every
// tier (server, scheduler, worker, models, tools) instead of hand-written
// `if (!s.ok()) return s;` blocks. Header-only; no dependencies beyond absl.
//
//   RETURN_IF_ERROR(DoThing());
//   ASSIGN_OR_RETURN(Foo foo, MakeFoo());

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DSERVE_STATUS_CONCAT_INNER_(a, b) a##b
#define DSERVE_STATUS_CONCAT_(a, b) DSERVE_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                         \
  do {                                                \
    ::absl::Status _dserve_status = (expr);           \
    if (!_dserve_status.ok()) return _dserve_status;  \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr)                                     \
  DSERVE_ASSIGN_OR_RETURN_IMPL_(                                        \
      DSERVE_STATUS_CONCAT_(_dserve_statusor_, __LINE__), lhs, expr)
#define DSERVE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(*tmp)

#endif  // DSERVE_COMMON_STATUS_MACROS_H_
