#ifndef DSERVE_PARALLEL_TESTING_MULTIPROCESS_H_
#define DSERVE_PARALLEL_TESTING_MULTIPROCESS_H_

// Runs a gtest body in N real processes, one per rank, over loopback — the
// house way to test collectives and parallel algorithms (STYLE.md rule 9).
//
// RunRanks(world, fn), called from a TEST in the test process ("parent"):
//  1. hosts a c10d::TCPStore on 127.0.0.1 (kernel-chosen port);
//  2. fork/execs /proc/self/exe once per rank with
//     --gtest_filter=<this test> and --dserve_mp_{rank,world,port,call}=...;
//  3. waits for every rank process, killing all of them at the deadline or
//     as soon as one fails, and returns OK only if every rank exited 0.
// In a rank process the same TEST runs again; its RunRanks call connects to
// the parent's store, runs fn(rank, world, store), and exits the process
// with 0 if the test recorded no failure (gtest EXPECT/ASSERT inside fn
// count), else 1. Several RunRanks calls in one TEST are told apart by their
// order; in a rank process the calls other than its own return OK at once.
//
// Blocks; not thread-safe (call it from the test's main thread only). The
// parent process owns the store for the duration of the call.

#include <functional>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace dserve::parallel::testing {

using RankFn = std::function<void(int rank, int world,
                                  c10::intrusive_ptr<c10d::Store> store)>;

// `timeout` bounds the whole run, from fork to the last exit.
absl::Status RunRanks(int world, const RankFn& fn,
                      absl::Duration timeout = absl::Seconds(60));

// True in a process started by RunRanks (so a test can skip parent-only
// work such as computing a reference that only the ranks need).
bool InRankProcess();

}  // namespace dserve::parallel::testing

#endif  // DSERVE_PARALLEL_TESTING_MULTIPROCESS_H_
