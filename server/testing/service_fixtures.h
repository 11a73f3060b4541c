#ifndef DSERVE_SERVER_TESTING_SERVICE_FIXTURES_H_
#define DSERVE_SERVER_TESTING_SERVICE_FIXTURES_H_

// Small pieces the server's tests share: the model a FakeReplica reports and
// a poll-until helper. Test-only; header-only; Eventually blocks.

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "proto/dserve/v1/diffusion_service.pb.h"

namespace dserve::server::testing {

// A 32x32 image model ("tiny", the default): sizes up to 128 in steps of
// 16, 1 frame, 3 steps, guidance 3, shift 3.
inline dserve::v1::ModelInfo TinyModel() {
  dserve::v1::ModelInfo m;
  m.set_name("tiny");
  m.set_is_default(true);
  m.set_default_width(32);
  m.set_default_height(32);
  m.set_max_width(128);
  m.set_max_height(128);
  m.set_size_step(16);
  m.set_max_frames(1);
  m.set_default_steps(3);
  m.set_default_guidance_scale(3.0f);
  m.set_default_flow_shift(3.0f);
  return m;
}

// Polls `done` every 10 ms for up to 10 s; returns its last answer.
template <typename F>
bool Eventually(F done) {
  for (int i = 0; i < 1000; ++i) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return done();
}

}  // namespace dserve::server::testing

#endif  // DSERVE_SERVER_TESTING_SERVICE_FIXTURES_H_
