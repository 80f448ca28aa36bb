#pragma once
// Progress of long loops (Mint steps, kernel iterations, sampling and annealing chunks, MD
// steps) and how it is shown. Light on purpose: no torch, so that the command line tool and
// tests of the formatting include it cheaply.
//
// The library reports through two callbacks: a Log receives whole lines (set-up, summaries,
// the periodic training lines), a Progress receives a ProgressUpdate for every step of a loop.
// A ProgressMeter times one loop (elapsed, rate, ETA) and feeds a Progress; what reaches the
// user is decided by the sink: a ProgressPrinter draws one self-updating line on a terminal,
// or plain periodic lines elsewhere; log_progress() writes the plain lines into a Log.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace mintjulep {

// Receives each progress or summary line, newline included.
using Log = std::function<void(const std::string&)>;

struct ProgressUpdate {
  std::string stage;   // e.g. "mint", "julep", "anneal mala", "sample", "md"
  std::string unit;    // plural: "steps", "iterations", "chains", "samples"
  int64_t done = 0;
  int64_t total = 0;
  int64_t start = 0;       // done when the loop started (a resumed loop starts above 0)
  double elapsed_s = 0;    // since the loop started
  double rate = 0;         // units per second since the start; 0 while unknown
  double eta_s = -1;       // seconds left at that rate; -1 while unknown
  std::string detail;      // optional, e.g. "mean U -12.3 kT"

  bool finished() const { return done >= total; }
  // done / total in [0, 1] (1 for an empty loop).
  double fraction() const;
};

// Receives every update of every loop; sinks decide how often to show one.
using Progress = std::function<void(const ProgressUpdate&)>;

// Seconds on a monotonic clock; replaceable in tests.
using Clock = std::function<double()>;
double steady_seconds();

// Times one loop of `total` units and sends an update to `sink` (when set) at the start and on
// every update(). The rate is the average since the start, the ETA the rest at that rate.
class ProgressMeter {
 public:
  ProgressMeter(Progress sink, std::string stage, std::string unit, int64_t total, int64_t start = 0,
                Clock clock = steady_seconds);
  // `done` units of `total` are finished now.
  void update(int64_t done);
  // Restarts the timing at `done` (a loop resumed from saved state), and reports it.
  void restart(int64_t done);
  // Shown with the following updates.
  void set_detail(std::string detail) { detail_ = std::move(detail); }
  const ProgressUpdate& last() const { return last_; }

 private:
  void report(int64_t done, double now);

  Progress sink_;
  Clock clock_;
  std::string stage_, unit_, detail_;
  int64_t total_, start_;
  double t0_;
  ProgressUpdate last_;
};

// When an output shows an update: not within min_interval_s of the previous one shown, and
// then when a new 1/fractions of the loop is reached (fractions = 0: any update) or
// max_interval_s passed (0: no such limit). The last update of a loop always, except, without
// show_short_loops, for a loop that showed nothing and lasted under min_interval_s. The first
// update of a loop (the start, nothing done) only with show_start.
struct ProgressCadence {
  double min_interval_s = 0;
  double max_interval_s = 0;
  int64_t fractions = 0;
  bool show_start = false;
  bool show_short_loops = true;
};

// The cadences of the three outputs: a terminal line redrawn up to 10 times a second; plain
// lines at each tenth of a loop, at least every 30 s, at most one per 2 s, none for a loop
// done within 2 s; JSON events at most once a second, and the last of each loop.
ProgressCadence terminal_cadence();
ProgressCadence plain_cadence();
ProgressCadence json_cadence();

// Applies a cadence to the updates of successive loops (a new stage, or done going back,
// starts a new loop).
class ProgressThrottle {
 public:
  explicit ProgressThrottle(ProgressCadence cadence) : cadence_(cadence) {}
  bool due(const ProgressUpdate& update);

 private:
  ProgressCadence cadence_;
  std::string stage_;
  int64_t last_done_ = -1;
  int64_t last_bucket_ = -1;
  double last_shown_s_ = 0;
  bool shown_any_ = false;
  bool finished_ = false;
};

// "0:07", "12:34", "1:02:03" (negative: "?").
std::string format_duration(double seconds);
// "1234 steps/s", "12.3 steps/s", "0.52 steps/s", or below 0.5 per second "4.1 s/step".
std::string format_rate(double rate, const std::string& unit);
// The terminal line: "mint [#######-------------]  35%  700/2000 steps  812 steps/s  0:01<0:02".
std::string progress_bar_line(const ProgressUpdate& update, int bar_width = 20);
// A plain line, newline included: "mint: 700/2000 steps (35%), 812 steps/s, elapsed 0:01, ETA 0:02".
std::string progress_plain_line(const ProgressUpdate& update);

// Shows updates as text written through `write`. terminal: one line redrawn in place with
// '\r' (padded over a longer previous line, cut to `columns` - 1 characters when columns > 0)
// and ended with '\n' when its loop finishes; otherwise plain lines, never a '\r'.
class ProgressPrinter {
 public:
  ProgressPrinter(Log write, bool terminal, int columns = 0);
  void show(const ProgressUpdate& update);
  // Whether a terminal line is drawn and not yet ended.
  bool line_open() const { return open_; }
  // Erases an open terminal line (before other output to the same terminal), and draws it
  // again, with the latest update of its loop.
  void clear();
  void redraw();
  // Ends an open terminal line where it stands (before an error message).
  void end_line();

 private:
  std::string bar(const ProgressUpdate& update) const;

  Log write_;
  bool terminal_;
  int columns_;
  ProgressThrottle throttle_;
  ProgressUpdate latest_;
  std::string line_, stage_;
  bool open_ = false;
  size_t drawn_ = 0;  // characters of the line on screen
};

// Plain progress lines (plain_cadence) written into `log`: the library's default when a
// Model has no Progress of its own.
Progress log_progress(Log log);
// Discards every update.
Progress silent_progress();

}  // namespace mintjulep
