// `mintjulep sample`: draws importance-weighted samples from a trained run folder and writes
// them as a numpy .npz archive: positions (M, N, n) with the anchor at the origin, log_w (M,)
// and energies (M,) in kT, and as PDB, DCD or extended XYZ files on request. --method picks
// the annealing (default: the trained Julep kernel); mala and smc-mala need only the prior.
// --resample N writes N equally weighted samples drawn from the weighted ones instead.
#include <mintjulep/annealing.hpp>
#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>
#include <mintjulep/model.hpp>

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "cli/commands.hpp"
#include "cli/console.hpp"
#include "cli/device.hpp"
#include "cli/outputs.hpp"

namespace mintjulep::cli {
namespace {

namespace fs = std::filesystem;

struct SampleOptions {
  std::string run;
  int64_t count = 10000;
  std::string out;
  std::vector<std::string> trajectories;
  int64_t resample = 0;
  bool resample_given = false;
  int64_t seed = 0;
  int64_t chunk = 500;
  bool chunk_given = false;
  std::string method;  // empty: the config's [anneal] method, else the trained kernel
  int64_t steps = 0;   // MALA T (0: the config's)
  int64_t moves = 0;   // MALA moves per temperature (0: the config's)
  int64_t leapfrog = 0;        // 0: the config's
  double schedule_power = 0;   // 0: the config's
  int64_t independence = -1;   // -1: the config's
  int64_t pilot = -1;          // -1: the config's
  std::string path;            // empty: the config's
  std::string reverse_from;    // exact samples to anneal backwards from
};

// --reverse-from: reverse annealing from exact samples, an estimate of log Z from above.
void run_reverse(const SampleOptions& opt, Model& model, const SamplingOptions& sampling, const OutputFiles& outputs) {
  check(!opt.resample_given && outputs.trajectories.empty(),
        "--reverse-from writes only the reverse weights (.npz); drop --resample and --trajectory");
  check(fs::exists(opt.reverse_from), fmt::format("--reverse-from: file '{}' not found", opt.reverse_from));
  const auto x = read_configurations(opt.reverse_from, *model.system, /*every_md_frame=*/true);
  const AnnealResult r = reverse_sample(model, sampling, x);
  // Delta method: the se of log mean w is sqrt(Var(w / mean w) / M) = sqrt((1 / ESS - 1) / M).
  const double se = r.ess > 0 ? std::sqrt(std::max(0.0, 1.0 / r.ess - 1.0) / static_cast<double>(opt.count))
                              : std::numeric_limits<double>::infinity();
  console().info(fmt::format("reverse MALA annealing from {} exact samples of {} (T = {}): log Z {:.4f} +- {:.4f} "
                             "(-log mean w; high on average where forward annealing is low), reverse ESS {:.2f}%, "
                             "{:.1f} s, {} threads\n",
                             opt.count, opt.reverse_from, r.steps, r.log_z, se, 100 * r.ess, r.seconds,
                             at::get_num_threads()));
  write_npz(outputs.npz, {{"log_w_reverse", r.log_w},
                          {"log_z_reverse", torch::tensor({r.log_z}, torch::kFloat64)},
                          {"final_positions", r.y}});
  console().info(fmt::format("wrote {}\n", outputs.npz));
  console().result({{"run", opt.run},
                    {"method", "reverse-mala"},
                    {"reverse_from", opt.reverse_from},
                    {"num_samples", opt.count},
                    {"steps", r.steps},
                    {"reverse_ess", r.ess},
                    {"log_z_reverse", r.log_z},
                    {"log_z_reverse_se", se},
                    {"non_finite", r.num_non_finite},
                    {"seconds", r.seconds}});
}

// FNV-1a of a file's bytes ("-" when it is absent): which checkpoint the samples came from.
std::string file_digest(const fs::path& path) {
  if (!fs::exists(path)) return "-";
  std::ifstream in(path, std::ios::binary);
  uint64_t hash = 14695981039346656037ull;
  char buffer[1 << 16];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    for (std::streamsize i = 0; i < in.gcount(); ++i) {
      hash ^= static_cast<unsigned char>(buffer[i]);
      hash *= 1099511628211ull;
    }
  }
  return fmt::format("{:016x}", hash);
}

void run_sample(const SampleOptions& given, const GlobalOptions& global) {
  SampleOptions opt = given;
  check(opt.count >= 1, "--num-samples must be >= 1");
  check(opt.chunk >= 1, "--chunk must be >= 1");
  check(!opt.resample_given || opt.resample >= 1,
        fmt::format("--resample must be >= 1, got {}", opt.resample));
  const OutputFiles outputs = resolve_outputs(opt.out, opt.trajectories);
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
                         /*require_kernel=*/needs_kernel, console().log());
  model.progress = console().progress_sink();

  SamplingOptions sampling;
  sampling.method = opt.method;
  sampling.count = opt.count;
  sampling.seed = static_cast<uint64_t>(opt.seed);
  sampling.chunk = opt.chunk;
  sampling.chunk_given = opt.chunk_given;
  sampling.steps = opt.steps;
  sampling.moves = opt.moves;
  sampling.leapfrog = opt.leapfrog;
  sampling.schedule_power = opt.schedule_power;
  sampling.independence = opt.independence;
  sampling.pilot = opt.pilot;
  sampling.path = opt.path;
  // Finished chunks go to OUT.partial (OUT the .npz) until the outputs are written: the same
  // command, rerun after a kill, takes them instead of drawing them again. The key names all the
  // samples depend on, so another command never reuses them.
  sampling.partial_folder = outputs.npz + ".partial";
  sampling.partial_key = fmt::format(
      "method={}\nnum_samples={}\nseed={}\nchunk={}\nchunk_given={}\nsteps={}\nmoves={}\nleapfrog={}\n"
      "schedule_power={}\nindependence={}\npilot={}\npath={}\ndevice={}\n"
      "config={}\nprior={}\nsampler={}\n",
      opt.method.empty() ? "kernel" : opt.method, opt.count, opt.seed, opt.chunk, opt.chunk_given, opt.steps, opt.moves,
      opt.leapfrog, opt.schedule_power, opt.independence, opt.pilot, opt.path, model.device.str(), file_digest(folder / "config.toml"), file_digest(folder / "prior.pt"),
      file_digest(folder / "sampler.pt"));
  if (!opt.reverse_from.empty()) return run_reverse(opt, model, sampling, outputs);
  const Samples samples = sample(model, sampling);
  auto positions = samples.positions, energy = samples.energies, log_w = samples.log_w;
  console().info(fmt::format("{} samples, {} {:.2f}%, log Z {:.4f}, {}, {:.1f} s, {} threads\n",
                             opt.count, samples.smc ? "SMC final ESS" : "path ESS", 100 * samples.ess,
                             samples.log_z, samples.dropped, samples.seconds, at::get_num_threads()));
  nlohmann::json result = {{"run", opt.run},
                           {"method", opt.method.empty() ? "kernel" : opt.method},
                           {"num_samples", opt.count},
                           {samples.smc ? "smc_final_ess" : "path_ess", samples.ess},
                           {"log_z", samples.log_z},
                           {"non_finite", samples.num_non_finite},
                           {"dropped_nan", samples.num_nan},
                           {"dropped_overflow", samples.num_overflow},
                           {"zero_weight", samples.num_zero},
                           {"seconds", samples.seconds}};

  std::vector<std::pair<std::string, torch::Tensor>> arrays;
  std::vector<std::string> labels;
  if (opt.resample_given) {
    check(samples.num_non_finite < opt.count && samples.ess > 0, "--resample: no sample has a finite weight");
    // One uniform from the seed on its own stream, so the choice is reproducible and does not
    // shift the sampler's random numbers.
    const auto seed = static_cast<uint64_t>(opt.seed);
    std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), uint32_t{0x7265'7361}};
    std::mt19937_64 rng(seq);
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    auto index = systematic_resample(log_w, u, opt.resample);
    positions = positions.index_select(0, index);
    energy = energy.index_select(0, index);
    arrays = {{"positions", positions},
              {"log_w", torch::zeros({opt.resample}, torch::kFloat64)},
              {"energies", energy},
              {"source_index", index},
              {"resampled_from", torch::tensor({opt.count}, torch::kLong)},
              {"ess", torch::tensor({samples.ess}, torch::kFloat64)},
              {"log_z", torch::tensor({samples.log_z}, torch::kFloat64)}};
    const auto source = index.accessor<int64_t, 1>();
    const auto e = energy.accessor<double, 1>();
    for (int64_t i = 0; i < opt.resample; ++i)
      labels.push_back(fmt::format("sample={} source_index={} log_w=0 energy={:.10g}", i, source[i], e[i]));
    console().info(fmt::format("resampled {} from {} weighted samples, ESS {:.1f}% ({:.0f})\n", opt.resample,
                               opt.count, 100 * samples.ess, samples.ess * static_cast<double>(opt.count)));
    result["resampled"] = opt.resample;
  } else {
    arrays = {{"positions", positions}, {"log_w", log_w}, {"energies", energy}};
    const auto w = log_w.to(torch::kFloat64);
    const auto lw = w.accessor<double, 1>();
    const auto e = energy.accessor<double, 1>();
    for (int64_t i = 0; i < opt.count; ++i)
      labels.push_back(fmt::format("sample={} log_w={:.10g} energy={:.10g}", i, lw[i], e[i]));
  }
  // The .npz first: it holds the weights, which a DCD file cannot.
  write_npz(outputs.npz, arrays);
  for (const auto& path : outputs.trajectories) write_trajectory(path, positions, *model.system, labels);
  // The outputs are complete: the chunks are not needed any more. A folder that stays behind
  // (permissions, a full disk) is only clutter, so it is reported, not an error.
  if (!remove_tree(sampling.partial_folder))
    console().warning(fmt::format("could not remove the chunk folder {}; delete it by hand", sampling.partial_folder));
  console().info(fmt::format("wrote {}\n", outputs.describe()));
  result["outputs"] = outputs.all();
  console().result(result);
}

}  // namespace

void add_sample_command(CLI::App& app, const GlobalOptions& global) {
  auto opt = std::make_shared<SampleOptions>();
  auto* cmd = app.add_subcommand("sample", "Draw weighted samples from a trained run folder");
  cmd->add_option("run", opt->run, "run folder written by mintjulep train")->required();
  cmd->add_option("--num-samples", opt->count, "number of samples")->capture_default_str();
  cmd->add_option("--out", opt->out,
                  "output file: .npz (positions, log_w, energies), or .pdb, .dcd or .xyz (Angstrom; the "
                  "arrays then also go to the same name with .npz)")
      ->required();
  cmd->add_option("--trajectory", opt->trajectories,
                  "also write the samples to this .pdb, .dcd or .xyz file (repeatable)");
  cmd->add_option("--resample", opt->resample,
                  "write N equally weighted samples, drawn by systematic resampling of the weights, "
                  "instead of the weighted ones");
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
  cmd->add_option("--leapfrog", opt->leapfrog,
                  "leapfrog steps per move: 1 MALA, L > 1 HMC (default: the config's [anneal] leapfrog)")
      ->check(CLI::Range(int64_t{1}, int64_t{1000}));
  cmd->add_option("--schedule-power", opt->schedule_power,
                  "annealing temperatures t_j = (j/T)^power (default: the config's [anneal] schedule_power)")
      ->check(CLI::Range(0.01, 100.0));
  cmd->add_option("--independence", opt->independence,
                  "independence moves from the prior per temperature, after the MALA/HMC moves (default: the "
                  "config's [anneal] independence)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000}));
  cmd->add_option("--pilot", opt->pilot,
                  "chains of the step-size pilot run before the first chunk, 0 for none (default: the config's "
                  "[anneal] pilot)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  cmd->add_option("--reverse-from", opt->reverse_from,
                  "instead of sampling: reverse MALA annealing from these exact samples of the target (an md "
                  ".npz, every frame; or any file md --in reads), --num-samples of them evenly spaced; prints "
                  "-log mean w, an estimate of log Z that is high on average where forward annealing's is low, "
                  "and writes the reverse log weights (log_w_reverse) to --out");
  cmd->add_option("--path", opt->path,
                  "MALA/HMC path: soft (the soft-core path) or geometric (-(1-t) log q + t U) (default: the config's "
                  "[anneal] path)")
      ->check(CLI::IsMember({"soft", "geometric"}));
  cmd->callback([opt, cmd, &global] {
    opt->chunk_given = cmd->count("--chunk") > 0;
    opt->resample_given = cmd->count("--resample") > 0;
    run_sample(*opt, global);
  });
}

}  // namespace mintjulep::cli
