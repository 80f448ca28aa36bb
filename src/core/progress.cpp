#include <mintjulep/progress.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace mintjulep {

double ProgressUpdate::fraction() const {
  if (total <= 0) return 1.0;
  return std::clamp(static_cast<double>(done) / static_cast<double>(total), 0.0, 1.0);
}

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

ProgressMeter::ProgressMeter(Progress sink, std::string stage, std::string unit, int64_t total, int64_t start,
                             Clock clock)
    : sink_(std::move(sink)),
      clock_(clock ? std::move(clock) : Clock(steady_seconds)),
      stage_(std::move(stage)),
      unit_(std::move(unit)),
      total_(total),
      start_(start),
      t0_(clock_()) {
  report(start_, t0_);
}

void ProgressMeter::update(int64_t done) { report(done, clock_()); }

void ProgressMeter::restart(int64_t done) {
  start_ = done;
  t0_ = clock_();
  report(done, t0_);
}

void ProgressMeter::report(int64_t done, double now) {
  ProgressUpdate u;
  u.stage = stage_;
  u.unit = unit_;
  u.done = done;
  u.total = total_;
  u.start = start_;
  u.elapsed_s = std::max(0.0, now - t0_);  // exactly 0 at the start
  u.detail = detail_;
  const double worked = static_cast<double>(done - start_);
  if (u.elapsed_s > 0 && worked > 0) u.rate = worked / u.elapsed_s;
  if (u.finished()) u.eta_s = 0;
  else if (u.rate > 0) u.eta_s = static_cast<double>(total_ - done) / u.rate;
  last_ = u;
  // An empty loop has nothing to show.
  if (sink_ && total_ > 0) sink_(u);
}

ProgressCadence terminal_cadence() { return {0.1, 0, 0, true, true}; }
ProgressCadence plain_cadence() { return {2.0, 30.0, 10, false, false}; }
ProgressCadence json_cadence() { return {1.0, 0, 0, false, true}; }

bool ProgressThrottle::due(const ProgressUpdate& u) {
  const bool at_start = u.done == u.start && u.elapsed_s == 0;
  const auto bucket = [&](int64_t done) {
    return cadence_.fractions > 0 && u.total > 0 ? done * cadence_.fractions / u.total : 0;
  };
  if (at_start || u.stage != stage_ || u.done < last_done_) {
    // A new loop.
    stage_ = u.stage;
    shown_any_ = false;
    finished_ = false;
    last_shown_s_ = 0;
    last_bucket_ = bucket(u.start);
  }
  last_done_ = u.done;
  if (finished_) return false;  // its last update is out already
  if (u.finished()) {
    finished_ = true;
    return cadence_.show_short_loops || shown_any_ || u.elapsed_s >= cadence_.min_interval_s;
  }
  if (at_start) {
    shown_any_ = cadence_.show_start;
    return cadence_.show_start;
  }
  const double since = u.elapsed_s - last_shown_s_;
  if (since < cadence_.min_interval_s) return false;
  const bool step = cadence_.fractions == 0 || bucket(u.done) > last_bucket_ ||
                    (cadence_.max_interval_s > 0 && since >= cadence_.max_interval_s);
  if (!step) return false;
  last_shown_s_ = u.elapsed_s;
  last_bucket_ = bucket(u.done);
  shown_any_ = true;
  return true;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

std::string format_rate(double rate, const std::string& unit) {
  if (!(rate > 0) || !std::isfinite(rate)) return fmt::format("? {}/s", unit);
  if (rate >= 100) return fmt::format("{:.0f} {}/s", rate, unit);
  if (rate >= 10) return fmt::format("{:.1f} {}/s", rate, unit);
  if (rate >= 0.5) return fmt::format("{:.2f} {}/s", rate, unit);
  const std::string one = !unit.empty() && unit.back() == 's' ? unit.substr(0, unit.size() - 1) : unit;
  return fmt::format("{:.1f} s/{}", 1 / rate, one);
}

namespace {

// Whole percent, rounded down, so that an unfinished loop never shows 100%.
int percent(const ProgressUpdate& u) {
  return u.finished() ? 100 : std::min(99, static_cast<int>(std::floor(100 * u.fraction())));
}

}  // namespace

std::string progress_bar_line(const ProgressUpdate& u, int bar_width) {
  const int width = std::max(1, bar_width);
  const int filled = u.finished() ? width : std::min(width - 1, static_cast<int>(std::floor(width * u.fraction())));
  const std::string bar =
      std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(width - filled), '-');
  std::string line = fmt::format("{} [{}] {:3}%  {}/{} {}  {}  ", u.stage, bar, percent(u), u.done, u.total, u.unit,
                                 format_rate(u.rate, u.unit));
  line += u.finished() ? format_duration(u.elapsed_s)
                       : format_duration(u.elapsed_s) + "<" + format_duration(u.eta_s);
  if (!u.detail.empty()) line += "  " + u.detail;
  return line;
}

std::string progress_plain_line(const ProgressUpdate& u) {
  std::string line = fmt::format("{}: {}/{} {} ({}%)", u.stage, u.done, u.total, u.unit, percent(u));
  if (u.rate > 0) line += ", " + format_rate(u.rate, u.unit);
  if (u.finished()) {
    line += ", " + format_duration(u.elapsed_s);
  } else {
    line += ", elapsed " + format_duration(u.elapsed_s);
    if (u.eta_s >= 0) line += ", ETA " + format_duration(u.eta_s);
  }
  if (!u.detail.empty()) line += ", " + u.detail;
  return line + "\n";
}

ProgressPrinter::ProgressPrinter(Log write, bool terminal, int columns)
    : write_(std::move(write)),
      terminal_(terminal),
      columns_(columns),
      throttle_(terminal ? terminal_cadence() : plain_cadence()) {}

std::string ProgressPrinter::bar(const ProgressUpdate& u) const {
  std::string line = progress_bar_line(u);
  if (columns_ > 1 && line.size() > static_cast<size_t>(columns_ - 1)) line.resize(static_cast<size_t>(columns_ - 1));
  return line;
}

void ProgressPrinter::show(const ProgressUpdate& u) {
  if (!write_) return;
  if (terminal_ && open_ && u.stage == stage_) latest_ = u;  // what redraw() shows
  if (!throttle_.due(u)) return;
  if (!terminal_) {
    write_(progress_plain_line(u));
    return;
  }
  if (open_ && u.stage != stage_) end_line();  // a loop that stopped early
  std::string line = bar(u);
  latest_ = u;
  std::string text = "\r" + line;
  if (drawn_ > line.size()) text += std::string(drawn_ - line.size(), ' ');
  line_ = std::move(line);
  stage_ = u.stage;
  drawn_ = std::max(drawn_, line_.size());
  open_ = true;
  if (u.finished()) {
    text += "\n";
    open_ = false;
    drawn_ = 0;
  }
  write_(text);
}

void ProgressPrinter::clear() {
  if (!open_ || drawn_ == 0) return;
  write_("\r" + std::string(drawn_, ' ') + "\r");
  drawn_ = 0;
}

void ProgressPrinter::redraw() {
  if (!open_ || drawn_ > 0) return;
  // The latest update, which may be newer than the line that was cleared.
  line_ = bar(latest_);
  write_(line_);
  drawn_ = line_.size();
}

void ProgressPrinter::end_line() {
  if (open_ && drawn_ > 0) write_("\n");
  open_ = false;
  drawn_ = 0;
}

Progress log_progress(Log log) {
  if (!log) return silent_progress();
  auto printer = std::make_shared<ProgressPrinter>(std::move(log), /*terminal=*/false);
  return [printer](const ProgressUpdate& u) { printer->show(u); };
}

Progress silent_progress() {
  return [](const ProgressUpdate&) {};
}

}  // namespace mintjulep
