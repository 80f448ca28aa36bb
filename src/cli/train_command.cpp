// `mintjulep train`: fits the sampler described by a TOML config in two stages (Mint prior,
// then Julep kernel) and writes a run folder that `mintjulep sample` loads (mintjulep::train).
#include <mintjulep/config.hpp>
#include <mintjulep/error.hpp>
#include <mintjulep/model.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "cli/commands.hpp"
#include "cli/console.hpp"
#include "cli/device.hpp"
#include "model/run_model.hpp"

namespace mintjulep::cli {
namespace {

namespace fs = std::filesystem;

struct TrainOptions {
  std::string config;
  std::string out;
  int64_t seed = -1;
  std::string stage = "all";
  std::string from;
  std::string fit_samples;  // .npz of reference configurations: fit the prior to them instead
  int64_t burn_in = 0;
  bool relabel = true;
  bool resume = false;  // continue the run saved in --out
};

void run_train(const TrainOptions& opt, const GlobalOptions& global) {
  TrainRunOptions train_options;
  train_options.stage = opt.stage;
  train_options.from = opt.from;
  train_options.fit_samples = opt.fit_samples;
  train_options.burn_in = opt.burn_in;
  train_options.relabel = opt.relabel;
  train_options.resume = opt.resume;
  check_train_options(train_options);
  RunConfig config = load_config(opt.config);
  if (opt.seed >= 0) config.seed = static_cast<uint64_t>(opt.seed);
  GlobalOptions effective = global;
  if (effective.threads == 0) effective.threads = config.threads;
  if (effective.device.empty()) effective.device = config.device;
  apply_global_options(effective);

  std::error_code ec;
  fs::create_directories(opt.out, ec);
  check(!ec && fs::is_directory(opt.out),
        fmt::format("cannot create output folder '{}': {}; choose a folder you can write to", opt.out, ec.message()));
  const auto folder = fs::path(opt.out);
  const auto config_copy = (folder / "config.toml").string();
  check(!opt.resume || !fs::exists(config_copy) || read_text(config_copy) == read_text(opt.config),
        fmt::format("--resume: '{}' differs from the config this run started with ('{}'); resume with that one",
                    opt.config, config_copy));
  Model model = build_model(config, parse_device(effective.device),
                            /*prior_from_checkpoint=*/opt.stage == "julep", console().log());
  model.progress = console().progress_sink();
  train_options.config_text = read_text(opt.config);
  const std::string metrics = train(model, opt.out, train_options);
  console().result({{"run", opt.out}, {"metrics", nlohmann::json::parse(metrics)}});
}

}  // namespace

void add_train_command(CLI::App& app, const GlobalOptions& global) {
  auto opt = std::make_shared<TrainOptions>();
  auto* cmd = app.add_subcommand("train", "Train the sampler described by a TOML config");
  cmd->add_option("config", opt->config, "configuration file, e.g. configs/dw4.toml")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", opt->out, "output folder (created if missing)")->required();
  cmd->add_option("--seed", opt->seed, "random seed (overrides the config's)");
  cmd->add_option("--stage", opt->stage, "all (mint then julep), mint, or julep (needs --from)")
      ->capture_default_str();
  cmd->add_option("--from", opt->from, "run folder whose prior.pt the julep stage starts from");
  cmd->add_option("--fit-samples", opt->fit_samples,
                  "diagnostic: fit the prior by maximum likelihood to these configurations (.npz from "
                  "md or sample) instead of the data-free Mint stage")
      ->check(CLI::ExistingFile);
  cmd->add_option("--burn-in", opt->burn_in, "md frames to drop from --fit-samples")->capture_default_str();
  cmd->add_flag("--resume", opt->resume,
                "continue an interrupted run in --out: a finished Mint stage and AIS baseline are reused, "
                "kernel training continues from its last saved state (same config and seed)");
  cmd->add_flag("!--no-relabel", opt->relabel,
                "with --fit-samples: do not permute identical particles at random (never done for molecules)");
  cmd->callback([opt, &global] { run_train(*opt, global); });
}

}  // namespace mintjulep::cli
