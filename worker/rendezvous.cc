#include "worker/rendezvous.h"

#include <unistd.h>

#include <chrono>
#include <exception>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "parallel/gloo_communicator.h"
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

namespace dserve::worker {
namespace {

constexpr std::chrono::milliseconds kPollInterval{20};

std::string PidKey(int rank) { return absl::StrCat("pid/", rank); }

std::vector<uint8_t> ToBytes(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

// The replica's store; `port` gets a TCPStore's bound port.
absl::StatusOr<c10::intrusive_ptr<c10d::Store>> OpenStore(
    const RendezvousOptions& options, int* port) {
  const int rank = options.rank;
  if (!options.store_file.empty()) {
    try {
      // One file all ranks share; opening it creates it, so no rank waits
      // for another here (the pid keys are the barrier).
      auto store = c10::make_intrusive<c10d::FileStore>(options.store_file,
                                                        options.world);
      store->setTimeout(options.timeout);
      return c10::intrusive_ptr<c10d::Store>(store);
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat(
          "rank ", rank, ": cannot open the FileStore ", options.store_file,
          ": ", e.what()));
    }
  }
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<std::uint16_t>(options.store.port);
    store_options.isServer = rank == 0;
    // Rank 0 must report its port before the others can even start, so it
    // cannot wait for them inside the constructor; the pid keys are the
    // barrier instead.
    store_options.numWorkers = c10::nullopt;
    store_options.waitWorkers = false;
    store_options.timeout = options.timeout;
    auto store =
        c10::make_intrusive<c10d::TCPStore>(options.store.host, store_options);
    *port = store->getPort();
    return c10::intrusive_ptr<c10d::Store>(store);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(
        rank == 0 ? "cannot host" : "cannot reach", " the TCPStore at ",
        options.store.host, ":", options.store.port, ": ", e.what()));
  }
}

}  // namespace

absl::StatusOr<Replica> Rendezvous(
    const RendezvousOptions& options,
    const std::function<absl::Status(int store_port)>& on_store_listening) {
  Replica replica;
  const int rank = options.rank;
  const int world = options.world;
  absl::StatusOr<c10::intrusive_ptr<c10d::Store>> store =
      OpenStore(options, &replica.store_port);
  if (!store.ok()) return store.status();
  replica.store = *std::move(store);
  if (rank == 0 && options.store_file.empty() && on_store_listening) {
    if (absl::Status s = on_store_listening(replica.store_port); !s.ok()) {
      return s;
    }
  }

  std::vector<std::string> keys;
  keys.reserve(world);
  for (int r = 0; r < world; ++r) keys.push_back(PidKey(r));
  try {
    replica.store->set(PidKey(rank), ToBytes(std::to_string(::getpid())));
    // Poll so that a stop request or a dead parent is noticed while peers
    // are still starting.
    const auto deadline = std::chrono::steady_clock::now() + options.timeout;
    while (!replica.store->check(keys)) {
      if (options.should_abort()) {
        return absl::AbortedError(absl::StrCat(
            "rank ", rank, ": rendezvous abandoned (stop requested or parent "
            "gone)"));
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "rank ", rank, ": not every one of the ", world,
            " ranks checked in within ", options.timeout.count(), " ms"));
      }
      // Polling check() rather than a timed wait(): a TCPStore wait that
      // times out leaves its reply pending on the socket and would answer
      // the next request.
      std::this_thread::sleep_for(kPollInterval);
    }
    for (int r = 0; r < world; ++r) {
      const std::vector<uint8_t> value = replica.store->get(keys[r]);
      int pid = 0;
      if (!absl::SimpleAtoi(std::string(value.begin(), value.end()), &pid)) {
        return absl::DataLossError(
            absl::StrCat("store key ", keys[r], " does not hold a pid"));
      }
      replica.pids.push_back(pid);
    }
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("rank ", rank, ": rendezvous through the store failed: ",
                     e.what()));
  }

  absl::StatusOr<std::unique_ptr<parallel::Communicator>> comm =
      parallel::CreateGlooCommunicator(replica.store, "world", rank, world,
                                       options.collective_timeout);
  if (!comm.ok()) {
    return absl::Status(
        comm.status().code(),
        absl::StrCat("world communicator: ", comm.status().message()));
  }
  replica.world = *std::move(comm);
  return replica;
}

}  // namespace dserve::worker
