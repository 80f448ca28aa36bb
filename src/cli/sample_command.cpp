// `mintjulep sample`: draws importance-weighted samples from a trained run folder and writes
// them as a numpy .npz archive: positions (M, N, n) with the anchor at the origin, log_w (M,)
// and energies (M,) in kT.
#include <mintjulep/error.hpp>
#include <mintjulep/estimators.hpp>
#include <mintjulep/io.hpp>
#include <mintjulep/julep_training.hpp>

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cli/commands.hpp"
#include "cli/device.hpp"
#include "cli/run_model.hpp"

namespace mintjulep::cli {
namespace {

namespace fs = std::filesystem;

struct SampleOptions {
  std::string run;
  int64_t count = 10000;
  std::string out;
  int64_t seed = 0;
  int64_t chunk = 500;
};

void run_sample(const SampleOptions& opt, const GlobalOptions& global) {
  check(opt.count >= 1, "--num-samples must be >= 1");
  check(opt.chunk >= 1, "--chunk must be >= 1");
  const auto folder = fs::path(opt.run);
  check(fs::is_directory(folder), fmt::format("run folder '{}' not found", opt.run));
  RunConfig config = load_config((folder / "config.toml").string());
  GlobalOptions effective = global;
  if (effective.threads == 0) effective.threads = config.threads;
  if (effective.device.empty()) effective.device = config.device;
  apply_global_options(effective);
  Model model = build_model(config, parse_device(effective.device), /*prior_from_checkpoint=*/true);
  load_checkpoint(*model.sampler, (folder / "sampler.pt").string(), model.device);

  const auto start = std::chrono::steady_clock::now();
  torch::manual_seed(static_cast<uint64_t>(opt.seed));
  auto batch = sample_julep(model.sampler, opt.count, opt.chunk, static_cast<uint64_t>(opt.seed),
                            [&](int64_t done) {
                              if (done == opt.count || done % (20 * opt.chunk) == 0) {
                                fmt::print(stderr, "sampled {}/{}\n", done, opt.count);
                              }
                            });
  std::vector<torch::Tensor> energies;
  for (int64_t i = 0; i < opt.count; i += opt.chunk) {
    torch::NoGradGuard no_grad;
    energies.push_back(model.energy->value(batch.y.narrow(0, i, std::min(opt.chunk, opt.count - i)), 1.0)
                           .to(torch::kCPU, torch::kFloat64));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto summary = summarize_log_weights(batch.log_w);
  write_npz(opt.out, {{"positions", model.energy->to_full(batch.y).to(torch::kCPU, torch::kFloat64)},
                      {"log_w", batch.log_w.to(torch::kCPU)},
                      {"energies", torch::cat(energies)}});
  fmt::print("{} samples, path ESS {:.2f}%, log Z {:.4f}, {} non-finite weights, {:.1f} s, {} threads; "
             "wrote {}\n",
             opt.count, 100 * summary.ess, summary.log_z, summary.num_samples - summary.num_finite,
             seconds, at::get_num_threads(), opt.out);
}

}  // namespace

void add_sample_command(CLI::App& app, const GlobalOptions& global) {
  auto opt = std::make_shared<SampleOptions>();
  auto* cmd = app.add_subcommand("sample", "Draw weighted samples from a trained run folder");
  cmd->add_option("run", opt->run, "run folder written by mintjulep train")->required();
  cmd->add_option("--num-samples", opt->count, "number of samples")->capture_default_str();
  cmd->add_option("--out", opt->out, "output .npz file")->required();
  cmd->add_option("--seed", opt->seed, "random seed")->capture_default_str();
  cmd->add_option("--chunk", opt->chunk, "trajectories simulated at once")->capture_default_str();
  cmd->callback([opt, &global] { run_sample(*opt, global); });
}

}  // namespace mintjulep::cli
