// The benchmark grid of `mintjulep bench`: methods x systems x seeds, trained through train()
// (the Mint stage once per system and seed, the Julep kernel once more where a method needs it),
// sampled through sample(), measured with the metrics of metrics.hpp and tabulated.
#include <mintjulep/bench.hpp>
#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>
#include <mintjulep/metrics.hpp>
#include <mintjulep/systems.hpp>

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <toml++/toml.h>
#include <torch/version.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include "config/toml_text.hpp"
#include "model/run_model.hpp"

namespace mintjulep {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;
using json = nlohmann::json;

constexpr int64_t kTrainingEvaluationSamples = 500;
// Trajectories of a trained kernel's own diagnostic path ESS (its cells draw their own).
constexpr int64_t kKernelEvaluationSamples = 100;
// Memory a pis kernel training may plan for (training_config_text).
constexpr double kReverseKlBytes = 4.0 * (1 << 30);

double seconds_since(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

// The sampling method (SamplingOptions::method) of a bench method.
std::string sampling_method(const std::string& method) {
  if (method == "ais-ula") return "ula";
  if (method == "ais-mala") return "mala";
  if (method == "pis" || method == "dds" || method == "gauss-julep" || method == "mint-additive") return "julep";
  return method;  // prior, smc-mala, julep, smc-julep
}

// The training a bench method's model comes from: "" the system config's own (its Mint prior
// and Julep kernel); the baselines and ablations of DESIGN.md §5 train their own kernel on a
// modified config (training_config_text).
std::string training_variant(const std::string& method) {
  if (method == "pis" || method == "dds") return method;
  if (method == "gauss-julep") return "gauss";
  if (method == "mint-additive") return "additive";
  return "";
}

std::string method_list() { return fmt::format("{}", fmt::join(bench_methods(), ", ")); }

// The system config a -half system without a config of its own starts from: the full one's
// (lj55-half: lj55.toml).
std::string config_stem(const std::string& system) {
  const std::string half = "-half";
  if (system.size() > half.size() && system.compare(system.size() - half.size(), half.size(), half) == 0)
    return system.substr(0, system.size() - half.size());
  return system;
}

// ---- The [bench] section of a bench file -------------------------------------------------

int64_t read_integer(const toml::node& node, const std::string& where, const std::string& path) {
  // is_integer first: toml++ 3.3 converts a float to int64 without a range check (UB).
  check(node.is_integer(), fmt::format("{}: {} must be an integer", path, where));
  auto v = node.value<int64_t>();
  check(v.has_value(), fmt::format("{}: {} must be an integer", path, where));
  return *v;
}

std::string read_string(const toml::node& node, const std::string& where, const std::string& path) {
  auto v = node.value<std::string>();
  check(node.is_string() && v.has_value(), fmt::format("{}: {} must be a string", path, where));
  return *v;
}

// `value` relative to the bench file's folder unless absolute.
std::string relative_to(const std::string& file, const std::string& value) {
  const fs::path p(value);
  if (p.is_absolute()) return value;
  return (fs::path(file).parent_path() / p).lexically_normal().string();
}

// Reads a budget key into `budget`; false when `key` is not a budget key.
bool read_budget_key(const std::string& key, const toml::node& node, const std::string& where,
                     const std::string& path, BenchBudget& budget) {
  std::optional<int64_t>* target = key == "samples"          ? &budget.samples
                                   : key == "steps"          ? &budget.steps
                                   : key == "iterations"     ? &budget.iterations
                                   : key == "mint_steps"     ? &budget.mint_steps
                                   : key == "kernel_samples" ? &budget.kernel_samples
                                   : key == "kernel_steps"   ? &budget.kernel_steps
                                                             : nullptr;
  if (target == nullptr) return false;
  *target = read_integer(node, fmt::format("'{}' in {}", key, where), path);
  return true;
}

std::vector<std::string> read_string_list(const toml::node& node, const std::string& where, const std::string& path) {
  const toml::array* a = node.as_array();
  check(a != nullptr, fmt::format("{}: {} must be a list of strings, e.g. [\"dw4\", \"lj13\"]", path, where));
  std::vector<std::string> out;
  for (const auto& item : *a) out.push_back(read_string(item, where + " entries", path));
  return out;
}

// ---- Budgets and configs -----------------------------------------------------------------

std::string budget_text(int64_t v) { return std::to_string(v); }

// A system config with the bench's system, seed and budget, as TOML text.
std::string effective_config_text(const BenchSystem& system, int64_t seed) {
  std::ifstream file(system.config, std::ios::binary);
  check(file.good(), fmt::format("cannot open config file '{}': check the path", system.config));
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  toml::table root;
  try {
    root = toml::parse(ascii_outside_strings(text, system.config), system.config);
  } catch (const toml::parse_error& e) {
    throw Error(fmt::format("{}: invalid TOML: {}", system.config, std::string(e.description())));
  }
  auto section = [&](const char* name) -> toml::table& {
    if (root.get(name) == nullptr) root.insert(name, toml::table{});
    toml::table* t = root.get(name)->as_table();
    check(t != nullptr, fmt::format("{}: '{}' must be a table ([{}])", system.config, name, name));
    return *t;
  };
  root.insert_or_assign("system", system.name);
  root.insert_or_assign("seed", seed);
  const BenchBudget& b = system.budget;
  if (b.steps) {
    section("julep").insert_or_assign("steps", *b.steps);
    if (root.get("anneal") != nullptr) section("anneal").insert_or_assign("steps", *b.steps);
  }
  if (b.kernel_steps) section("julep").insert_or_assign("steps", *b.kernel_steps);
  if (b.iterations) section("train").insert_or_assign("iterations", *b.iterations);
  if (b.mint_steps) section("mint").insert_or_assign("steps", *b.mint_steps);
  // The training's own evaluations (prior ESS, the kernel's path ESS) are diagnostics of the
  // run folder, on a fixed number of draws so that the training does not depend on the cells'
  // sample count; the cells draw their own samples. The untrained AIS baseline is the ais-ula
  // cell, the [anneal] run the ais-mala and smc-mala cells.
  section("mint").insert_or_assign("eval_samples", kTrainingEvaluationSamples);
  section("train").insert_or_assign("eval_samples", kKernelEvaluationSamples);
  section("train").insert_or_assign("baseline", false);
  std::ostringstream out;
  out << "# " << system.config << " with the system, seed and budget of `mintjulep bench`\n" << root << "\n";
  return out.str();
}

// The config of a training variant (training_variant), from the effective config text:
//   pis:      isotropic Gaussian prior (scale half the default: the "narrow" start), additive
//             kernel (A = 0), reverse KL through the trajectories;
//   dds:      isotropic Gaussian prior (default scale radius / sqrt(n)), additive kernel,
//             log-variance loss;
//   gauss:    isotropic Gaussian prior with the full Julep kernel and the config's loss;
//   additive: the config's Mint prior with the additive kernel.
// The isotropic variants have no Mint training, and none runs the [anneal] evaluation (the
// kernel is what they measure).
std::string training_config_text(const std::string& text, const std::string& variant, const BenchSystem& system) {
  if (variant.empty()) return text;
  toml::table root = toml::parse(text);
  auto section = [&](const char* name) -> toml::table& {
    if (root.get(name) == nullptr) root.insert(name, toml::table{});
    return *root.get(name)->as_table();
  };
  root.erase("anneal");
  if (variant != "additive") {
    const auto energy = make_system(system.name);
    const double scale = energy->length_scale() / std::sqrt(static_cast<double>(energy->dim()));
    toml::table prior;
    prior.insert("family", "isotropic");
    prior.insert("components", 1);
    prior.insert("scale", variant == "pis" ? 0.5 * scale : scale);
    root.insert_or_assign("prior", prior);
    section("mint").insert_or_assign("steps", 0);
  }
  if (variant != "gauss") section("julep").insert_or_assign("use_a", false);
  if (variant == "pis") {
    section("train").insert_or_assign("objective", "reverse_kl");
    // Reverse KL keeps the whole simulation's graph for its backward pass, about 64 bytes per
    // trajectory, step, edge and hidden unit of every layer (21.5 GB were not enough for 50
    // LJ-55 trajectories at T = 20): fewer trajectories per iteration where the config's
    // would not fit in kReverseKlBytes.
    const auto energy = make_system(system.name);
    const double edges = std::pow(static_cast<double>(energy->num_particles()), 2);
    const double per_trajectory = 64.0 * edges * static_cast<double>(section("julep").get("steps") ? section("julep")["steps"].value_or(int64_t{100}) : 100) *
                                  static_cast<double>(section("network")["hidden"].value_or(int64_t{64}) *
                                                      section("network")["layers"].value_or(int64_t{3}));
    const int64_t fits = std::max<int64_t>(2, static_cast<int64_t>(kReverseKlBytes / per_trajectory));
    const int64_t samples = section("train")["samples"].value_or(int64_t{100});
    if (samples > fits) section("train").insert_or_assign("samples", fits);
  }
  if (variant == "dds") section("train").insert_or_assign("objective", "log_variance");
  std::ostringstream out;
  out << "# " << system.config << " as the " << variant << " variant of `mintjulep bench` (DESIGN.md section 5)\n"
      << root << "\n";
  return out.str();
}

// Reference configurations (C, N, n) and energies (C,), equally weighted: an md trajectory
// (F, R, N, n) or resampled samples (C, N, n).
void load_reference(BenchSystem& s, const Energy& energy) {
  ReadConfigurationsOptions options;
  options.role = fmt::format("reference for system {}", s.name);
  options.reference = true;
  const auto ref = read_weighted_configurations(s.reference, &energy, options);
  s.reference_positions = ref.positions;
  s.reference_energies = ref.energies;
}

// ---- Run folders -------------------------------------------------------------------------

// A Log appending to a file (created with its folder).
Log file_log(const fs::path& path) {
  fs::create_directories(path.parent_path());
  auto out = std::make_shared<std::ofstream>(path, std::ios::app);
  check(out->good(), fmt::format("cannot write '{}'", path.string()));
  return [out](const std::string& line) {
    *out << line;
    out->flush();
  };
}

std::optional<json> read_json(const fs::path& path) {
  if (!fs::exists(path)) return std::nullopt;
  try {
    return json::parse(read_text(path.string()));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

bool same_text(const fs::path& path, const std::string& text) {
  return fs::exists(path) && read_text(path.string()) == text;
}

// What a grid run shares between its cells.
struct Grid {
  const BenchPlan& plan;
  fs::path out;
  torch::Device device;
  const Log& log;
  // training_key(SYSTEM, SEED, VARIANT) -> effective config
  std::map<std::string, std::string> config_texts;
  std::map<std::string, std::string> failures;      // training folder -> error, this invocation
};

std::string pair_name(const std::string& system, int64_t seed) { return fmt::format("{}-s{}", system, seed); }

// The key of a training's config text, and its folder: OUT/train/SYSTEM-sSEED[/VARIANT].
std::string training_key(const std::string& system, int64_t seed, const std::string& variant) {
  return variant.empty() ? pair_name(system, seed) : pair_name(system, seed) + "/" + variant;
}

// The run folder of `stage` (mint or julep) for a system, seed and training variant, trained (or
// continued) when it is not finished with the current config. Returns the folder and its
// training wall time.
std::pair<fs::path, double> trained_run(Grid& grid, const BenchSystem& system, int64_t seed, const std::string& stage,
                                        const std::string& prefix, std::string variant = "") {
  if (stage == "mint" && variant == "additive") variant = "";  // the additive kernel starts from the Mint prior
  const std::string name = training_key(system.name, seed, variant);
  const fs::path folder = grid.out / "train" / name / stage;
  const std::string& text = grid.config_texts.at(name);
  if (auto failed = grid.failures.find(folder.string()); failed != grid.failures.end()) throw Error(failed->second);
  const auto metrics = read_json(folder / "metrics.json");
  const auto record = read_json(folder / "bench.json");
  const bool config_same = same_text(folder / "config.toml", text);
  const bool finished = config_same && metrics && record && metrics->value("stage", "") == stage &&
                        (stage == "mint" ? metrics->contains("prior_ess") && fs::exists(folder / "prior.pt")
                                         : metrics->contains("log_z") && fs::exists(folder / "sampler.pt"));
  if (finished) return {folder, record->value("seconds", 0.0)};
  fs::path mint_folder;
  double mint_seconds = 0;
  if (stage == "julep")
    std::tie(mint_folder, mint_seconds) = trained_run(grid, system, seed, "mint", prefix, variant);
  const fs::path log_path = folder / "train.log";
  grid.log(fmt::format("{}: training the {} into {} (progress in {})\n", prefix,
                       stage == "mint" ? "Mint prior" : "Julep kernel", folder.string(), log_path.string()));
  const auto start = SteadyClock::now();
  try {
    const fs::path config_path = grid.out / "train" / name / "config.toml";  // written by run_bench
    Model model = build_model(load_config(config_path.string()), grid.device,
                              /*prior_from_checkpoint=*/stage == "julep", file_log(log_path));
    TrainRunOptions options;
    options.stage = stage;
    options.from = mint_folder.string();
    options.resume = config_same && metrics.has_value();  // continue an interrupted training
    // A kernel's run folder need not repeat the exact annealing that the grid's own cells measure.
    options.evaluate_anneal = false;
    options.config_text = text;
    train(model, folder.string(), options);
  } catch (const std::exception& e) {
    const std::string message = fmt::format("training the {} stage in {} failed: {}", stage, folder.string(), e.what());
    grid.failures[folder.string()] = message;
    throw Error(message);
  }
  const double seconds = seconds_since(start);
  write_text_atomically((folder / "bench.json").string(), json{{"seconds", seconds}}.dump(2) + "\n");
  return {folder, seconds};
}

// ---- One cell ----------------------------------------------------------------------------

struct Cell {
  const BenchSystem* system;
  std::string method;
  int64_t seed;
  fs::path folder;
};

std::string cell_label(const Cell& c) { return fmt::format("{} {} seed {}", c.system->name, c.method, c.seed); }

uint64_t sample_seed(int64_t seed) { return static_cast<uint64_t>(seed) + 1000; }

// The samples a cell draws: kernel_samples for the methods with a trained kernel.
int64_t cell_samples(const Cell& c) {
  return bench_method_needs_kernel(c.method) ? *c.system->budget.kernel_samples : *c.system->budget.samples;
}

// A finished cell of the same grid point, budget and config.
std::optional<json> reusable(const Grid& grid, const Cell& c) {
  auto m = read_json(c.folder / "metrics.json");
  if (!m || m->value("status", "") != "done") return std::nullopt;
  if (m->value("system", "") != c.system->name || m->value("method", "") != c.method ||
      m->value("seed", int64_t{-1}) != c.seed || m->value("num_samples", int64_t{-1}) != cell_samples(c) ||
      m->value("reference", "") != c.system->reference)
    return std::nullopt;
  if (!same_text(c.folder / "run" / "config.toml",
                 grid.config_texts.at(training_key(c.system->name, c.seed, training_variant(c.method)))))
    return std::nullopt;
  return m;
}

json run_cell(Grid& grid, const Cell& c, const std::string& prefix) {
  const auto start = SteadyClock::now();
  fs::remove(c.folder / "metrics.json");
  const bool kernel = bench_method_needs_kernel(c.method);
  double train_seconds = 0;
  fs::path run;
  if (kernel) {
    double julep_seconds = 0;
    const std::string variant = training_variant(c.method);
    std::tie(run, julep_seconds) = trained_run(grid, *c.system, c.seed, "julep", prefix, variant);
    train_seconds = julep_seconds + trained_run(grid, *c.system, c.seed, "mint", prefix, variant).second;
  } else {
    std::tie(run, train_seconds) = trained_run(grid, *c.system, c.seed, "mint", prefix);
  }
  // The cell's own copy of its run folder: `mintjulep sample CELL/run` reproduces it.
  const fs::path cell_run = c.folder / "run";
  check(remove_tree(cell_run.string()),
        fmt::format("cannot remove the old '{}': check the folder's permissions", cell_run.string()));
  fs::create_directories(c.folder);
  fs::copy(run, cell_run, fs::copy_options::recursive);
  const auto sample_start = SteadyClock::now();
  Model model = load_run(cell_run.string(), grid.device, /*require_kernel=*/kernel, file_log(c.folder / "sample.log"));
  SamplingOptions options;
  options.method = sampling_method(c.method);
  options.count = cell_samples(c);
  options.seed = sample_seed(c.seed);
  if (kernel) options.steps = model.config.julep.steps;  // the trained kernel's own T
  const Samples samples = sample(model, options);
  const double sample_seconds = seconds_since(sample_start);
  int64_t steps = 0;
  if (c.method != "prior")
    steps = kernel ? model.config.julep.steps : model.config.anneal.steps;

  json m = {{"system", c.system->name},
            {"method", c.method},
            {"seed", c.seed},
            {"sample_seed", sample_seed(c.seed)},
            {"status", "done"},
            {"num_samples", options.count},
            {"steps", c.method == "prior" ? json(nullptr) : json(steps)},
            {"smc", samples.smc},
            {"ess_kind", c.method == "prior" ? "prior" : samples.smc ? "smc_final" : "path"},
            {"config", c.system->config},
            {"run", run.string()},
            {"device", grid.device.str()},
            {"threads", at::get_num_threads()}};
  const WeightSummary w = summarize_weights(samples.log_w);
  m["ess"] = w.ess;
  m["effective_count"] = w.effective_count;
  m["log_z"] = w.log_z;
  m["log_z_se"] = w.log_z_se;
  if (samples.smc) {
    // Independent populations of [anneal] chunk chains; null with fewer than two.
    const int64_t population = std::min<int64_t>(model.config.anneal.chunk, options.count);
    const double se = population_log_z_se(samples.log_w, population);
    m["log_z_se"] = std::isfinite(se) ? json(se) : json(nullptr);
  }
  m["non_finite_log_w"] = w.num_zero;
  m["reference"] = c.system->reference;
  m["energy_w1"] = m["energy_w2"] = m["distance_w2"] = nullptr;
  if (!c.system->reference.empty()) {
    const SampleMetrics sm = compare_samples(samples.positions, samples.log_w, samples.energies,
                                             c.system->reference_positions, c.system->reference_energies);
    m["energy_w1"] = sm.energy_w1;
    m["energy_w2"] = sm.energy_w2;
    m["distance_w2"] = sm.distance_w2;
  }
  if (grid.plan.keep_samples)
    write_npz((c.folder / "samples.npz").string(),
              {{"positions", samples.positions}, {"log_w", samples.log_w}, {"energies", samples.energies}});
  m["train_seconds"] = train_seconds;
  m["sample_seconds"] = sample_seconds;
  m["cell_seconds"] = seconds_since(start);
  m["wall_seconds"] = train_seconds + seconds_since(sample_start);
  // Written last and atomically: its presence marks the cell finished.
  write_text_atomically((c.folder / "metrics.json").string(), m.dump(2) + "\n");
  return m;
}

// ---- Tables ------------------------------------------------------------------------------

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      auto v = line.substr(line.find(':') + 1);
      return v.substr(std::min(v.find_first_not_of(' '), v.size()));
    }
  return "unknown CPU";
}

std::string host_name() {
  char name[256] = {0};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M UTC", &tm);
  return text;
}

json machine(const Grid& grid) {
  return {{"host", host_name()},
          {"cpu", cpu_model()},
          {"cores", std::thread::hardware_concurrency()},
          {"threads", at::get_num_threads()},
          {"device", grid.device.str()},
          {"libtorch", fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH)}};
}

// The kernel iterations are named only where a method of the grid trains a kernel.
std::string budget_line(const BenchSystem& s, bool trains_kernel) {
  const auto& b = s.budget;
  std::string samples = s.reduced ? fmt::format("reduced: {} samples (the paper: {})", *b.samples, kPaperSamples)
                                  : fmt::format("{} samples (the paper's count)", *b.samples);
  const std::string steps = b.steps ? budget_text(*b.steps) : "the config's";
  std::string kernel;
  if (trains_kernel) {
    const bool own_samples = *b.kernel_samples != *b.samples;
    if (own_samples || b.kernel_steps)
      kernel = fmt::format("kernel cells {} samples and T = {}, ", *b.kernel_samples,
                           b.kernel_steps ? budget_text(*b.kernel_steps) : steps);
    kernel += fmt::format("{} kernel iterations, ", b.iterations ? budget_text(*b.iterations) : "the config's");
  }
  return fmt::format("{}, T = {}, {}{} Mint steps", samples, steps, kernel,
                     b.mint_steps ? budget_text(*b.mint_steps) : "the config's");
}

struct Stats {
  double mean = 0, sd = 0, min = 0, max = 0;
  size_t n = 0;
};

Stats stats(const std::vector<double>& v) {
  Stats s;
  s.n = v.size();
  if (v.empty()) return s;
  for (double x : v) s.mean += x / static_cast<double>(v.size());
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(s.sd / static_cast<double>(v.size() - 1)) : 0.0;
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  return s;
}

std::string markdown(const Grid& grid, const json& results) {
  const BenchPlan& plan = grid.plan;
  const json& mach = results["machine"];
  const json& cells = results["cells"];
  std::string md = "# MintJulep benchmark\n\n";
  int64_t done = 0, failed = 0, pending = 0;
  for (const auto& c : cells) {
    const std::string status = c.value("status", "");
    done += status == "done";
    failed += status == "failed";
    pending += status == "pending";
  }
  const int64_t jobs = results.value("jobs", int64_t{1});
  md += fmt::format("Machine: `{}`, {}, {} cores; {} threads{}, device {}; LibTorch {}. Written {}.\n\n",
                    mach["host"].get<std::string>(), mach["cpu"].get<std::string>(), mach["cores"].get<int64_t>(),
                    mach["threads"].get<int64_t>(),
                    jobs > 1 ? fmt::format(" in each of {} processes at once (--jobs)", jobs) : "",
                    mach["device"].get<std::string>(),
                    mach["libtorch"].get<std::string>(), utc_now());
  md += fmt::format("Grid: {} systems x {} methods x {} seeds ({}) = {} cells: {} done, {} failed, {} pending. "
                    "Budget `{}`.\n\n",
                    plan.systems.size(), plan.methods.size(), plan.seeds.size(), fmt::join(plan.seeds, ", "),
                    cells.size(), done, failed, pending, plan.budget);
  md += "Budgets per system (T: annealing steps):\n\n";
  const bool trains_kernel =
      std::any_of(plan.methods.begin(), plan.methods.end(), [](const std::string& m) { return bench_method_needs_kernel(m); });
  for (const auto& s : plan.systems)
    md += fmt::format("- {} (`{}`{}): {}\n", s.name, s.config,
                      s.reference.empty() ? "" : fmt::format(", reference `{}`", s.reference), budget_line(s, trains_kernel));
  md += "\n| system | method | seeds | samples | ESS (%) | log Z | log Z se | energy W1 | energy W2 | distance W2 "
        "| train (s) | sample (s) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  auto number = [](double v, int digits) { return fmt::format("{:.{}f}", v, digits); };
  for (const auto& s : plan.systems) {
    for (const auto& method : plan.methods) {
      std::vector<double> ess, log_z, se, w1, w2, dw2, train, samp;
      int64_t count = 0;
      for (const auto& c : cells) {
        if (c["system"] != s.name || c["method"] != method || c.value("status", "") != "done") continue;
        count = c["num_samples"].get<int64_t>();
        ess.push_back(100 * c["ess"].get<double>());
        log_z.push_back(c["log_z"].get<double>());
        if (c["log_z_se"].is_number()) se.push_back(c["log_z_se"].get<double>());
        if (c["energy_w1"].is_number()) {
          w1.push_back(c["energy_w1"].get<double>());
          w2.push_back(c["energy_w2"].get<double>());
          dw2.push_back(c["distance_w2"].get<double>());
        }
        train.push_back(c["train_seconds"].get<double>());
        samp.push_back(c["sample_seconds"].get<double>());
      }
      const std::string name = method + (method.rfind("smc-", 0) == 0 ? " *" : "");
      if (ess.empty()) {
        md += fmt::format("| {} | {} | 0/{} | | | | | | | | | |\n", s.name, name, plan.seeds.size());
        continue;
      }
      const Stats e = stats(ess), z = stats(log_z);
      auto mean_or_dash = [&](const std::vector<double>& v, int digits) {
        return v.empty() ? std::string("-") : number(stats(v).mean, digits);
      };
      // One seed has no spread to show.
      const std::string ess_text =
          e.n > 1 ? fmt::format("{} +- {}", number(e.mean, 2), number(e.sd, 2)) : number(e.mean, 2);
      const std::string log_z_text =
          z.n > 1 ? fmt::format("{} +- {} ({} to {})", number(z.mean, 4), number(z.sd, 4), number(z.min, 4),
                                number(z.max, 4))
                  : number(z.mean, 4);
      md += fmt::format("| {} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", s.name, name, ess.size(),
                        plan.seeds.size(), count, ess_text, log_z_text, mean_or_dash(se, 4), mean_or_dash(w1, 4),
                        mean_or_dash(w2, 4), mean_or_dash(dw2, 4), mean_or_dash(train, 1), mean_or_dash(samp, 1));
    }
  }
  md += "\nESS: mean +- sd over the seeds done (prior: of the prior draws; ais-*, julep: path ESS; * smc-*: ESS "
        "of the final SMC weights, not a path ESS). log Z: mean +- sd over seeds (min to max); log Z se: mean "
        "standard error of one seed (delta method on the weights; smc-*: from the spread of the seed's independent "
        "populations of [anneal] chunk chains, `-` with a single population). W1/W2: means over seeds against the reference (`-`: no "
        "reference). train: wall time of the training the cell's model needed (shared by the cells of a system "
        "and seed); sample: wall time of drawing the cell's samples. Per-cell numbers: results.json.\n";
  bool header = false;
  for (const auto& c : cells) {
    if (c.value("status", "") != "failed") continue;
    if (!header) md += "\nFailed cells:\n\n";
    header = true;
    md += fmt::format("- {} {} seed {}: {}\n", c["system"].get<std::string>(), c["method"].get<std::string>(),
                      c["seed"].get<int64_t>(), c.value("error", ""));
  }
  return md;
}


// ---- Cells in this process and in workers ------------------------------------------------

std::string worker_name(const std::string& system, int64_t seed) { return fmt::format("{}:{}", system, seed); }

// Where the worker of a system and seed writes its output.
fs::path worker_log(const Grid& grid, const std::string& system, int64_t seed) {
  return grid.out / "train" / pair_name(system, seed) / "bench-worker.log";
}

// Computes one cell, logging its start and end. A failure is logged and recorded in the cell's
// metrics.json (status "failed", for the tables) and the grid goes on. Returns whether the
// cell finished.
bool compute_cell(Grid& grid, const Cell& c, const std::string& prefix, SteadyClock::time_point grid_start,
                  std::string* error = nullptr) {
  grid.log(fmt::format("{}: start; {:.0f} s elapsed\n", prefix, seconds_since(grid_start)));
  const auto cell_start = SteadyClock::now();
  try {
    const json m = run_cell(grid, c, prefix);
    grid.log(fmt::format("{}: done in {:.1f} s, {} {:.2f}% of {}, log Z {:.4f}{}{}; {:.0f} s elapsed\n", prefix,
                         seconds_since(cell_start), m["smc"].get<bool>() ? "SMC final ESS" : "ESS",
                         100 * m["ess"].get<double>(), m["num_samples"].get<int64_t>(), m["log_z"].get<double>(),
                         m["log_z_se"].is_number() ? fmt::format(" +- {:.4f}", m["log_z_se"].get<double>()) : "",
                         m["distance_w2"].is_number()
                             ? fmt::format(", distance W2 {:.4f}", m["distance_w2"].get<double>())
                             : "",
                         seconds_since(grid_start)));
    return true;
  } catch (const std::exception& e) {
    std::string message = e.what();
    message = message.substr(0, message.find('\n'));
    try {
      fs::create_directories(c.folder);
      const json failed = {{"system", c.system->name}, {"method", c.method}, {"seed", c.seed},
                           {"status", "failed"},       {"error", message}};
      write_text_atomically((c.folder / "metrics.json").string(), failed.dump(2) + "\n");
    } catch (const std::exception&) {
      // The failure is still logged and tabulated from this process's own record.
    }
    grid.log(fmt::format("{}: failed: {}; {:.0f} s elapsed\n", prefix, message, seconds_since(grid_start)));
    if (error != nullptr) *error = message;
    return false;
  }
}

// Runs the (system, seed) pairs that have unfinished cells in worker processes, run.jobs at
// once, relaying each worker's output lines to the grid's log prefixed with its pair, and
// calling `progress` whenever one ends.
void run_workers(Grid& grid, const std::vector<Cell>& cells, const std::vector<bool>& finished_before,
                 const BenchRunOptions& run, const std::function<void()>& progress,
                 SteadyClock::time_point start) {
  std::vector<std::pair<std::string, int64_t>> pairs;
  for (size_t i = 0; i < cells.size(); ++i) {
    const std::pair<std::string, int64_t> pair{cells[i].system->name, cells[i].seed};
    if (!finished_before[i] && std::find(pairs.begin(), pairs.end(), pair) == pairs.end()) pairs.push_back(pair);
  }
  if (pairs.empty()) return;
  grid.log(fmt::format("bench: {} system-seed pairs to compute, {} at once, each by a worker writing "
                       "{}/train/SYSTEM-sSEED/bench-worker.log\n",
                       pairs.size(), run.jobs, grid.out.string()));
  struct Worker {
    pid_t pid;
    std::string name;
    fs::path log;
    std::uintmax_t offset;
    std::string partial;  // an unfinished last line
  };
  std::vector<Worker> running;
  auto relay = [&](Worker& w, bool last) {
    std::ifstream in(w.log, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(w.offset));
    const std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    w.offset += chunk.size();
    w.partial += chunk;
    for (size_t nl; (nl = w.partial.find('\n')) != std::string::npos; w.partial.erase(0, nl + 1))
      if (nl > 0) grid.log(fmt::format("  {}> {}\n", w.name, w.partial.substr(0, nl)));
    if (last && !w.partial.empty()) grid.log(fmt::format("  {}> {}\n", w.name, w.partial));
  };
  size_t next = 0, ended = 0;
  while (next < pairs.size() || !running.empty()) {
    while (static_cast<int64_t>(running.size()) < run.jobs && next < pairs.size()) {
      const auto& [system, seed] = pairs[next++];
      Worker w{0, worker_name(system, seed), worker_log(grid, system, seed), 0, ""};
      fs::create_directories(w.log.parent_path());
      std::error_code ec;
      if (fs::exists(w.log, ec)) w.offset = fs::file_size(w.log, ec);
      std::vector<std::string> args = run.worker_command;
      args.push_back("--worker");
      args.push_back(w.name);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      posix_spawn_file_actions_t files;
      posix_spawn_file_actions_init(&files);
      posix_spawn_file_actions_addopen(&files, 1, w.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      posix_spawn_file_actions_adddup2(&files, 1, 2);
      const int rc = ::posix_spawn(&w.pid, args.front().c_str(), &files, nullptr, argv.data(), environ);
      posix_spawn_file_actions_destroy(&files);
      check(rc == 0, fmt::format("cannot start a bench worker '{}': {}", args.front(), std::strerror(rc)));
      grid.log(fmt::format("bench: worker {} started (process {}); {:.0f} s elapsed\n", w.name, w.pid,
                           seconds_since(start)));
      running.push_back(std::move(w));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    for (auto it = running.begin(); it != running.end();) {
      int status = 0;
      const pid_t r = ::waitpid(it->pid, &status, WNOHANG);
      relay(*it, r != 0);
      if (r == 0) {
        ++it;
        continue;
      }
      ++ended;
      const std::string how = r < 0                ? fmt::format("could not be waited for ({})", std::strerror(errno))
                              : WIFEXITED(status)  ? fmt::format("exited with status {}", WEXITSTATUS(status))
                              : WIFSIGNALED(status) ? fmt::format("was killed by signal {}", WTERMSIG(status))
                                                    : "ended";
      grid.log(fmt::format("bench: worker {} {} ({}/{} pairs); {:.0f} s elapsed\n", it->name, how, ended,
                           pairs.size(), seconds_since(start)));
      it = running.erase(it);
      progress();
    }
  }
}
}  // namespace

// ---- Public API --------------------------------------------------------------------------

const std::vector<std::string>& bench_methods() {
  static const std::vector<std::string> methods = {"prior", "ais-ula",     "ais-mala",     "smc-mala",
                                                    "julep", "smc-julep",   "pis",          "dds",
                                                    "gauss-julep", "mint-additive"};
  return methods;
}

const std::vector<std::string>& default_bench_methods() {
  static const std::vector<std::string> methods = {"prior", "ais-ula", "ais-mala", "smc-mala",
                                                    "julep", "smc-julep", "pis", "dds"};
  return methods;
}

bool bench_method_needs_kernel(const std::string& method) {
  return method == "julep" || method == "smc-julep" || !training_variant(method).empty();
}

const std::vector<std::string>& default_bench_systems() {
  static const std::vector<std::string> systems = {"dw4", "lj13", "lj13-half", "lj55", "lj55-half"};
  return systems;
}

void BenchBudget::update(const BenchBudget& other) {
  if (other.samples) samples = other.samples;
  if (other.steps) steps = other.steps;
  if (other.iterations) iterations = other.iterations;
  if (other.mint_steps) mint_steps = other.mint_steps;
  if (other.kernel_samples) kernel_samples = other.kernel_samples;
  if (other.kernel_steps) kernel_steps = other.kernel_steps;
}

BenchBudget builtin_budget(const std::string& name, const std::string& system) {
  check(name == "small" || name == "paper",
        fmt::format("unknown budget '{}'; use small (reduced, for 2 CPU cores) or paper (1e5 samples)", name));
  const std::string stem = config_stem(system);
  BenchBudget b;
  if (name == "paper") {
    b.samples = kPaperSamples;
    // The best-recipe configs train no kernel: the kernel cells take the iterations of the
    // paper pipelines, configs/SYSTEM-julep.toml.
    if (stem == "dw4") b.iterations = 200;
    if (stem == "lj13") b.iterations = 20;
    if (stem == "lj55") b.iterations = 50;
    return b;
  }
  if (stem == "dw4") {
    b.samples = 10000;
    b.steps = 50;
    b.iterations = 50;
  } else if (stem == "lj13") {
    b.samples = 2000;
    b.steps = 100;
    b.iterations = 20;
  } else if (stem == "lj55") {
    b.samples = 1000;
    b.steps = 100;
    b.iterations = 10;
  } else {
    b.samples = 1000;
  }
  return b;
}

BenchSettings load_bench_settings(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  check(file.good(), fmt::format("cannot open bench file '{}': check the path", path));
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  toml::table root;
  try {
    root = toml::parse(ascii_outside_strings(text, path), path);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    throw Error(fmt::format("{}:{}:{}: invalid TOML: {}", path, where.line, where.column, std::string(e.description())));
  }
  for (const auto& [key, node] : root)
    check(key.str() == "bench", fmt::format("{}: unknown key '{}' at the top level; a bench file has one [bench] "
                                            "section", path, std::string(key.str())));
  const toml::table* bench = root.get("bench") ? root.get("bench")->as_table() : nullptr;
  check(bench != nullptr, fmt::format("{}: no [bench] section; see docs/USAGE.md (mintjulep bench)", path));
  BenchSettings s;
  for (const auto& [key_view, node] : *bench) {
    const std::string key(key_view.str());
    const std::string where = fmt::format("'{}' in [bench]", key);
    if (key == "systems") {
      s.systems = read_string_list(node, where, path);
    } else if (key == "methods") {
      s.methods = read_string_list(node, where, path);
    } else if (key == "seeds") {
      const toml::array* a = node.as_array();
      check(a != nullptr, fmt::format("{}: {} must be a list of integers, e.g. [0, 1, 2]", path, where));
      for (const auto& item : *a) s.seeds.push_back(read_integer(item, where + " entries", path));
    } else if (key == "budget") {
      s.budget = read_string(node, where, path);
    } else if (key == "configs") {
      s.configs = relative_to(path, read_string(node, where, path));
    } else if (key == "keep_samples") {
      auto v = node.value<bool>();
      check(node.is_boolean() && v.has_value(), fmt::format("{}: {} must be true or false", path, where));
      s.keep_samples = *v;
    } else if (read_budget_key(key, node, where, path, s.overrides)) {
    } else if (node.is_table()) {  // [bench.SYSTEM]
      try {
        make_system(key);
      } catch (const Error& e) {
        throw Error(fmt::format("{}: [bench.{}]: {}", path, key, e.what()));
      }
      BenchSystemSettings& sys = s.per_system[key];
      for (const auto& [sub_view, sub] : *node.as_table()) {
        const std::string sub_key(sub_view.str());
        const std::string sub_where = fmt::format("'{}' in [bench.{}]", sub_key, key);
        if (sub_key == "config") sys.config = relative_to(path, read_string(sub, sub_where, path));
        else if (sub_key == "reference") sys.reference = relative_to(path, read_string(sub, sub_where, path));
        else
          check(read_budget_key(sub_key, sub, sub_where, path, sys.budget),
                fmt::format("{}: unknown key '{}' in [bench.{}]; use config, reference, samples, steps, iterations, "
                            "mint_steps, kernel_samples or kernel_steps", path, sub_key, key));
      }
    } else {
      throw Error(fmt::format("{}: unknown key '{}' in [bench]; use systems, methods, seeds, budget, configs, "
                              "samples, steps, iterations, mint_steps, kernel_samples, kernel_steps, keep_samples or "
                              "a [bench.SYSTEM] table",
                              path, key));
    }
  }
  return s;
}

BenchPlan plan_bench(const BenchSettings& settings) {
  BenchPlan plan;
  builtin_budget(settings.budget, "dw4");  // an unknown budget name fails first
  plan.budget = settings.budget;
  plan.keep_samples = settings.keep_samples;
  plan.methods = settings.methods.empty() ? default_bench_methods() : settings.methods;
  std::set<std::string> seen;
  for (const auto& m : plan.methods) {
    check(std::find(bench_methods().begin(), bench_methods().end(), m) != bench_methods().end(),
          fmt::format("unknown bench method '{}'; use {}", m, method_list()));
    check(seen.insert(m).second, fmt::format("bench method '{}' is listed twice; list each once", m));
  }
  plan.seeds = settings.seeds.empty() ? std::vector<int64_t>{0, 1, 2} : settings.seeds;
  std::set<int64_t> seeds;
  for (int64_t seed : plan.seeds) {
    check(seed >= 0, fmt::format("bench seed {} is negative; seeds must be >= 0", seed));
    check(seeds.insert(seed).second, fmt::format("bench seed {} is listed twice; list each once", seed));
  }
  const auto names = settings.systems.empty() ? default_bench_systems() : settings.systems;
  std::set<std::string> systems;
  for (const auto& name : names) {
    check(systems.insert(name).second, fmt::format("bench system '{}' is listed twice; list each once", name));
    std::shared_ptr<Energy> energy;
    try {
      energy = make_system(name);
    } catch (const Error& e) {
      throw Error(fmt::format("bench system: {}", e.what()));
    }
    BenchSystem s;
    s.name = name;
    const auto found = settings.per_system.find(name);
    const BenchSystemSettings own = found == settings.per_system.end() ? BenchSystemSettings{} : found->second;
    // CONFIGS/SYSTEM.toml, else (a -half system without its own) the full system's config.
    const fs::path own_default = fs::path(settings.configs) / (name + ".toml");
    s.config = !own.config.empty()         ? own.config
               : fs::exists(own_default)  ? own_default.string()
                                          : (fs::path(settings.configs) / (config_stem(name) + ".toml")).string();
    check(fs::exists(s.config),
          fmt::format("no config for bench system '{}': '{}' not found; run from the source tree, give --configs "
                      "DIR or --config {}=FILE", name, s.config, name));
    const RunConfig base = load_config(s.config);  // checks every key
    s.budget = builtin_budget(settings.budget, name);
    s.budget.update(settings.overrides);
    s.budget.update(own.budget);
    s.budget.update(settings.command_line);
    const auto& b = s.budget;
    check(*b.samples >= 2, fmt::format("bench system {}: samples must be >= 2, got {}", name, *b.samples));
    check(!b.steps || *b.steps >= 1, fmt::format("bench system {}: steps must be >= 1, got {}", name, b.steps.value_or(0)));
    check(!b.iterations || *b.iterations >= 0,
          fmt::format("bench system {}: iterations must be >= 0, got {}", name, b.iterations.value_or(0)));
    check(!b.mint_steps || *b.mint_steps >= 0,
          fmt::format("bench system {}: mint_steps must be >= 0, got {}", name, b.mint_steps.value_or(0)));
    check(!b.kernel_samples || *b.kernel_samples >= 2,
          fmt::format("bench system {}: kernel_samples must be >= 2, got {}", name, b.kernel_samples.value_or(0)));
    check(!b.kernel_steps || *b.kernel_steps >= 1,
          fmt::format("bench system {}: kernel_steps must be >= 1, got {}", name, b.kernel_steps.value_or(0)));
    if (!s.budget.steps && base.julep.steps == base.anneal.steps) s.budget.steps = base.julep.steps;
    if (!s.budget.iterations) s.budget.iterations = base.train.iterations;
    if (!s.budget.mint_steps) s.budget.mint_steps = base.mint.steps;
    if (!s.budget.kernel_samples) s.budget.kernel_samples = s.budget.samples;
    if (s.budget.kernel_steps && s.budget.kernel_steps == s.budget.steps) s.budget.kernel_steps.reset();
    const bool kernel_cells = std::any_of(plan.methods.begin(), plan.methods.end(), bench_method_needs_kernel);
    s.reduced = *s.budget.samples < kPaperSamples || (kernel_cells && *s.budget.kernel_samples < kPaperSamples);
    const fs::path default_reference = fs::path(data_dir()) / (name + "-reference.npz");
    s.reference = !own.reference.empty() ? own.reference
                  : fs::exists(default_reference) ? default_reference.string()
                                                  : "";
    if (!s.reference.empty()) {
      check(fs::exists(s.reference), fmt::format("reference '{}' for bench system {} not found; check the path",
                                                 s.reference, name));
      load_reference(s, *energy);
    }
    plan.systems.push_back(std::move(s));
  }
  return plan;
}

BenchReport run_bench(const BenchPlan& plan, const std::string& out, torch::Device device, const Log& log,
                      const BenchRunOptions& run) {
  const auto start = SteadyClock::now();
  Grid grid{plan, fs::path(out), device, log, {}, {}};
  const bool worker = !run.worker.empty();
  check(run.jobs >= 1, fmt::format("--jobs must be >= 1, got {}", run.jobs));
  check(worker || run.jobs == 1 || !run.worker_command.empty(),
        "bench with jobs > 1 needs the command that starts its workers");
  std::error_code ec;
  fs::create_directories(grid.out / "train", ec);
  check(!ec && fs::is_directory(grid.out), fmt::format("cannot create output folder '{}': {}", out, ec.message()));
  std::vector<Cell> cells;
  for (const auto& s : plan.systems)
    for (const auto& method : plan.methods)
      for (int64_t seed : plan.seeds)
        if (!worker || run.worker == worker_name(s.name, seed))
          cells.push_back({&s, method, seed, grid.out / fmt::format("{}-{}-s{}", s.name, method, seed)});
  check(!worker || !cells.empty(),
        fmt::format("--worker {}: no such system and seed in this grid; use SYSTEM:SEED of the grid", run.worker));
  // One grid run per folder, one worker per pair: two would train into the same run folders.
  // A lock goes with its process (also on kill -9).
  const fs::path lock_path = worker ? grid.out / "train" / pair_name(cells.front().system->name, cells.front().seed) /
                                          ".bench.lock"
                                    : grid.out / ".bench.lock";
  fs::create_directories(lock_path.parent_path(), ec);
  const int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  check(lock >= 0, fmt::format("cannot create '{}': {}; choose a folder you can write to", lock_path.string(),
                               std::strerror(errno)));
  std::shared_ptr<void> unlock(nullptr, [lock](void*) { ::close(lock); });
  check(::flock(lock, LOCK_EX | LOCK_NB) == 0,
        worker ? fmt::format("another bench worker is running {} in '{}'; wait for it to finish", run.worker, out)
               : fmt::format("another mintjulep bench is running in '{}'; wait for it to finish or give another --out",
                             out));
  // The effective config of every system and seed, checked before any work; written by the
  // process that owns the grid (a worker only reads what it was started with).
  // The default training is always written: the additive variant starts from its Mint stage.
  std::set<std::string> variants = {""};
  for (const auto& method : plan.methods) variants.insert(training_variant(method));
  for (const auto& s : plan.systems)
    for (int64_t seed : plan.seeds) {
      if (worker && run.worker != worker_name(s.name, seed)) continue;
      const std::string text = effective_config_text(s, seed);
      for (const auto& variant : variants) {
        const std::string name = training_key(s.name, seed, variant);
        const std::string variant_text = training_config_text(text, variant, s);
        const fs::path path = grid.out / "train" / name / "config.toml";
        if (!worker) {
          fs::create_directories(path.parent_path());
          write_text_atomically(path.string(), variant_text);
        }
        check(same_text(path, variant_text),
              fmt::format("'{}' is not this grid's config; run the whole grid again (not --worker)", path.string()));
        load_config(path.string());
        grid.config_texts[name] = variant_text;
      }
    }
  BenchReport report;
  report.cells = static_cast<int64_t>(cells.size());
  report.results_json = (grid.out / "results.json").string();
  report.results_md = (grid.out / "results.md").string();
  log(fmt::format("bench: {} cells ({} systems x {} methods x {} seeds), budget {}, {} threads, device {}, into {}{}\n",
                  cells.size(), plan.systems.size(), plan.methods.size(), plan.seeds.size(), plan.budget,
                  at::get_num_threads(), device.str(), out,
                  worker ? fmt::format(" (worker of {})", run.worker)
                  : run.jobs > 1 ? fmt::format(", {} system-seed pairs at once", run.jobs)
                                 : ""));

  if (worker) {
    // Die with the process that started this worker, not after it.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    for (size_t i = 0; i < cells.size(); ++i) {
      const Cell& c = cells[i];
      const std::string prefix = fmt::format("[{}/{}] {}", i + 1, cells.size(), cell_label(c));
      if (auto done = reusable(grid, c)) {
        ++report.reused;
        log(fmt::format("{}: reused (finished earlier), ESS {:.2f}%, log Z {:.4f}\n", prefix,
                        100 * (*done)["ess"].get<double>(), (*done)["log_z"].get<double>()));
      } else if (compute_cell(grid, c, prefix, start)) {
        ++report.computed;
      } else {
        ++report.failed;
      }
    }
    return report;
  }

  json results_cells = json::array();
  for (const auto& c : cells)
    results_cells.push_back({{"system", c.system->name}, {"method", c.method}, {"seed", c.seed}, {"status", "pending"},
                             {"folder", c.folder.string()}});
  json systems = json::array();
  for (const auto& s : plan.systems)
    systems.push_back({{"name", s.name},
                       {"config", s.config},
                       {"reference", s.reference},
                       {"samples", *s.budget.samples},
                       {"steps", s.budget.steps ? json(*s.budget.steps) : json(nullptr)},
                       {"iterations", *s.budget.iterations},
                       {"kernel_samples", *s.budget.kernel_samples},
                       {"kernel_steps", s.budget.kernel_steps ? json(*s.budget.kernel_steps) : json(nullptr)},
                       {"mint_steps", *s.budget.mint_steps},
                       {"reduced", s.reduced}});
  auto write_results = [&] {
    json results = {{"machine", machine(grid)},
                    {"budget", plan.budget},
                    {"jobs", run.jobs},
                    {"paper_samples", kPaperSamples},
                    {"systems", systems},
                    {"methods", plan.methods},
                    {"seeds", plan.seeds},
                    {"cells", results_cells}};
    write_text_atomically(report.results_json, results.dump(2) + "\n");
    write_text_atomically(report.results_md, markdown(grid, results));
  };
  // Cells finished before this run are reused, not computed again.
  std::vector<bool> finished_before(cells.size());
  for (size_t i = 0; i < cells.size(); ++i) finished_before[i] = reusable(grid, cells[i]).has_value();
  std::map<size_t, std::string> errors;  // of the cells this process failed
  // The finished cells into the tables; of the cells before `settled`, one not finished failed.
  auto collect = [&](size_t settled) {
    for (size_t i = 0; i < cells.size(); ++i) {
      const Cell& c = cells[i];
      if (results_cells[i].value("status", "") != "pending") continue;
      if (auto done = reusable(grid, c)) {
        json m = *done;
        m["reused"] = static_cast<bool>(finished_before[i]);
        m["folder"] = c.folder.string();
        results_cells[i] = m;
      } else if (i < settled) {
        auto failed = read_json(c.folder / "metrics.json");
        const std::string error = errors.count(i) ? errors.at(i)
                                  : failed && failed->value("status", "") == "failed"
                                      ? failed->value("error", "")
                                      : fmt::format("its worker ended without finishing it (log: {})",
                                                    worker_log(grid, c.system->name, c.seed).string());
        results_cells[i] = {{"system", c.system->name}, {"method", c.method}, {"seed", c.seed}, {"status", "failed"},
                            {"error", error}, {"reused", false}, {"folder", c.folder.string()}};
      }
    }
    write_results();
  };

  if (run.jobs > 1) {
    collect(0);  // the tables exist (finished and pending cells) while the workers run
    run_workers(grid, cells, finished_before, run, [&] { collect(0); }, start);
    collect(cells.size());
    for (const auto& m : results_cells) {
      const std::string status = m.value("status", "");
      report.failed += status == "failed";
      report.reused += status == "done" && m.value("reused", false);
      report.computed += status == "done" && !m.value("reused", false);
    }
  } else {
    for (size_t i = 0; i < cells.size(); ++i) {
      const Cell& c = cells[i];
      const std::string prefix = fmt::format("[{}/{}] {}", i + 1, cells.size(), cell_label(c));
      if (auto done = finished_before[i] ? reusable(grid, c) : std::nullopt) {
        ++report.reused;
        log(fmt::format("{}: reused (finished earlier), ESS {:.2f}%, log Z {:.4f}; {:.0f} s elapsed\n", prefix,
                        100 * (*done)["ess"].get<double>(), (*done)["log_z"].get<double>(), seconds_since(start)));
      } else if (compute_cell(grid, c, prefix, start, &errors[i])) {
        errors.erase(i);
        ++report.computed;
      } else {
        ++report.failed;
      }
      collect(i + 1);
    }
    collect(cells.size());
  }
  log(fmt::format("bench: {} cells, {} computed, {} reused, {} failed in {:.0f} s; wrote {} and {}\n", report.cells,
                  report.computed, report.reused, report.failed, seconds_since(start), report.results_json,
                  report.results_md));
  return report;
}

}  // namespace mintjulep
