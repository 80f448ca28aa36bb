// Progress reporting: the meter's elapsed time, rate and ETA on a fake clock, the cadences of
// terminal, plain and JSON output, and the exact text of the lines.
#include <mintjulep/progress.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace mintjulep {
namespace {

// A clock the test moves by hand.
struct FakeClock {
  double now = 1000.0;
  Clock clock() {
    return [this] { return now; };
  }
};

struct Recorder {
  std::vector<ProgressUpdate> updates;
  Progress sink() {
    return [this](const ProgressUpdate& u) { updates.push_back(u); };
  }
};

ProgressUpdate make_update(int64_t done, int64_t total, double elapsed, double rate, double eta) {
  ProgressUpdate u;
  u.stage = "mint";
  u.unit = "steps";
  u.done = done;
  u.total = total;
  u.elapsed_s = elapsed;
  u.rate = rate;
  u.eta_s = eta;
  return u;
}

size_t count(const std::string& text, char c) { return static_cast<size_t>(std::count(text.begin(), text.end(), c)); }

TEST(ProgressMeter, ReportsElapsedRateAndEta) {
  FakeClock t;
  Recorder r;
  ProgressMeter meter(r.sink(), "mint", "steps", 100, 0, t.clock());
  ASSERT_EQ(r.updates.size(), 1u);  // the start
  EXPECT_EQ(r.updates[0].done, 0);
  EXPECT_EQ(r.updates[0].elapsed_s, 0);
  EXPECT_EQ(r.updates[0].rate, 0);     // unknown yet
  EXPECT_EQ(r.updates[0].eta_s, -1);   // unknown yet
  t.now += 2;
  meter.update(20);
  const auto& u = r.updates.back();
  EXPECT_EQ(u.stage, "mint");
  EXPECT_EQ(u.unit, "steps");
  EXPECT_EQ(u.done, 20);
  EXPECT_EQ(u.total, 100);
  EXPECT_DOUBLE_EQ(u.elapsed_s, 2);
  EXPECT_DOUBLE_EQ(u.rate, 10);
  EXPECT_DOUBLE_EQ(u.eta_s, 8);
  EXPECT_DOUBLE_EQ(u.fraction(), 0.2);
  t.now += 8;
  meter.update(100);
  EXPECT_TRUE(r.updates.back().finished());
  EXPECT_DOUBLE_EQ(r.updates.back().rate, 10);
  EXPECT_EQ(r.updates.back().eta_s, 0);
}

TEST(ProgressMeter, TheStartOnTheRealClockIsAStart) {
  // Sinks recognise the start by elapsed_s == 0: the terminal line is drawn at once.
  ProgressThrottle throttle(terminal_cadence());
  int shown = 0;
  ProgressMeter meter([&](const ProgressUpdate& u) { shown += throttle.due(u); }, "sample julep", "samples", 10);
  EXPECT_EQ(shown, 1);
  EXPECT_EQ(meter.last().elapsed_s, 0);
  meter.restart(5);
  EXPECT_EQ(shown, 2);
  EXPECT_EQ(meter.last().elapsed_s, 0);
}

TEST(ProgressMeter, RateOfAResumedLoopCountsOnlyItsOwnWork) {
  FakeClock t;
  Recorder r;
  ProgressMeter meter(r.sink(), "julep", "iterations", 300, 0, t.clock());
  t.now += 1;
  meter.restart(150);  // a saved state resumes at iteration 150
  EXPECT_EQ(r.updates.back().start, 150);
  EXPECT_EQ(r.updates.back().elapsed_s, 0);
  t.now += 5;
  meter.update(160);
  EXPECT_DOUBLE_EQ(r.updates.back().rate, 2);    // 10 iterations in 5 s, not 160
  EXPECT_DOUBLE_EQ(r.updates.back().eta_s, 70);  // 140 left
  ProgressMeter md(r.sink(), "md", "steps", 40, 20, t.clock());
  t.now += 4;
  md.update(30);
  EXPECT_DOUBLE_EQ(r.updates.back().rate, 2.5);
  EXPECT_DOUBLE_EQ(r.updates.back().eta_s, 4);
}

TEST(ProgressMeter, EmptyLoopsAndMissingSinksReportNothing) {
  FakeClock t;
  Recorder r;
  ProgressMeter empty(r.sink(), "mint", "steps", 0, 0, t.clock());
  empty.update(0);
  EXPECT_TRUE(r.updates.empty());
  ProgressMeter unset(Progress(), "mint", "steps", 10, 0, t.clock());
  unset.update(5);  // no sink: nothing to call, no crash
  EXPECT_EQ(unset.last().done, 5);
}

TEST(ProgressMeter, DetailGoesWithTheFollowingUpdates) {
  FakeClock t;
  Recorder r;
  ProgressMeter meter(r.sink(), "md", "steps", 10, 0, t.clock());
  meter.set_detail("mean U -1.500 kT");
  t.now += 1;
  meter.update(5);
  EXPECT_EQ(r.updates.back().detail, "mean U -1.500 kT");
}

TEST(ProgressFormat, Durations) {
  EXPECT_EQ(format_duration(0), "0:00");
  EXPECT_EQ(format_duration(7.4), "0:07");
  EXPECT_EQ(format_duration(59.6), "1:00");
  EXPECT_EQ(format_duration(754), "12:34");
  EXPECT_EQ(format_duration(3723), "1:02:03");
  EXPECT_EQ(format_duration(-1), "?");
  EXPECT_EQ(format_duration(std::nan("")), "?");
  EXPECT_EQ(format_duration(INFINITY), "?");
}

TEST(ProgressFormat, Rates) {
  EXPECT_EQ(format_rate(1234.4, "steps"), "1234 steps/s");
  EXPECT_EQ(format_rate(12.34, "steps"), "12.3 steps/s");
  EXPECT_EQ(format_rate(0.52, "chains"), "0.52 chains/s");
  EXPECT_EQ(format_rate(0.25, "iterations"), "4.0 s/iteration");
  EXPECT_EQ(format_rate(0, "steps"), "? steps/s");
}

TEST(ProgressFormat, BarLine) {
  EXPECT_EQ(progress_bar_line(make_update(700, 2000, 1, 700, 1.857), 20),
            "mint [#######-------------]  35%  700/2000 steps  700 steps/s  0:01<0:02");
  EXPECT_EQ(progress_bar_line(make_update(0, 2000, 0, 0, -1), 10),
            "mint [----------]   0%  0/2000 steps  ? steps/s  0:00<?");
  // 99.9% done is not 100%, and the bar is full only at the end.
  EXPECT_EQ(progress_bar_line(make_update(1998, 2000, 10, 199.8, 0.01), 10),
            "mint [#########-]  99%  1998/2000 steps  200 steps/s  0:10<0:00");
  auto done = make_update(2000, 2000, 10, 200, 0);
  done.detail = "mean U -3.000 kT";
  EXPECT_EQ(progress_bar_line(done, 10),
            "mint [##########] 100%  2000/2000 steps  200 steps/s  0:10  mean U -3.000 kT");
}

TEST(ProgressFormat, PlainLine) {
  EXPECT_EQ(progress_plain_line(make_update(700, 2000, 1, 700, 1.857)),
            "mint: 700/2000 steps (35%), 700 steps/s, elapsed 0:01, ETA 0:02\n");
  EXPECT_EQ(progress_plain_line(make_update(0, 2000, 0, 0, -1)), "mint: 0/2000 steps (0%), elapsed 0:00\n");
  EXPECT_EQ(progress_plain_line(make_update(2000, 2000, 125, 16, 0)),
            "mint: 2000/2000 steps (100%), 16.0 steps/s, 2:05\n");
}

// Runs a loop of `total` units, one per `step_s` seconds, through a printer; returns its text.
std::string run_loop(bool terminal, int64_t total, double step_s, const std::string& stage = "mint",
                     int columns = 0) {
  FakeClock t;
  std::string text;
  ProgressPrinter printer([&](const std::string& s) { text += s; }, terminal, columns);
  ProgressMeter meter([&](const ProgressUpdate& u) { printer.show(u); }, stage, "steps", total, 0, t.clock());
  for (int64_t i = 1; i <= total; ++i) {
    t.now += step_s;
    meter.update(i);
  }
  return text;
}

TEST(ProgressPrinter, PlainLinesAtEachTenthNeverACarriageReturn) {
  // 400 steps at 4 per second: 100 s, a tenth every 10 s.
  const std::string text = run_loop(false, 400, 0.25);
  EXPECT_EQ(count(text, '\r'), 0u);
  EXPECT_EQ(count(text, '\n'), 10u);
  EXPECT_EQ(text.substr(0, text.find('\n') + 1), "mint: 40/400 steps (10%), 4.00 steps/s, elapsed 0:10, ETA 1:30\n");
  EXPECT_NE(text.find("mint: 400/400 steps (100%), 4.00 steps/s, 1:40\n"), std::string::npos);
}

TEST(ProgressPrinter, PlainLinesAtMostEveryTwoSecondsAndAtLeastEveryThirty) {
  // 1000 steps in 1.5 s: no line at all (the summary lines say what was done).
  EXPECT_EQ(run_loop(false, 1000, 0.0015), "");
  // 100 steps in 4 s: tenths every 0.4 s, shown at most every 2 s, and the last.
  const std::string fast = run_loop(false, 100, 0.04);
  EXPECT_EQ(count(fast, '\n'), 2u) << fast;
  // 100 steps of 1 s: a tenth takes 10 s, so lines come every tenth ...
  EXPECT_EQ(count(run_loop(false, 100, 1.0), '\n'), 10u);
  // ... and 20 steps of 60 s (a tenth per 120 s): one line at least every 30 s, here each step.
  EXPECT_EQ(count(run_loop(false, 20, 60.0), '\n'), 20u);
}

TEST(ProgressPrinter, TerminalRedrawsOneLineInPlace) {
  // 100 steps at 16 per second: redrawn at most 10 times a second, ended by one newline.
  const std::string text = run_loop(true, 100, 0.0625);
  EXPECT_EQ(count(text, '\n'), 1u);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(count(text, '\r'), 51u);  // the start, every second step (0.125 s), and the end
  EXPECT_EQ(text.rfind('\r'), text.find("\rmint [####################] 100%"));
}

TEST(ProgressPrinter, TerminalPadsShorterLinesAndCutsLongOnes) {
  std::string text;
  ProgressPrinter printer([&](const std::string& s) { text += s; }, true, 0);
  auto u = make_update(0, 10, 0, 0, -1);
  u.detail = "a long detail that will not be there next time";
  printer.show(u);
  const size_t first = text.size() - 1;  // without the '\r'
  text.clear();
  auto v = make_update(5, 10, 1, 5, 1);
  printer.show(v);
  ASSERT_EQ(text.front(), '\r');
  EXPECT_EQ(text.size() - 1, first);  // the rest of the old line is blanked
  EXPECT_EQ(text.substr(1, progress_bar_line(v).size()), progress_bar_line(v));

  const std::string cut = run_loop(true, 10, 1.0, "a-very-long-stage-name", 40);
  size_t start = 0;
  while ((start = cut.find('\r', start)) != std::string::npos) {
    const size_t end = cut.find_first_of("\r\n", start + 1);
    EXPECT_LE((end == std::string::npos ? cut.size() : end) - start - 1, 39u);
    ++start;
  }
}

TEST(ProgressPrinter, ClearAndRedrawAroundOtherOutput) {
  std::string text;
  ProgressPrinter printer([&](const std::string& s) { text += s; }, true, 0);
  printer.show(make_update(0, 10, 0, 0, -1));
  ASSERT_TRUE(printer.line_open());
  const std::string line = text.substr(1);
  text.clear();
  printer.clear();
  EXPECT_EQ(text, "\r" + std::string(line.size(), ' ') + "\r");
  text.clear();
  printer.clear();  // already clear
  EXPECT_EQ(text, "");
  printer.redraw();
  EXPECT_EQ(text, line);
  // Updates held back by the cadence still reach the line drawn after other output.
  auto newer = make_update(3, 10, 0.05, 60, 0.12);
  printer.show(newer);
  printer.clear();
  text.clear();
  printer.redraw();
  EXPECT_EQ(text, progress_bar_line(newer));
  text.clear();
  printer.end_line();
  EXPECT_EQ(text, "\n");
  EXPECT_FALSE(printer.line_open());
  text.clear();
  printer.redraw();  // nothing open
  EXPECT_EQ(text, "");
}

TEST(ProgressThrottle, JsonCadenceAtMostOncePerSecondAndAlwaysTheLast) {
  ProgressThrottle throttle(json_cadence());
  FakeClock t;
  int shown = 0;
  ProgressMeter meter([&](const ProgressUpdate& u) { shown += throttle.due(u); }, "sample", "samples", 100, 0,
                      t.clock());
  for (int i = 1; i <= 100; ++i) {
    t.now += 0.0625;  // 6.25 s in all
    meter.update(i);
  }
  EXPECT_EQ(shown, 7);  // every 16 steps (1 s), and the last
  // A short loop still ends with its last update.
  shown = 0;
  ProgressMeter quick([&](const ProgressUpdate& u) { shown += throttle.due(u); }, "sample", "samples", 3, 0,
                      t.clock());
  for (int i = 1; i <= 3; ++i) quick.update(i);
  EXPECT_EQ(shown, 1);
  // Repeated last updates are shown once.
  quick.update(3);
  EXPECT_EQ(shown, 1);
}

TEST(ProgressThrottle, ANewLoopOfTheSameStageStartsOver) {
  ProgressThrottle throttle(json_cadence());
  FakeClock t;
  int shown = 0;
  for (int run = 0; run < 2; ++run) {
    ProgressMeter meter([&](const ProgressUpdate& u) { shown += throttle.due(u); }, "anneal mala", "chains", 2, 0,
                        t.clock());
    meter.update(1);
    meter.update(2);
  }
  EXPECT_EQ(shown, 2);
}

TEST(ProgressSinks, LogProgressWritesPlainLinesIntoALog) {
  std::string text;
  Progress sink = log_progress([&](const std::string& line) { text += line; });
  FakeClock t;
  ProgressMeter meter(sink, "julep eval", "paths", 10, 0, t.clock());
  for (int i = 1; i <= 10; ++i) {
    t.now += 3;
    meter.update(i);
  }
  EXPECT_EQ(count(text, '\r'), 0u);
  EXPECT_EQ(count(text, '\n'), 10u);
  EXPECT_EQ(text.substr(0, text.find('\n') + 1), "julep eval: 1/10 paths (10%), 3.0 s/path, elapsed 0:03, ETA 0:27\n");
  // No log, or the silent sink: nothing happens.
  ProgressMeter quiet(silent_progress(), "x", "steps", 10, 0, t.clock());
  quiet.update(10);
  log_progress(Log())(make_update(1, 1, 1, 1, 0));
}

}  // namespace
}  // namespace mintjulep
