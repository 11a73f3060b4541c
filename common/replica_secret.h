#ifndef DSERVE_COMMON_REPLICA_SECRET_H_
#define DSERVE_COMMON_REPLICA_SECRET_H_

// The shared secret between the frontend and one replica's leader.
//
// The leader's gRPC port (dserve.internal.v1.ReplicaLeader) listens on
// loopback, but any local user can reach loopback; without a secret any of
// them could run a plan no validator saw (issue 16, finding 6: a 250-step
// plan beyond --max_steps ran). So the frontend draws a random secret per
// replica, hands it to the worker processes in their environment
// (kReplicaSecretEnv, never on the command line, which every local user can
// read in /proc/PID/cmdline; /proc/PID/environ is readable by the owner
// only), and sends it as call metadata (kReplicaSecretMetadata) on every
// call; the leader compares it in constant time and answers
// UNAUTHENTICATED otherwise.
//
// Free functions; thread-safe; nothing blocks.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dserve::common {

// gRPC metadata key carrying the secret (lower case, as gRPC requires).
inline constexpr char kReplicaSecretMetadata[] = "x-dserve-replica-secret";
// Environment variable the spawned workers find it in.
inline constexpr char kReplicaSecretEnv[] = "DSERVE_REPLICA_SECRET";

// 32 random bytes from the kernel (getrandom), as 64 hex characters.
// INTERNAL when the kernel's generator fails.
absl::StatusOr<std::string> NewReplicaSecret();

// a == b, in time that depends only on the lengths (no early exit at the
// first differing byte, so timing does not reveal a prefix).
bool SecretsEqual(absl::string_view a, absl::string_view b);

// Reads `name` from this process's environment, overwrites the value's
// bytes in place (so /proc/self/environ no longer shows it) and removes the
// variable. "" when unset. Not thread-safe (the environment is process
// state): call at the start of main, before threads start.
std::string TakeSecretFromEnvironment(const char* name);

}  // namespace dserve::common

#endif  // DSERVE_COMMON_REPLICA_SECRET_H_
