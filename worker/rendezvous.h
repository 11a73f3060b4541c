#ifndef DSERVE_WORKER_RENDEZVOUS_H_
#define DSERVE_WORKER_RENDEZVOUS_H_

// How the processes of one replica find each other, without MPI.
//
// The replica's store is either a c10d FileStore every rank opens at one
// path (what dserve_server uses: no port, the file sits in a directory only
// the server's user can enter), or a c10d TCPStore that rank 0 hosts (an
// ephemeral port when asked for port 0) and reports through
// `on_store_listening` as soon as it listens, so the spawner can start the
// other ranks with --store=HOST:PORT. c10d 1.13's TCPStore server listens on
// every interface whatever the host, and its parser believes any declared
// key length (issue 16, finding 6): keep it for manual runs. Every rank then
// publishes its pid under "pid/<rank>", waits until all ranks have, and
// builds the world Communicator (Gloo over the same store).
//
// Ownership: the returned Replica owns the store (rank 0: the server socket
// too) and the world Communicator. Rendezvous blocks until every rank has
// checked in, `timeout` passes (DEADLINE_EXCEEDED) or `should_abort` says so
// (ABORTED). Not thread-safe.

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "parallel/communicator.h"
#include "worker/worker_options.h"
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace dserve::worker {

struct RendezvousOptions {
  int rank = 0;
  int world = 1;
  HostPort store;
  // When set, the FileStore at this path instead of `store`.
  std::string store_file;
  // Store connect + every rank checking in.
  std::chrono::milliseconds timeout{120000};
  // Timeout of every later collective on the world communicator.
  std::chrono::milliseconds collective_timeout{30000};
  // Polled every few milliseconds while waiting for the other ranks; true
  // abandons the rendezvous with ABORTED (SIGTERM, parent gone).
  std::function<bool()> should_abort = [] { return false; };
};

struct Replica {
  c10::intrusive_ptr<c10d::Store> store;
  // The port the store listens on (rank 0: the bound port, even if 0 was
  // asked for).
  int store_port = 0;
  // OS process id of every rank, indexed by rank.
  std::vector<int> pids;
  std::unique_ptr<parallel::Communicator> world;
};

// `on_store_listening` runs on rank 0 of a TCPStore only, once the store
// accepts connections; an error from it aborts the rendezvous.
absl::StatusOr<Replica> Rendezvous(
    const RendezvousOptions& options,
    const std::function<absl::Status(int store_port)>& on_store_listening);

}  // namespace dserve::worker

#endif  // DSERVE_WORKER_RENDEZVOUS_H_
