#include "server/job_id.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dserve::server {
namespace {

constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
constexpr int kInstanceChars = 8;
constexpr int kRandomChars = 12;

bool IsInstanceChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

}  // namespace

JobIdGenerator::JobIdGenerator(std::string instance)
    : instance_(std::move(instance)) {
  if (instance_.empty()) {
    instance_ = RandomChars(kInstanceChars);
    return;
  }
  bool ok = instance_.size() <= 16;
  for (char c : instance_) ok = ok && IsInstanceChar(c);
  if (!ok) {
    std::fprintf(stderr, "JobIdGenerator: instance \"%s\" is not 1..16 of "
                 "[a-z0-9]\n", instance_.c_str());
    std::abort();
  }
}

std::string JobIdGenerator::RandomChars(int n) {
  absl::MutexLock lock(&mu_);
  std::string out(n, ' ');
  for (char& c : out) c = kAlphabet[absl::Uniform(gen_, 0, 32)];
  return out;
}

std::string JobIdGenerator::Next() {
  return absl::StrCat("j-", instance_, "-", RandomChars(kRandomChars));
}

std::string JobIdInstance(const std::string& job_id) {
  if (job_id.size() < 5 || job_id.compare(0, 2, "j-") != 0) return "";
  const size_t dash = job_id.rfind('-');
  if (dash <= 2) return "";
  const std::string instance = job_id.substr(2, dash - 2);
  for (char c : instance) {
    if (!IsInstanceChar(c)) return "";
  }
  return instance;
}

}  // namespace dserve::server
