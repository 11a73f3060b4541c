#ifndef DSERVE_CLIENTS_PROGRESS_BAR_H_
#define DSERVE_CLIENTS_PROGRESS_BAR_H_

// A one-line text progress bar for denoising steps, redrawn in place with a
// carriage return, e.g.
//
//   [############------------]  10/20  50%  1.2 s  120 ms/step
//
// The bar writes to a caller-owned std::ostream (stderr in the CLI, a
// std::ostringstream in tests) so that stdout stays free for the results that
// scripts read (seed, timings, job ids).
//
// Ownership: borrows the sink, which must outlive the bar.
// Thread-safety: not thread-safe; one thread drives a bar.
// Blocking: writes to the sink (and flushes it) on every call.

#include <ostream>
#include <string>

namespace dserve::clients {

// The bar's text for one state, without the leading carriage return.
// `step` is clamped to [0, total]; `total` <= 0 draws an empty bar with no
// percentage. `bar_width` is the number of cells between the brackets.
std::string RenderProgressLine(int step, int total, double elapsed_ms,
                               int bar_width);

class ProgressBar {
 public:
  // `bar_width` cells between the brackets (at least 1).
  explicit ProgressBar(std::ostream* sink, int bar_width = 30);
  ~ProgressBar();

  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Replaces the current line with a free-form status such as
  // "queued at position 3".
  void SetMessage(const std::string& message);
  // Redraws the bar for `step` of `total` steps after `elapsed_ms`.
  void Update(int step, int total, double elapsed_ms);
  // Ends the line so later output starts on a fresh one. Idempotent; the
  // destructor calls it.
  void Finish();

 private:
  // Writes `text` over the current line, padding with spaces so a shorter
  // line fully covers a longer previous one.
  void Draw(const std::string& text);

  std::ostream* sink_;
  int bar_width_;
  size_t last_length_ = 0;
  bool line_open_ = false;
};

}  // namespace dserve::clients

#endif  // DSERVE_CLIENTS_PROGRESS_BAR_H_
