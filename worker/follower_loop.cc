#include "worker/follower_loop.h"

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "worker/plan_codec.h"

namespace dserve::worker {

absl::Status FollowLeader(RankLoop& loop, parallel::Communicator& world,
                          const FollowerOptions& options) {
  std::optional<absl::Time> stop_since;
  while (true) {
    if (!options.parent_alive()) {
      return absl::AbortedError("the parent process exited");
    }
    if (options.stop_requested() && !stop_since.has_value()) {
      stop_since = options.now();
      spdlog::info("[job -] stop requested; waiting for the leader's SHUTDOWN");
    }
    if (stop_since.has_value() &&
        options.now() - *stop_since > options.stop_grace) {
      spdlog::warn("[job -] no SHUTDOWN from the leader within {}; leaving",
                   absl::FormatDuration(options.stop_grace));
      return absl::OkStatus();
    }

    absl::StatusOr<ReceivedCommand> command = ReceiveCommand(world);
    if (!command.ok()) {
      if (stop_since.has_value()) {
        spdlog::info("[job -] leader gone while stopping: {}",
                     command.status().ToString());
        return absl::OkStatus();
      }
      return absl::UnavailableError(absl::StrCat(
          "waiting for the leader's command: ", command.status().message()));
    }
    switch (command->command) {
      case Command::kIdle:
        continue;
      case Command::kShutdown:
        spdlog::info("[job -] SHUTDOWN from the leader");
        return absl::OkStatus();
      case Command::kPlan:
        break;
    }
    const std::string jobs = PlanJobIds(command->plan);
    spdlog::debug("[job {}] plan received", jobs);
    absl::StatusOr<PlanOutput> out = loop.RunPlan(command->plan, nullptr);
    if (!loop.healthy()) {
      if (stop_since.has_value()) return absl::OkStatus();
      return absl::UnavailableError(
          absl::StrCat("job ", jobs, ": ", out.status().message()));
    }
    if (out.ok()) {
      spdlog::debug("[job {}] plan done after {} steps", jobs, out->steps_done);
    } else {
      // Plan-level errors (cancel, validation) happen identically on every
      // rank, so the replica stays in lockstep and keeps following.
      spdlog::info("[job {}] plan ended: {}", jobs, out.status().ToString());
    }
  }
}

}  // namespace dserve::worker
