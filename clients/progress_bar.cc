#include "clients/progress_bar.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dserve::clients {

std::string RenderProgressLine(int step, int total, double elapsed_ms,
                               int bar_width) {
  bar_width = std::max(bar_width, 1);
  std::string line = "[";
  int filled = 0;
  if (total > 0) {
    step = std::clamp(step, 0, total);
    // Integer arithmetic so the last cell fills exactly at step == total.
    filled = static_cast<int>(static_cast<long long>(step) * bar_width / total);
  }
  line.append(filled, '#');
  line.append(bar_width - filled, '-');
  line += "]";
  if (total > 0) {
    const int percent =
        static_cast<int>(static_cast<long long>(step) * 100 / total);
    // Width of the step counter follows `total` so the bar does not jitter.
    const int digits = static_cast<int>(std::to_string(total).size());
    absl::StrAppendFormat(&line, " %*d/%d %3d%%", digits, step, total,
                          percent);
  }
  absl::StrAppendFormat(&line, "  %.1f s", std::max(elapsed_ms, 0.0) / 1000.0);
  if (total > 0 && step > 0) {
    absl::StrAppendFormat(&line, "  %.0f ms/step", elapsed_ms / step);
  }
  return line;
}

ProgressBar::ProgressBar(std::ostream* sink, int bar_width)
    : sink_(sink), bar_width_(std::max(bar_width, 1)) {}

ProgressBar::~ProgressBar() { Finish(); }

void ProgressBar::SetMessage(const std::string& message) { Draw(message); }

void ProgressBar::Update(int step, int total, double elapsed_ms) {
  Draw(RenderProgressLine(step, total, elapsed_ms, bar_width_));
}

void ProgressBar::Finish() {
  if (!line_open_) return;
  *sink_ << "\n";
  sink_->flush();
  line_open_ = false;
  last_length_ = 0;
}

void ProgressBar::Draw(const std::string& text) {
  std::string out = "\r" + text;
  if (text.size() < last_length_) out.append(last_length_ - text.size(), ' ');
  *sink_ << out;
  sink_->flush();
  last_length_ = text.size();
  line_open_ = true;
}

}  // namespace dserve::clients
