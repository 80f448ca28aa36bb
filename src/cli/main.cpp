// mintjulep: command line entry point. Errors in user input print one line and exit 2.
#include <mintjulep/error.hpp>
#include <mintjulep/threads.hpp>

#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "cli/commands.hpp"
#include "cli/console.hpp"

namespace mintjulep::cli {

void apply_global_options(const GlobalOptions& global) {
  check(global.threads >= 0, "--threads must be >= 0 (0 means one per core)");
  set_threads(global.threads);
}

}  // namespace mintjulep::cli

namespace {

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

int main(int argc, char** argv) {
  using namespace mintjulep;
  keep_freed_memory();
  // Past a file size limit (ulimit -f) a write fails with EFBIG, reported like a full disk,
  // instead of SIGXFSZ killing the process.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"MintJulep: sample Boltzmann distributions of N-body systems from the energy alone"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the subcommand
  cli::GlobalOptions global;
  app.add_option("--threads", global.threads, "CPU threads for tensor operations (0: one per core)")
      ->capture_default_str();
  app.add_option("--device", global.device, "cpu or cuda (default: the config's, else cpu)");
  app.add_flag("-q,--quiet", global.quiet,
               "no progress and no informational lines (errors and warnings still go to standard error; "
               "result files are still written)");
  app.add_option("--log-json", global.log_json,
                 "also write every event (start, info, progress, result, end or error) to FILE, one JSON "
                 "object per line");
  // Before the subcommand runs: --quiet and --log-json apply to all it prints.
  std::vector<std::string> args(argv + 1, argv + argc);
  global.args = args;
  app.parse_complete_callback([&] {
    const auto commands = app.get_subcommands();
    cli::console().configure(global.quiet, global.log_json, commands.empty() ? "" : commands.front()->get_name(),
                             args);
  });
  cli::add_energy_command(app, global);
  cli::add_train_command(app, global);
  cli::add_sample_command(app, global);
  cli::add_md_command(app, global);
  cli::add_ramachandran_command(app, global);
  cli::add_metrics_command(app, global);
  cli::add_bench_command(app, global);
  auto& console = cli::console();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    console.error(fmt::format("{}; see 'mintjulep --help'", first_line(e.what())), 2);
    return 2;
  } catch (const Error& e) {
    console.error(e.what(), 2);
    return 2;
  } catch (const c10::Error& e) {
    console.error(first_line(e.what_without_backtrace()), 2);
    return 2;
  } catch (const std::system_error& e) {
    // The environment, not a bug: e.g. standard output on a full disk (fmt), a file system error.
    console.error(first_line(e.what()), 2);
    return 2;
  } catch (const std::exception& e) {
    console.error(first_line(e.what()), 1);
    return 1;
  }
  // Printed results (energies, tables) are lost when standard output cannot take them.
  errno = 0;
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    const int code = console.stdout_errno() != 0 ? console.stdout_errno() : (errno != 0 ? errno : EIO);
    console.error(fmt::format("writing the standard output failed: {}; free disk space or redirect it elsewhere",
                              std::strerror(code)), 2);
    return 2;
  }
  console.finish();
  return 0;
}
