#pragma once
// The subcommands of the `mintjulep` command line tool. Each add_* function registers its
// subcommand on the app; the callback runs it and throws mintjulep::Error on bad input.
#include <CLI/CLI.hpp>

namespace mintjulep::cli {

struct GlobalOptions {
  int threads = 0;  // 0: one per core
  std::string device;  // empty: the config's, else cpu
  bool quiet = false;    // --quiet: no progress, no informational lines
  std::string log_json;  // --log-json FILE: every event as a JSON line
  std::vector<std::string> args;  // the command line after the program name
};

void add_energy_command(CLI::App& app, const GlobalOptions& global);
void add_train_command(CLI::App& app, const GlobalOptions& global);
void add_sample_command(CLI::App& app, const GlobalOptions& global);
void add_md_command(CLI::App& app, const GlobalOptions& global);
void add_ramachandran_command(CLI::App& app, const GlobalOptions& global);
void add_metrics_command(CLI::App& app, const GlobalOptions& global);
void add_bench_command(CLI::App& app, const GlobalOptions& global);

// Applies --threads and checks --device; returns the torch device string to use.
void apply_global_options(const GlobalOptions& global);

}  // namespace mintjulep::cli
