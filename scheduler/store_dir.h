#ifndef DSERVE_SCHEDULER_STORE_DIR_H_
#define DSERVE_SCHEDULER_STORE_DIR_H_

// The private directory a replica's ranks rendezvous through (the c10d
// FileStore file), and the sweep that removes those a dead server left.
//
// A supervisor removes its directory when the replica stops or restarts,
// but a server killed with SIGKILL (OOM killer, `kubectl delete --force`,
// a crashed node agent) cannot: its directories stay in the temp dir. So
// each name carries the creating server's pid, and a starting server
// removes the directories of servers that no longer run.
//
// Stateless free functions; they block on the filesystem. Thread-safe.

#include <string>

#include "absl/status/statusor.h"

namespace dserve::scheduler {

// $TMPDIR (std::filesystem::temp_directory_path), or /tmp.
std::string DefaultStoreBase();

// Creates `<base>/dserve-replica<replica>-p<pid of this process>-XXXXXX`
// with mkdtemp (mode 0700: no other local user can read or write the
// store) and returns its path.
absl::StatusOr<std::string> MakeReplicaStoreDir(const std::string& base,
                                                int replica);

// The pid in a name MakeReplicaStoreDir made, or -1 for any other name
// (including directories of older servers, whose names carry no pid).
int StoreDirOwnerPid(const std::string& name);

// Removes every directory directly under `base` that MakeReplicaStoreDir
// made for a process that no longer exists (kill(pid, 0) says ESRCH) and
// that this user owns. Directories of running servers (this one included),
// other users' and other names are left alone; a pid reused by an
// unrelated process keeps its directory (never wrong, only late). Returns
// how many were removed; errors are skipped (logged at warn).
int RemoveStaleReplicaStoreDirs(const std::string& base);

}  // namespace dserve::scheduler

#endif  // DSERVE_SCHEDULER_STORE_DIR_H_
