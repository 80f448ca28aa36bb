// Training a model into a run folder: the Mint stage (prior.pt), the AIS baseline, the Julep
// kernel stage and the [anneal] evaluation (sampler.pt), with metrics.json after each part.
#include <mintjulep/error.hpp>
#include <mintjulep/estimators.hpp>
#include <mintjulep/io.hpp>
#include <mintjulep/julep_training.hpp>
#include <mintjulep/mint_training.hpp>
#include <mintjulep/model.hpp>
#include <mintjulep/molecular_energy.hpp>
#include <mintjulep/pair_energies.hpp>
#include <mintjulep/ramachandran.hpp>

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <optional>

#include "model/run_model.hpp"

namespace mintjulep {
namespace {

namespace fs = std::filesystem;

// Reference configurations (S, N, n) from an .npz: `positions` of `mintjulep sample` (M, N, n)
// or of `mintjulep md` (F, R, N, n), whose first burn_in frames are dropped.
torch::Tensor load_reference_samples(const std::string& path, const Energy& system, int64_t burn_in) {
  auto arrays = read_npz(path);
  auto found = arrays.find("positions");
  check(found != arrays.end(), fmt::format("'{}' has no 'positions' array; give the .npz written by "
                                           "mintjulep md or mintjulep sample", path));
  auto x = found->second;
  if (x.dim() == 4) {
    check(burn_in >= 0 && burn_in < x.size(0),
          fmt::format("--burn-in {} must be below the {} frames of '{}'", burn_in, x.size(0), path));
    x = x.narrow(0, burn_in, x.size(0) - burn_in).reshape({-1, x.size(2), x.size(3)});
  }
  system.check_positions(x, fmt::format("positions in '{}'", path));
  check(torch::isfinite(x).all().item<bool>(), fmt::format("'{}' has non-finite positions", path));
  return x.to(torch::kFloat64);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Components with weight >= 1% and the number of distinct shapes among them (sorted pair
// distances equal within 10% of the length scale).
int64_t print_component_summary(MintPrior& prior, const AnchoredEnergy& energy, const Log& log) {
  torch::NoGradGuard no_grad;
  if (prior->isotropic()) {
    log(fmt::format("isotropic Gaussian prior, standard deviation {:.4g} per coordinate\n",
                    prior->scale().item<double>()));
    return 1;
  }
  auto shapes = std::get<0>(pair_distances(energy.to_full(prior->component_configurations())).sort(-1));
  auto weights = prior->weights();
  auto order = std::get<1>(weights.sort(0, /*descending=*/true));
  const double tolerance = 0.1 * energy.energy().length_scale();
  std::vector<torch::Tensor> distinct;
  log(fmt::format("component  weight  kappa  sorted pair distances of its typical configuration\n"));
  for (int64_t j = 0; j < order.numel(); ++j) {
    const int64_t k = order[j].item<int64_t>();
    const double w = weights[k].item<double>();
    if (w < 0.01) continue;
    auto d = shapes[k];
    std::string ds;
    for (int64_t i = 0; i < std::min<int64_t>(d.numel(), 10); ++i)
      ds += fmt::format(" {:.2f}", d[i].item<double>());
    if (d.numel() > 10) ds += " ...";
    const std::string kappa = prior->correlated() ? "    -" : fmt::format("{:5.1f}", prior->kappa()[k].item<double>());
    log(fmt::format("{:>9}  {:6.3f}  {} {}\n", k, w, kappa, ds));
    bool seen = false;
    for (const auto& other : distinct) seen = seen || (other - d).abs().max().item<double>() < tolerance;
    if (!seen) distinct.push_back(d);
  }
  return static_cast<int64_t>(distinct.size());
}

ImportanceSummary evaluate_paths(JulepSampler& sampler, int64_t count, uint64_t seed,
                                 const char* stage, double& seconds, const Progress& progress) {
  const auto start = std::chrono::steady_clock::now();
  ProgressMeter meter(progress, stage, "paths", count);
  auto batch = sample_julep(sampler, count, 500, seed, [&](int64_t done) { meter.update(done); });
  seconds = seconds_since(start);
  return summarize_log_weights(batch.log_w);
}

}  // namespace

void check_train_options(const TrainRunOptions& opt) {
  check(opt.stage == "all" || opt.stage == "mint" || opt.stage == "julep",
        fmt::format("--stage must be all, mint or julep, got '{}'", opt.stage));
  check(opt.stage != "julep" || !opt.from.empty(),
        "--stage julep needs --from DIR, a run folder with a trained prior (prior.pt)");
  check(opt.fit_samples.empty() || opt.stage != "julep",
        "--fit-samples replaces the Mint stage; it cannot be combined with --stage julep");
}

std::string train(Model& model, const std::string& out, const TrainRunOptions& opt) {
  check_train_options(opt);
  const RunConfig& config = model.config;
  std::error_code ec;
  fs::create_directories(out, ec);
  check(!ec && fs::is_directory(out),
        fmt::format("cannot create output folder '{}': {}; choose a folder you can write to", out, ec.message()));
  const auto folder = fs::path(out);
  const auto config_copy = (folder / "config.toml").string();
  const AnchoredEnergy& energy = *model.energy;
  // Where the prior comes from: a resumed run must take it from the same place.
  const std::string from = opt.stage == "julep" ? fs::absolute(opt.from).lexically_normal().string() : "";
  nlohmann::json metrics = {
      {"system", model.system->name()},
      {"stage", opt.stage},
      {"anchor", energy.anchor()},
      {"components", config.prior.components},
      {"prior_family", config.prior.family},
      {"invariant", config.prior.invariant},
      {"device", model.device.str()},
      {"threads", at::get_num_threads()},
      {"seed", config.seed},
      {"prior_from", from},
      {"fit_samples", opt.fit_samples.empty() ? "" : fs::absolute(opt.fit_samples).lexically_normal().string()},
      {"fit_burn_in", opt.burn_in},
      {"fit_relabel", opt.relabel},
  };
  // What an interrupted run of this folder finished: its metrics.json is rewritten after each
  // part (Mint stage, AIS baseline), and the kernel training saves julep_state.pt as it goes.
  const auto metrics_path = (folder / "metrics.json").string();
  const auto state_path = (folder / "julep_state.pt").string();
  const auto mint_state_path = (folder / "mint_state.pt").string();
  nlohmann::json done = nlohmann::json::object();
  if (opt.resume && fs::exists(metrics_path)) {
    try {
      done = nlohmann::json::parse(read_text(metrics_path));
    } catch (const nlohmann::json::exception&) {
      throw Error(fmt::format("--resume: '{}' is not valid JSON; delete it to start over", metrics_path));
    }
    check(done.is_object(), fmt::format("--resume: '{}' is not a metrics file; delete it to start over", metrics_path));
    // A finished `--stage mint` run may be continued as `all`: its prior is the Mint stage's.
    const bool mint_to_all = done.value("stage", "") == "mint" && opt.stage == "all";
    check(mint_to_all || done.value("stage", "") == opt.stage,
          fmt::format("--resume: '{}' was run with --stage {}; resume with the same stage, or use a new --out",
                      metrics_path, done.value("stage", "?")));
    for (const char* key : {"system", "seed", "prior_from", "fit_samples", "fit_burn_in", "fit_relabel"})
      check(done.contains(key) && done[key] == metrics[key],
            fmt::format("--resume: '{}' was run with another {} ({}); resume with the same options, or use a new --out",
                        metrics_path, key, done.contains(key) ? done[key].dump() : "none"));
    if (done.contains("path_ess") && fs::exists(folder / "sampler.pt")) {
      model.log(fmt::format("nothing to resume: the run in {} finished (path ESS {:.2f}%)\n", out,
                 100 * done["path_ess"].get<double>()));
      return done.dump(2);
    }
  }
  if (!opt.config_text.empty()) write_text_atomically(config_copy, opt.config_text);
  if (!opt.resume) {
    // A fresh run: results of an earlier run in this folder must not be taken for its own.
    for (const char* name : {"metrics.json", "sampler.pt", "julep_state.pt", "julep_state.pt.tmp", "mint_state.pt"})
      fs::remove(folder / name);
    if (opt.stage != "julep") fs::remove(folder / "prior.pt");
  }
  const auto save_metrics = [&] { write_text_atomically(metrics_path, metrics.dump(2) + "\n"); };
  const bool mint_done = opt.stage != "julep" && done.contains("mint_seconds") &&
                         fs::exists(folder / "prior.pt");
  // The baseline belongs to the prior: reuse it only with the prior it was measured on.
  const bool prior_reused = mint_done || (opt.stage == "julep" && !done.empty());
  const Progress progress = progress_sink(model);
  model.log(fmt::format("system {} ({} particles, n = {}), anchor {}, {} threads, device {}, seed {}\n",
             model.system->name(), model.system->num_particles(), model.system->dim(),
             energy.anchor(), at::get_num_threads(), model.device.str(), config.seed));

  double train_seconds = 0;
  if (opt.stage == "julep") {
    load_checkpoint(*model.prior, (fs::path(opt.from) / "prior.pt").string(), model.device);
    model.log(fmt::format("mint: loaded the prior from {}\n", opt.from));
  } else if (mint_done) {
    load_checkpoint(*model.prior, (folder / "prior.pt").string(), model.device);
    for (const char* key : {"mint_seconds", "mint_steps", "mint_selected_step", "dropped_energies", "prior_fitted_to",
                            "prior_fit_samples"})
      if (done.contains(key)) metrics[key] = done[key];
    train_seconds += done["mint_seconds"].get<double>();
    model.log(fmt::format("mint: resumed, the prior trained earlier in {} is loaded\n", out));
  } else if (!opt.fit_samples.empty()) {
    auto x = load_reference_samples(opt.fit_samples, *model.system, opt.burn_in);
    const bool relabel = opt.relabel && model.system->same_type_particles_interchangeable();
    model.log(fmt::format("mint: K = {}, maximum-likelihood fit to {} reference configurations from {}{}, {} steps x {}\n",
               config.prior.components, x.size(0), opt.fit_samples,
               relabel ? " (identical particles relabelled at random)" : "", config.mint.steps,
               config.mint.samples));
    ProgressMeter meter(progress, "mint fit", "steps", config.mint.steps);
    auto result = fit_mint_to_samples(
        model.prior, energy, x, config.mint, relabel,
        [&](const MintProgress& p) {
          model.log(fmt::format("mint fit step {:6d}  -mean log q {:10.4f}  prior ESS {:6.2f}%\n", p.step, p.loss,
                                100 * p.batch_ess));
        },
        [&](int64_t done) { meter.update(done); });
    train_seconds += result.seconds;
    if (result.selected_step >= 0) {
      model.log(fmt::format("mint: kept the parameters of step {} (ESS {:.2f}% on {} fresh draws)\n", result.selected_step,
                 100 * result.selected_ess, config.mint.select_samples));
      metrics["mint_selected_step"] = result.selected_step;
    }
    metrics["mint_seconds"] = result.seconds;
    metrics["mint_steps"] = result.steps;
    metrics["prior_fitted_to"] = opt.fit_samples;
    metrics["prior_fit_samples"] = x.size(0);
    save_checkpoint(*model.prior, (folder / "prior.pt").string());
  } else {
    model.log(fmt::format("mint: K = {}, {} prior, objective {}, {} steps x {} samples\n",
               config.prior.components, config.prior.invariant ? "invariant" : "fixed-orientation",
               config.mint.objective, config.mint.steps, config.mint.samples));
    MintTrainingOptions mint = config.mint;
    mint.seed = config.seed;
    mint.state_path = mint_state_path;
    const bool resuming = fs::exists(mint_state_path);
    if (resuming) model.log(fmt::format("mint: resuming from the saved training state {}\n", mint_state_path));
    ProgressMeter meter(progress, "mint", "steps", config.mint.steps);
    bool started = false;
    auto result = train_mint(
        model.prior, energy, mint,
        [&](const MintProgress& p) {
          model.log(fmt::format("mint step {:6d}  beta {:.3f}  loss {:10.4f}  batch ESS {:6.2f}%  dropped {}{}\n",
                                p.step, p.beta, p.loss, 100 * p.batch_ess, p.dropped,
                                p.acceptance >= 0 ? fmt::format("  MALA acceptance {:.2f}", p.acceptance) : ""));
        },
        [&](int64_t done) {
          // A resumed run's first call is the step it resumes at.
          if (resuming && !started) meter.restart(done);
          else meter.update(done);
          started = true;
        });
    if (result.resumed_from >= 0) model.log(fmt::format("mint: resumed at step {}\n", result.resumed_from));
    train_seconds += result.seconds;
    if (result.selected_step >= 0) {
      model.log(fmt::format("mint: kept the parameters of step {} (ESS {:.2f}% on {} fresh draws)\n", result.selected_step,
                 100 * result.selected_ess, config.mint.select_samples));
      metrics["mint_selected_step"] = result.selected_step;
    }
    metrics["mint_seconds"] = result.seconds;
    metrics["mint_steps"] = result.steps;
    metrics["dropped_energies"] = result.dropped;
    save_checkpoint(*model.prior, (folder / "prior.pt").string());
  }
  torch::manual_seed(config.seed + 1);
  // For a peptide: phi of every evaluation sample, for the reweighted population of phi > 0.
  auto molecule = std::dynamic_pointer_cast<MolecularEnergy>(model.system);
  std::optional<BackboneAtoms> backbone;
  if (molecule) {
    try {
      backbone = find_backbone(molecule->topology());
    } catch (const Error&) {
    }
  }
  std::vector<torch::Tensor> phis;
  ProgressMeter eval_meter(progress, "mint eval", "samples", config.eval_samples);
  int64_t evaluated = 0;
  auto log_w = prior_log_weights(model.prior, energy, config.eval_samples, 4096, [&](const torch::Tensor& y) {
    evaluated += y.size(0);
    eval_meter.update(evaluated);
    if (!backbone) return;
    // D forms (the reflection-averaged prior draws half of them) mirrored to L first.
    auto x = backbone->cb >= 0 ? mirror_to_l(energy.to_full(y), *backbone) : energy.to_full(y);
    phis.push_back(dihedral(x, backbone->c_prev, backbone->n, backbone->ca, backbone->c).to(torch::kCPU));
  });
  auto prior = summarize_log_weights(log_w);
  if (backbone) {
    auto w = torch::softmax(log_w.to(torch::kCPU), 0);
    const double positive = (w * (torch::cat(phis) > 0).to(torch::kFloat64)).sum().item<double>();
    model.log(fmt::format("mint: reweighted weight of phi > 0 (D forms mirrored to L): {:.4f} (prior samples: {:.4f})\n", positive,
               (torch::cat(phis) > 0).to(torch::kFloat64).mean().item<double>()));
    metrics["prior_phi_positive_weight"] = positive;
  }
  const int64_t shapes = print_component_summary(model.prior, energy, model.log);
  model.log(fmt::format("mint: prior ESS {:.2f}% on {} samples, log Z {:.4f}, {} distinct component shapes\n",
             100 * prior.ess, prior.num_samples, prior.log_z, shapes));
  metrics["prior_ess"] = prior.ess;
  metrics["prior_log_z"] = prior.log_z;
  metrics["prior_num_samples"] = prior.num_samples;
  metrics["distinct_component_shapes"] = shapes;
  metrics["num_samples"] = prior.num_samples;
  metrics["train_seconds"] = train_seconds;
  save_metrics();
  // metrics.json now records the finished Mint stage next to prior.pt: a resume starts after it.
  fs::remove(mint_state_path);

  if (opt.stage != "mint") {
    const int64_t count = config.path_eval_samples;
    metrics["steps"] = config.julep.steps;
    metrics["num_samples"] = count;
    if (config.baseline && prior_reused && done.contains("ais_path_ess") &&
        done.value("num_samples", int64_t{0}) == count && done.value("steps", int64_t{0}) == config.julep.steps) {
      for (const char* key : {"ais_path_ess", "ais_log_z", "ais_sample_seconds"}) metrics[key] = done[key];
      save_metrics();
      model.log(fmt::format("ais baseline (untrained, T = {}): path ESS {:.2f}% on {} samples, log Z {:.4f} (from the "
                 "interrupted run)\n",
                 config.julep.steps, 100 * done["ais_path_ess"].get<double>(), count,
                 done["ais_log_z"].get<double>()));
    } else if (config.baseline) {
      auto baseline = make_ais_baseline(model);
      double seconds = 0;
      torch::manual_seed(config.seed + 2);
      auto ais = evaluate_paths(baseline, count, config.seed + 2, "ais baseline", seconds, progress);
      model.log(fmt::format("ais baseline (untrained, T = {}): path ESS {:.2f}% on {} samples, log Z {:.4f}\n",
                 config.julep.steps, 100 * ais.ess, ais.num_samples, ais.log_z));
      metrics["ais_path_ess"] = ais.ess;
      metrics["ais_log_z"] = ais.log_z;
      metrics["ais_sample_seconds"] = seconds;
      save_metrics();
    }
    // With [anneal] set to a method that needs no kernel and no training iterations, the run is
    // prior + exact annealing: the Julep stage is skipped.
    const bool kernel_stage = config.train.iterations > 0 || !config.anneal_configured ||
                              config.anneal.method == "julep" || config.anneal.method == "smc-julep";
    if (kernel_stage) {
      model.log(fmt::format("julep: T = {}, {} iterations x {} trajectories, lr {}, objective {}\n", config.julep.steps,
                 config.train.iterations, config.train.samples, config.train.learning_rate,
                 config.train.objective));
      JulepTrainingOptions train = config.train;
      train.seed = config.seed;
      train.state_path = state_path;
      if (fs::exists(state_path)) model.log(fmt::format("julep: resuming from the saved training state {}\n", state_path));
      torch::manual_seed(config.seed + 3);
      ProgressMeter meter(progress, "julep", "iterations", config.train.iterations);
      bool started = false;
      auto result = train_julep(
          model.sampler, train,
          [&](const JulepProgress& p) {
            model.log(fmt::format("julep iter {:5d}  {} {:10.4f}  batch ESS {:6.2f}%  dropped {}  {:.0f} s\n",
                                  p.iteration, p.objective == "reverse_kl" ? "-mean log w" : "Var[log w] ", p.loss,
                                  100 * p.batch_ess, p.dropped, p.seconds));
          },
          [&](int64_t done) {
            // The first call is where this run starts: 0, or where a saved state resumes.
            if (started) {
              meter.update(done);
            } else {
              meter.restart(done);
              started = true;
            }
          });
      if (result.resumed_from >= 0) model.log(fmt::format("julep: resumed at iteration {}\n", result.resumed_from));
      train_seconds += result.seconds;
      metrics["julep_seconds"] = result.seconds;
      metrics["julep_iterations"] = result.iterations;
      metrics["dropped_trajectories"] = result.dropped;
      metrics["skipped_iterations"] = result.skipped;
      if (result.skipped > 0)
        model.log(fmt::format("julep: {} of {} iterations took no step (non-finite gradient)\n", result.skipped,
                              result.iterations));
      save_checkpoint(*model.sampler, (folder / "sampler.pt").string());
      {
        auto eps = model.sampler->log_eps.detach().exp().to(torch::kCPU);
        model.log(fmt::format("julep: noise levels eps_j from {:.4g} to {:.4g} (first {:.4g}, last {:.4g})\n",
                   eps.min().item<double>(), eps.max().item<double>(), eps[0].item<double>(),
                   eps[-1].item<double>()));
      }
      // The same prior draws and noise as the baseline (common random numbers): with heavy-tailed
      // weights, which rare starts a sample happens to contain would otherwise swamp the difference.
      double seconds = 0;
      torch::manual_seed(config.seed + 2);
      auto path = evaluate_paths(model.sampler, count, config.seed + 2, "julep eval", seconds, progress);
      model.log(fmt::format("julep: path ESS {:.2f}% on {} samples, log Z {:.4f}, {:.0f} s sampling\n",
                 100 * path.ess, path.num_samples, path.log_z, seconds));
      metrics["path_ess"] = path.ess;
      metrics["log_z"] = path.log_z;
      metrics["sample_seconds"] = seconds;
    }
    if (config.anneal_configured && (opt.evaluate_anneal || !kernel_stage)) {
      torch::manual_seed(config.seed + 2);
      metrics["anneal"] = run_annealing(model, config.anneal, count, config.seed + 2);
      if (!kernel_stage) {
        // The run's headline numbers are the annealing's.
        for (const char* key : {"path_ess", "smc_final_ess", "log_z", "resampling_events"})
          if (metrics["anneal"].contains(key)) metrics[key] = metrics["anneal"][key];
        save_checkpoint(*model.sampler, (folder / "sampler.pt").string());
      }
    }
  }
  metrics["train_seconds"] = train_seconds;
  save_metrics();
  // Finished: sampler.pt and metrics.json hold everything the training state did.
  fs::remove(state_path);
  fs::remove(state_path + ".tmp");
  fs::remove(mint_state_path);
  model.log(fmt::format("wrote {}\n", (folder / "metrics.json").string()));
  return metrics.dump(2);
}

}  // namespace mintjulep
