#pragma once
// What the command line tool shows and records. Informational lines go to standard output;
// progress to standard error, as one self-updating line on a terminal and as plain periodic
// lines otherwise (never a '\r'); --quiet silences both. With --log-json FILE every event
// (start, info, progress, warning, result, end or error) is also written to FILE as one JSON
// object per line.
#include <mintjulep/progress.hpp>

#include <nlohmann/json_fwd.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace mintjulep::cli {

class Console {
 public:
  Console();
  ~Console();
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  // Applies --quiet and --log-json (opened here, truncated; an Error when it cannot be
  // written) and records the start event of `command` run with `args`.
  void configure(bool quiet, const std::string& log_json, const std::string& command,
                 const std::vector<std::string>& args);
  bool quiet() const { return quiet_; }

  // An informational line, newline included: standard output unless quiet, and an info event.
  void info(const std::string& line);
  // A line of a command's own output (energies, metrics): standard output even when quiet.
  void output(const std::string& text);
  // A warning: standard error even when quiet, and a warning event.
  void warning(const std::string& message);
  // A progress update: shown on standard error (unless quiet) and as a progress event, each at
  // its own cadence.
  void progress(const ProgressUpdate& update);
  // A result event: {"event": "result", "command": ..., plus the fields of `fields`}.
  void result(const nlohmann::json& fields);
  // The end of a successful run (an end event with exit code 0) ...
  void finish();
  // ... or of a failed one: "mintjulep: error: MESSAGE" on standard error and an error event.
  void error(const std::string& message, int exit_code);

  // The errno of the first write to standard output that failed (0: none failed).
  int stdout_errno() const;

  // info() and progress() as the library's callbacks.
  Log log();
  Progress progress_sink();

 private:
  struct State;
  void event(nlohmann::ordered_json& event);
  // Around any other output to the terminal that shows the progress line.
  void before_output(std::FILE* stream);
  void after_output(std::FILE* stream);
  void write_stdout(const std::string& text);

  bool quiet_ = false;
  std::string command_;
  std::unique_ptr<State> state_;
};

// The tool's one console.
Console& console();

}  // namespace mintjulep::cli
