#include "cli/console.hpp"

#include <mintjulep/error.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sys/ioctl.h>
#include <unistd.h>

namespace mintjulep::cli {
namespace {

// Columns of the terminal on standard error: the terminal's, else $COLUMNS, else 80.
int terminal_columns() {
  winsize size{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  if (const char* columns = std::getenv("COLUMNS")) {
    const int n = std::atoi(columns);
    if (n > 0) return n;
  }
  return 80;
}

void write_stderr(const std::string& text) {
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace

struct Console::State {
  double t0 = steady_seconds();
  bool stderr_terminal = ::isatty(STDERR_FILENO) != 0;
  bool stdout_terminal = ::isatty(STDOUT_FILENO) != 0;
  ProgressPrinter printer{write_stderr, stderr_terminal, stderr_terminal ? terminal_columns() : 0};
  ProgressThrottle json_throttle{json_cadence()};
  std::FILE* json = nullptr;
  std::string json_path;
  int stdout_errno = 0;
};

Console::Console() : state_(std::make_unique<State>()) {}

Console::~Console() {
  if (state_->json) std::fclose(state_->json);
}

Console& console() {
  static Console instance;
  return instance;
}

void Console::configure(bool quiet, const std::string& log_json, const std::string& command,
                        const std::vector<std::string>& args) {
  quiet_ = quiet;
  command_ = command;
  if (!log_json.empty()) {
    std::FILE* file = std::fopen(log_json.c_str(), "w");
    check(file != nullptr, fmt::format("--log-json: cannot write '{}': {}; give a file in a writable folder",
                                       log_json, std::strerror(errno)));
    state_->json = file;
    state_->json_path = log_json;
  }
  nlohmann::ordered_json start = {{"event", "start"}, {"command", command}, {"args", args}};
  event(start);
}

void Console::event(nlohmann::ordered_json& e) {
  if (!state_->json) return;
  e["time_s"] = steady_seconds() - state_->t0;
  const std::string line = e.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  std::fputs(line.c_str(), state_->json);
  std::fflush(state_->json);  // readable line by line while the run goes on
}

void Console::before_output(std::FILE* stream) {
  // The progress line shares the terminal with standard output only when both are terminals.
  if (stream == stderr || state_->stdout_terminal) state_->printer.clear();
}

void Console::after_output(std::FILE* stream) {
  if (stream == stderr || state_->stdout_terminal) state_->printer.redraw();
}

void Console::info(const std::string& line) {
  if (!quiet_) {
    write_stdout(line);
  }
  std::string message = line;
  while (!message.empty() && message.back() == '\n') message.pop_back();
  nlohmann::ordered_json e = {{"event", "info"}, {"message", message}};
  event(e);
}

void Console::output(const std::string& text) { write_stdout(text); }

void Console::write_stdout(const std::string& text) {
  before_output(stdout);
  errno = 0;
  if ((std::fputs(text.c_str(), stdout) < 0 || std::fflush(stdout) != 0) && state_->stdout_errno == 0)
    state_->stdout_errno = errno != 0 ? errno : EIO;
  after_output(stdout);
}

int Console::stdout_errno() const { return state_->stdout_errno; }

void Console::warning(const std::string& message) {
  before_output(stderr);
  fmt::print(stderr, "mintjulep: warning: {}\n", message);
  std::fflush(stderr);
  after_output(stderr);
  nlohmann::ordered_json e = {{"event", "warning"}, {"message", message}};
  event(e);
}

void Console::progress(const ProgressUpdate& u) {
  if (!quiet_) state_->printer.show(u);
  if (state_->json && state_->json_throttle.due(u)) {
    using Json = nlohmann::ordered_json;
    Json e = {{"event", "progress"},
              {"stage", u.stage},
              {"unit", u.unit},
              {"done", u.done},
              {"total", u.total},
              {"fraction", u.fraction()},
              {"elapsed_s", u.elapsed_s},
              {"rate", u.rate > 0 ? Json(u.rate) : Json()},       // null while unknown
              {"eta_s", u.eta_s >= 0 ? Json(u.eta_s) : Json()}};  // null while unknown
    if (!u.detail.empty()) e["detail"] = u.detail;
    event(e);
  }
}

void Console::result(const nlohmann::json& fields) {
  nlohmann::ordered_json e = {{"event", "result"}, {"command", command_}};
  // In the order of `fields` (sorted by key), after the event and the command.
  for (const auto& [key, value] : fields.items()) e[key] = nlohmann::ordered_json::parse(value.dump());
  event(e);
}

void Console::finish() {
  state_->printer.end_line();
  nlohmann::ordered_json e = {{"event", "end"}, {"exit_code", 0}};
  event(e);
}

void Console::error(const std::string& message, int exit_code) {
  state_->printer.end_line();
  fmt::print(stderr, "mintjulep: error: {}\n", message);
  std::fflush(stderr);
  nlohmann::ordered_json e = {{"event", "error"}, {"message", message}, {"exit_code", exit_code}};
  event(e);
}

Log Console::log() {
  return [this](const std::string& line) { info(line); };
}

Progress Console::progress_sink() {
  return [this](const ProgressUpdate& u) { progress(u); };
}

}  // namespace mintjulep::cli
