// Models from a run configuration: the system (built-in or given), its anchored energy, the
// Mint prior with its initialisation, the Julep kernel; annealing runs, checkpoints and run
// folders.
#include "model/run_model.hpp"

#include <mintjulep/error.hpp>
#include <mintjulep/estimators.hpp>
#include <mintjulep/harmonic_prior.hpp>
#include <mintjulep/minimize.hpp>
#include <mintjulep/molecular_energy.hpp>
#include <mintjulep/ramachandran.hpp>
#include <mintjulep/systems.hpp>

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <torch/serialize.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/atomic_file.hpp"

namespace mintjulep {

namespace fs = std::filesystem;

namespace {

// Rows of y (the non-anchor particles) of the frame particles given as particle indices.
std::array<int64_t, 2> frame_rows(const RunConfig& c, int64_t anchor, const Energy& system) {
  const int64_t num_particles = system.num_particles();
  std::array<int64_t, 2> particles = c.frame;
  if (particles[0] < 0) {
    const auto preferred = system.default_frame(anchor);
    if (preferred.size() != 2) return {0, 1};
    particles = {preferred[0], preferred[1]};
  }
  check(particles[0] != particles[1], "the two frame particles must differ");
  std::array<int64_t, 2> rows{};
  for (size_t i = 0; i < 2; ++i) {
    const int64_t p = particles[i];
    check(p >= 0 && p < num_particles && p != anchor,
          fmt::format("frame particle {} must be a particle index in 0..{} other than the anchor {}",
                      p, num_particles - 1, anchor));
    rows[i] = p < anchor ? p : p - 1;
  }
  return rows;
}

// Centres each component on a local energy minimum near the system's reference structure:
// the reference plus init_noise of independent noise per component, minimised (L-BFGS), so
// that components can start in different minima (DESIGN.md §3 leaves the initialisation open).
void centre_prior_on_reference(Model& m, const MintPriorOptions& options) {
  auto reference = m.system->reference_configuration();
  check(reference.defined(),
        fmt::format("[prior] init = \"reference\" needs a system with a reference structure (a "
                    "molecule); system '{}' has none, use init = \"random\"",
                    m.system->name()));
  const int64_t K = options.components;
  auto y = m.energy->to_anchored(reference.to(torch::kFloat64));
  auto starts = y.expand({K, -1, -1}) +
                options.init_noise * torch::randn({K, y.size(1), y.size(2)}, torch::kFloat64);
  auto minimised = minimize_energy(*m.energy, starts);
  m.log(fmt::format("prior: {} component centres minimised from {:.3f} to {:.3f} kT on average\n", K,
             minimised.initial_energy / K, minimised.final_energy / K));
  m.prior->initialize_from(minimised.y);
}

// Centres each component on a local minimum reached from a random compact start (see
// random_compact_starts), relaxed first on the soft-core end of the path (t = 0, finite for
// overlapping particles) and then on the target. Different starts reach different minima.
void centre_prior_on_random_minima(Model& m, const MintPriorOptions& options) {
  const int64_t K = options.components;
  auto soft = minimize_energy(*m.energy, random_compact_starts(*m.energy, K), 500, /*t=*/0.0);
  auto minimised = minimize_energy(*m.energy, soft.y, 2000, /*t=*/1.0);
  m.log(fmt::format("prior: {} component centres minimised from random starts: mean energy {:.3f} kT\n", K,
             minimised.final_energy / K));
  m.prior->initialize_from(minimised.y);
}

// Gaussian (§3b) or internal (§3c) components on distinct minima with Hessian covariances;
// prints the minima kept, with phi/psi for a peptide backbone.
void centre_prior_harmonically(Model& m, const HarmonicOptions& options) {
  auto result = initialize_harmonic_prior(m.prior, *m.energy, options);
  m.log(fmt::format("prior: {} minimised configurations (with relabelled copies), {} distinct minima, {} kept "
             "for {} components\n",
             result.candidates, result.distinct, result.minima.size(), m.prior->options().components));
  const int64_t rotations = m.prior->symmetry_count();
  if (result.relabellings > 1)
    m.log(fmt::format("prior: copies of a minimum under the {} relabellings of interchangeable terminal atoms "
                      "(methyl hydrogens) merged: log Z covers {} of them{} (add log {} = {:.4f} for all)\n",
                      result.relabellings, rotations, rotations > 1 ? ", those the rotors' rotations reach" : "",
                      result.relabellings / rotations,
                      std::log(static_cast<double>(result.relabellings) / static_cast<double>(rotations))));
  auto molecule = std::dynamic_pointer_cast<MolecularEnergy>(m.system);
  BackboneAtoms bb;
  bool backbone = false;
  if (molecule) {
    try {
      bb = find_backbone(molecule->topology());
      backbone = true;
    } catch (const Error&) {
    }
  }
  m.log(fmt::format("minimum  {}energy (kT)  harmonic free energy  weight  components  chiral\n",
             backbone ? "   phi    psi  " : ""));
  for (size_t i = 0; i < result.minima.size(); ++i) {
    const auto& h = result.minima[i];
    std::string angles;
    if (backbone) {
      auto x = m.energy->to_full(h.y.unsqueeze(0).to(torch::kFloat64));
      angles = fmt::format("{:6.1f} {:6.1f}  ", dihedral(x, bb.c_prev, bb.n, bb.ca, bb.c).item<double>() * 180 / M_PI,
                           dihedral(x, bb.n, bb.ca, bb.c, bb.n_next).item<double>() * 180 / M_PI);
    }
    m.log(fmt::format("{:>7}  {}{:11.4f}  {:20.4f}  {:6.4f}  {:10}  {}\n", i, angles, h.energy, h.free_energy, h.weight,
               h.copies, h.chiral ? "yes" : "no"));
  }
}

}  // namespace

Log print_log() {
  return [](const std::string& line) {
    std::fputs(line.c_str(), stdout);
    std::fflush(stdout);
  };
}

Log silent_log() {
  return [](const std::string&) {};
}

Progress progress_sink(const Model& model) { return model.progress ? model.progress : log_progress(model.log); }

Model build_model(const RunConfig& config, torch::Device device, bool prior_from_checkpoint, Log log) {
  return build_model(make_system(config.system, SystemOptions{config.temperature}), config, device,
                     prior_from_checkpoint, std::move(log));
}

Model build_model(std::shared_ptr<Energy> system, const RunConfig& config, torch::Device device,
                  bool prior_from_checkpoint, Log log) {
  check(system != nullptr, "build_model: the energy is null");
  Model m;
  m.config = config;
  if (m.config.system.empty()) m.config.system = system->name();
  m.device = device;
  m.log = log ? std::move(log) : silent_log();
  m.system = std::move(system);
  const int64_t anchor = config.anchor >= 0 ? config.anchor : m.system->default_anchor();
  m.energy = std::make_shared<AnchoredEnergy>(m.system, anchor);
  MintPriorOptions prior_options = config.prior;
  prior_options.num_free = m.energy->num_free();
  prior_options.dim = m.energy->dim();
  prior_options.frame = frame_rows(config, anchor, *m.system);
  if (prior_options.radius <= 0) prior_options.radius = m.system->length_scale();
  prior_options.anchor = anchor;
  prior_options.bonds = m.system->bonds();
  prior_options.rotors = terminal_rotors(*m.system, anchor);
  if (config.rotor_symmetry) {
    check(!prior_options.rotors.empty(),
          fmt::format("[prior] rotor_symmetry: system '{}' has no methyl rotors (three identical terminal atoms "
                      "on one centre); remove the key", m.system->name()));
    prior_options.symmetries = rotor_relabellings(prior_options.rotors, m.system->num_particles());
  }
  if (config.permutation_symmetry) {
    check(!config.rotor_symmetry, "[prior] rotor_symmetry and permutation_symmetry exclude each other; keep one");
    prior_options.symmetries = particle_relabellings(*m.system);
    check(!prior_options.symmetries.empty(),
          fmt::format("[prior] permutation_symmetry needs identical, interchangeable particles with N! <= 720; "
                      "system '{}' has not: remove the key", m.system->name()));
  }
  torch::manual_seed(config.seed);
  m.prior = MintPrior(prior_options);
  if (prior_options.init == "reference" && !prior_from_checkpoint)
    centre_prior_on_reference(m, prior_options);
  if (prior_options.init == "minima" && !prior_from_checkpoint)
    centre_prior_on_random_minima(m, prior_options);
  if (prior_options.init == "harmonic" && !prior_from_checkpoint)
    centre_prior_harmonically(m, config.harmonic);
  EgnnOptions network_options = config.network;
  network_options.length_scale = m.system->length_scale();
  Egnn network(network_options, m.system->particle_types(), anchor, m.system->dim());
  network->to(network_options.float32 ? torch::kFloat32 : torch::kFloat64);
  m.sampler = JulepSampler(m.prior, m.energy, network, config.julep);
  m.sampler->to(device);
  return m;
}

JulepSampler make_ais_baseline(const Model& model, int64_t steps) {
  JulepOptions options = model.config.julep;
  if (steps > 0) options.steps = steps;
  options.use_a = options.use_b = options.use_util = false;
  options.learn_eps = false;
  JulepSampler baseline(model.prior, model.energy, model.sampler->network(), options);
  baseline->to(model.device);
  return baseline;
}

nlohmann::json run_annealing(const Model& model, const AnnealOptions& options, int64_t count, uint64_t seed,
                             AnnealResult* result, const ChunkCache& cache) {
  JulepSampler kernel{nullptr};
  if (options.method == "ula" || options.method == "smc-ula") kernel = make_ais_baseline(model, options.steps);
  if (options.method == "julep" || options.method == "smc-julep") {
    check(options.steps == model.config.julep.steps,
          fmt::format("the trained kernel has T = {} steps ([julep] steps); it cannot anneal in {} steps "
                      "(leave [anneal] steps / --steps at {})",
                      model.config.julep.steps, options.steps, model.config.julep.steps));
    kernel = model.sampler;
  }
  const bool mala = anneal_method_uses_mala(options.method), smc = anneal_method_resamples(options.method);
  const std::string what = "anneal " + options.method;
  ProgressMeter meter(progress_sink(model), what, "chains", count);
  auto r = anneal(options, model.prior, *model.energy, kernel, count, seed,
                  [&](int64_t done, int64_t) { meter.update(done); }, cache);
  double mean_acceptance = 0;
  for (double a : r.acceptance) mean_acceptance += a / static_cast<double>(r.acceptance.size());
  auto weights = summarize_log_weights(r.log_w);
  const std::string dropped = describe_dropped_weights(weights, r.num_nan, r.num_overflow);
  model.log(fmt::format("{} (T = {}{}): {} {:.2f}% on {} chains, log Z {:.4f}, {} resampling events, {}{}, "
             "{:.1f} s\n",
             what, r.steps,
             !mala                  ? std::string()
             : options.leapfrog > 1 ? fmt::format(", {} HMC moves of {} leapfrog steps per temperature",
                                                  options.moves, options.leapfrog)
                                    : fmt::format(", {} moves per temperature", options.moves),
             smc ? "SMC final ESS" : "path ESS", 100 * r.ess, count, r.log_z, r.resampling_events,
             dropped,
             !mala                       ? std::string()
             : options.independence > 0 ? fmt::format(", MALA acceptance {:.3f}, {} independence moves per "
                                                       "temperature (acceptance {:.3f})",
                                                       mean_acceptance, options.independence,
                                                       r.independence_acceptance)
                                        : fmt::format(", MALA acceptance {:.3f}", mean_acceptance),
             r.seconds));
  nlohmann::json j = {{"method", options.method},
                      {"steps", r.steps},
                      {"num_samples", count},
                      {"log_z", r.log_z},
                      {"resampling_events", r.resampling_events},
                      {"non_finite", r.num_non_finite},
                      {"dropped_nan", r.num_nan},
                      {"dropped_overflow", r.num_overflow},
                      {"zero_weight", weights.num_zero},
                      {"seconds", r.seconds}};
  // Two different quantities: the path ESS of runs without resampling (the paper's), and the
  // normalised ESS of SMC's final weights.
  if (smc) {
    j["smc_final_ess"] = r.ess;
    j["resample_threshold"] = options.resample_threshold;
  } else {
    j["path_ess"] = r.ess;
  }
  if (mala) {
    j["moves"] = options.moves;
    j["leapfrog"] = options.leapfrog;
    j["acceptance_mean"] = mean_acceptance;
    j["acceptance"] = r.acceptance;
    j["independence"] = options.independence;
    j["independence_acceptance"] = r.independence_acceptance;
    j["step_sizes"] = r.step_sizes;
  }
  if (result != nullptr) *result = std::move(r);
  return j;
}

AnnealResult anneal_model(const Model& model, const AnnealOptions& options, int64_t count, uint64_t seed) {
  AnnealResult result;
  run_annealing(model, options, count, seed, &result);
  return result;
}

void save_checkpoint(torch::nn::Module& module, const std::string& path) {
  torch::serialize::OutputArchive archive;
  module.save(archive);
  std::ostringstream bytes;
  archive.save_to(bytes);
  AtomicFile file(path);  // a failed write (full disk, read-only folder) keeps the old checkpoint
  file.write(bytes.str());
  file.commit();
}

void load_checkpoint(torch::nn::Module& module, const std::string& path, torch::Device device) {
  check(fs::exists(path), fmt::format("checkpoint '{}' not found; train that stage first", path));
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path, device);
    module.load(archive);
  } catch (const c10::Error& e) {
    throw Error(fmt::format("cannot load checkpoint '{}': it does not match this configuration ({})",
                            path, std::string(e.what_without_backtrace()).substr(0, 120)));
  }
}

void save_run(const Model& model, const std::string& folder) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  check(!ec && fs::is_directory(folder),
        fmt::format("cannot create output folder '{}': {}; choose a folder you can write to", folder, ec.message()));
  MintPrior prior = model.prior;  // the holders share the modules
  JulepSampler sampler = model.sampler;
  save_checkpoint(*prior, (fs::path(folder) / "prior.pt").string());
  save_checkpoint(*sampler, (fs::path(folder) / "sampler.pt").string());
}

Model load_run(const std::string& folder, std::shared_ptr<Energy> system, const RunConfig& config,
               torch::Device device, bool require_kernel, Log log) {
  check(fs::is_directory(folder), fmt::format("run folder '{}' not found", folder));
  Model model = system ? build_model(std::move(system), config, device, /*prior_from_checkpoint=*/true, std::move(log))
                       : build_model(config, device, /*prior_from_checkpoint=*/true, std::move(log));
  const bool has_kernel = fs::exists(fs::path(folder) / "sampler.pt");
  if (has_kernel || require_kernel) load_checkpoint(*model.sampler, (fs::path(folder) / "sampler.pt").string(), model.device);
  else load_checkpoint(*model.prior, (fs::path(folder) / "prior.pt").string(), model.device);
  return model;
}

Model load_run(const std::string& folder, torch::Device device, bool require_kernel, Log log) {
  check(fs::is_directory(folder), fmt::format("run folder '{}' not found", folder));
  return load_run(folder, nullptr, load_config((fs::path(folder) / "config.toml").string()), device,
                  require_kernel, std::move(log));
}

void write_text_atomically(const std::string& path, const std::string& text) {
  AtomicFile file(path);
  file.write(text);
  file.commit();
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  check(in.good(), fmt::format("cannot read '{}'", path));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace mintjulep
