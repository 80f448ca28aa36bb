// `mintjulep sample`: draws importance-weighted samples from a trained run folder and writes
// them as a numpy .npz archive: positions (M, N, n) with the anchor at the origin, log_w (M,)
// and energies (M,) in kT. --method picks the annealing (default: the trained Julep kernel);
// mala and smc-mala need only the prior.
#include <mintjulep/annealing.hpp>
#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>
#include <mintjulep/model.hpp>

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "cli/commands.hpp"
#include "cli/device.hpp"

namespace mintjulep::cli {
namespace {

namespace fs = std::filesystem;

struct SampleOptions {
  std::string run;
  int64_t count = 10000;
  std::string out;
  int64_t seed = 0;
  int64_t chunk = 500;
  bool chunk_given = false;
  std::string method;  // empty: the config's [anneal] method, else the trained kernel
  int64_t steps = 0;   // MALA T (0: the config's)
  int64_t moves = 0;   // MALA moves per temperature (0: the config's)
};

void run_sample(const SampleOptions& given, const GlobalOptions& global) {
  SampleOptions opt = given;
  check(opt.count >= 1, "--num-samples must be >= 1");
  check(opt.chunk >= 1, "--chunk must be >= 1");
  const auto folder = fs::path(opt.run);
  check(fs::is_directory(folder), fmt::format("run folder '{}' not found", opt.run));
  RunConfig config = load_config((folder / "config.toml").string());
  GlobalOptions effective = global;
  if (effective.threads == 0) effective.threads = config.threads;
  if (effective.device.empty()) effective.device = config.device;
  apply_global_options(effective);
  // Without --method: the run's own sampler, i.e. its [anneal] method when the config has one.
  if (opt.method.empty() && config.anneal_configured) opt.method = config.anneal.method;
  check(opt.method.empty() || opt.method == "prior" ||
            std::find(anneal_methods().begin(), anneal_methods().end(), opt.method) != anneal_methods().end(),
        fmt::format("--method must be prior or an annealing method, got '{}'", opt.method));
  const bool needs_kernel = opt.method.empty() || opt.method == "julep" || opt.method == "smc-julep";
  Model model = load_run(opt.run, /*system: config's=*/nullptr, config, parse_device(effective.device),
                         /*require_kernel=*/needs_kernel);

  SamplingOptions sampling;
  sampling.method = opt.method;
  sampling.count = opt.count;
  sampling.seed = static_cast<uint64_t>(opt.seed);
  sampling.chunk = opt.chunk;
  sampling.chunk_given = opt.chunk_given;
  sampling.steps = opt.steps;
  sampling.moves = opt.moves;
  sampling.progress = [&](int64_t done, int64_t count) {
    if (done == count || done % (20 * opt.chunk) == 0) {
      fmt::print(stderr, "sampled {}/{}\n", done, count);
    }
  };
  const Samples samples = sample(model, sampling);
  write_npz(opt.out, {{"positions", samples.positions},
                      {"log_w", samples.log_w},
                      {"energies", samples.energies}});
  fmt::print("{} samples, {} {:.2f}%, log Z {:.4f}, {} non-finite weights, {:.1f} s, {} threads; "
             "wrote {}\n",
             opt.count, samples.smc ? "SMC final ESS" : "path ESS", 100 * samples.ess, samples.log_z,
             samples.num_non_finite, samples.seconds, at::get_num_threads(), opt.out);
}

}  // namespace

void add_sample_command(CLI::App& app, const GlobalOptions& global) {
  auto opt = std::make_shared<SampleOptions>();
  auto* cmd = app.add_subcommand("sample", "Draw weighted samples from a trained run folder");
  cmd->add_option("run", opt->run, "run folder written by mintjulep train")->required();
  cmd->add_option("--num-samples", opt->count, "number of samples")->capture_default_str();
  cmd->add_option("--out", opt->out, "output .npz file")->required();
  cmd->add_option("--seed", opt->seed, "random seed")->capture_default_str();
  cmd->add_option("--chunk", opt->chunk,
                  "trajectories simulated at once (with --method: default the config's [anneal] chunk, the "
                  "SMC population)")
      ->capture_default_str();
  cmd->add_option("--method", opt->method,
                  "prior (fresh prior draws, weights -U - log q), or annealing: ula, mala, julep, smc-ula, smc-mala "
                  "or smc-julep (default: the config's [anneal] method, else the trained kernel); prior, mala and smc-mala need only the prior, e.g. "
                  "a --stage mint run");
  cmd->add_option("--steps", opt->steps, "MALA temperatures T (default: the config's [anneal] steps)");
  cmd->add_option("--moves", opt->moves, "MALA moves per temperature (default: the config's [anneal] moves)");
  cmd->callback([opt, cmd, &global] {
    opt->chunk_given = cmd->count("--chunk") > 0;
    run_sample(*opt, global);
  });
}

}  // namespace mintjulep::cli
