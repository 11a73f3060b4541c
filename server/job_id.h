#ifndef DSERVE_SERVER_JOB_ID_H_
#define DSERVE_SERVER_JOB_ID_H_

// JobIdGenerator: job ids that stay unique across every server behind a
// load balancer, so a GetJob that lands on another pod finds nothing (and
// says whose job it is) instead of some other client's job.
//
//   j-<instance>-<random>      e.g. j-k3v9q2xa-7fm2c8r1n0pd
//
// <instance>: 8 characters drawn once per server process (40 random bits);
// <random>: 12 characters per job (60 random bits). Both use the lowercase
// base32 alphabet [a-z2-7] minus nothing exotic, so ids are short, URL-safe
// (no escaping in /v1/videos/{id}) and valid in DNS labels.
//
// Thread-safe (one mutex around the random generator). Never blocks.

#include <string>

#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"

namespace dserve::server {

class JobIdGenerator {
 public:
  // `instance` empty = a fresh random one; otherwise 1..16 characters of
  // [a-z0-9] (CHECK-style abort on anything else: it is a programming
  // error, tests pass fixed ones).
  explicit JobIdGenerator(std::string instance = "");

  const std::string& instance() const { return instance_; }
  std::string Next();

 private:
  std::string RandomChars(int n);

  absl::Mutex mu_;
  absl::BitGen gen_ ABSL_GUARDED_BY(mu_);
  std::string instance_;
};

// The instance part of a job id made by JobIdGenerator, or "" when `job_id`
// does not have that shape.
std::string JobIdInstance(const std::string& job_id);

}  // namespace dserve::server

#endif  // DSERVE_SERVER_JOB_ID_H_
