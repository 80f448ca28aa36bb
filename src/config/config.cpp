#include <mintjulep/config.hpp>
#include <mintjulep/error.hpp>

#include <fmt/format.h>

#include <cmath>
#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>

#include "config/toml_text.hpp"
#include "core/printable.hpp"

namespace mintjulep {
namespace {

// Reads optional keys of one table, remembering which ones were consumed.
class Table {
 public:
  Table(const toml::table* table, std::string where, std::string path)
      : table_(table), where_(std::move(where)), path_(std::move(path)) {}

  template <class T>
  void read(const std::string& key, T& value) {
    known_.insert(key);
    if (table_ == nullptr) return;
    const toml::node* node = table_->get(key);
    if (node == nullptr) return;
    if constexpr (std::is_same_v<T, bool>) {
      auto v = node->value<bool>();
      check(v.has_value(), message(key, "true or false"));
      value = *v;
    } else if constexpr (std::is_integral_v<T>) {
      // is_integer first: toml++ 3.3 converts a float to int64 without a range check (UB).
      check(node->is_integer(), message(key, "an integer"));
      auto v = node->value<int64_t>();
      check(v.has_value(), message(key, "an integer"));
      if constexpr (std::is_unsigned_v<T>) {
        check(*v >= 0, message(key, "a non-negative integer"));
      } else if constexpr (sizeof(T) < sizeof(int64_t)) {
        check(*v >= std::numeric_limits<T>::min() && *v <= std::numeric_limits<T>::max(),
              message(key, fmt::format("an integer in [{}, {}]", std::numeric_limits<T>::min(),
                                       std::numeric_limits<T>::max())));
      }
      value = static_cast<T>(*v);
    } else if constexpr (std::is_floating_point_v<T>) {
      auto v = node->value<double>();
      check(v.has_value() && std::isfinite(*v), message(key, "a finite number"));
      value = *v;
    } else {
      auto v = node->value<std::string>();
      check(v.has_value() && is_single_line(*v), message(key, "a one-line string"));
      value = *v;
    }
  }

  void read_pair(const std::string& key, std::array<int64_t, 2>& value) {
    known_.insert(key);
    if (table_ == nullptr || table_->get(key) == nullptr) return;
    const toml::array* a = table_->get(key)->as_array();
    check(a != nullptr && a->size() == 2 && (*a)[0].is_integer() && (*a)[1].is_integer(),
          message(key, "a list of two particle indices, e.g. [1, 2]"));
    value = {(*a)[0].value<int64_t>().value(), (*a)[1].value<int64_t>().value()};
  }

  void reject_unknown(const std::set<std::string>& subtables = {}) const {
    if (table_ == nullptr) return;
    for (const auto& [key, node] : *table_) {
      const std::string k(key.str());
      check(known_.count(k) || subtables.count(k),
            fmt::format("{}: unknown key '{}' in {}; see the configuration keys in README.md", path_,
                        printable(k), where_));
    }
  }

 private:
  std::string message(const std::string& key, const std::string& expected) const {
    return fmt::format("{}: '{}' in {} must be {}", path_, key, where_, expected);
  }
  const toml::table* table_;
  std::string where_, path_;
  std::set<std::string> known_;
};

}  // namespace

// toml++ 3.3 (Debian 12) reaches __builtin_unreachable in its Unicode whitespace test for
// some non-ASCII characters where it expects whitespace (fixed upstream after 3.3). The
// configuration keys and values are ASCII; non-ASCII text is needed only in comments and
// maybe in one-line strings (paths). This blanks comments, keeps one-line strings and
// rejects non-ASCII bytes anywhere else, so that toml++ never classifies one.
namespace {

// Whether a quote at text[i] can open a TOML string: at the start of its line or after '=',
// '[', '{', ',' or '.' (a value, an array element, a quoted key). Elsewhere, e.g. inside a
// malformed bare value like `4x"...`, toml++ does not read a string there either, so the bytes
// after it must be checked as well.
bool string_can_start(const std::string& text, size_t line_start, size_t i) {
  size_t k = i;
  while (k > line_start && (text[k - 1] == ' ' || text[k - 1] == '\t')) --k;
  if (k == line_start) return true;
  const char before = text[k - 1];
  return before == '=' || before == '[' || before == '{' || before == ',' || before == '.';
}

}  // namespace

std::string ascii_outside_strings(const std::string& text, const std::string& path) {
  std::string out = text;
  size_t line = 1, line_start = 0;
  auto non_ascii = [&](size_t i) {
    return Error(fmt::format("{}:{}:{}: non-ASCII character outside a comment or a one-line "
                             "string; write keys and values in ASCII",
                             path, line, i - line_start + 1));
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') {
      ++line;
      line_start = i + 1;
    } else if (c == '#') {  // a comment: blanked up to the end of the line
      for (; i + 1 < text.size() && text[i + 1] != '\n'; ++i)
        if (static_cast<unsigned char>(text[i + 1]) >= 0x80) out[i + 1] = ' ';
    } else if ((c == '"' || c == '\'') && string_can_start(text, line_start, i)) {  // a string
      const std::string quote(text.compare(i, 3, std::string(3, c)) == 0 ? 3 : 1, c);
      const bool multi_line = quote.size() == 3;
      size_t j = i + quote.size();
      while (j < text.size()) {
        const char d = text[j];
        if (text.compare(j, quote.size(), quote) == 0) {
          j += quote.size();
          break;
        }
        if (d == '\n') {
          if (!multi_line) break;  // unterminated: toml++ reports it
          ++line;
          line_start = j + 1;
        }
        if (multi_line && static_cast<unsigned char>(d) >= 0x80) throw non_ascii(j);
        if (c == '"' && d == '\\' && j + 1 < text.size() && text[j + 1] != '\n')
          ++j;  // an escaped character, which may be a quote
        if (multi_line && j < text.size() && static_cast<unsigned char>(text[j]) >= 0x80)
          throw non_ascii(j);
        ++j;
      }
      i = j - 1;
    } else if (static_cast<unsigned char>(c) >= 0x80) {
      throw non_ascii(i);
    }
  }
  return out;
}

RunConfig load_config(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  check(file.good(), fmt::format("cannot open config file '{}': check the path", path));
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const std::string ascii = ascii_outside_strings(text, path);
  toml::table root;
  try {
    root = toml::parse(ascii, path);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    throw Error(fmt::format("{}:{}:{}: invalid TOML: {}", path, where.line, where.column,
                            printable(std::string(e.description()), 200)));
  }
  RunConfig c;
  Table top(&root, "the top level", path);
  top.read("system", c.system);
  top.read("temperature", c.temperature);
  top.read("anchor", c.anchor);
  top.read_pair("frame", c.frame);
  top.read("seed", c.seed);
  top.read("device", c.device);
  top.read("threads", c.threads);
  top.reject_unknown({"prior", "mint", "network", "julep", "train", "anneal"});
  check(!c.system.empty(), path + ": 'system' is missing, e.g. system = \"dw4\"");
  check(c.temperature >= 0.0, path + ": 'temperature' must be positive (kelvin)");
  for (const char* section : {"prior", "mint", "network", "julep", "train", "anneal"})
    check(root.get(section) == nullptr || root.get(section)->is_table(),
          fmt::format("{}: '{}' must be a table ([{}])", path, section, section));

  c.prior.radius = 0.0;  // default: the system's length scale
  Table prior(root["prior"].as_table(), "[prior]", path);
  prior.read("family", c.prior.family);
  prior.read("components", c.prior.components);
  prior.read("invariant", c.prior.invariant);
  prior.read("kappa", c.prior.kappa);
  prior.read("radius", c.prior.radius);
  prior.read("radius_spread", c.prior.radius_spread);
  prior.read("sigma", c.prior.sigma);
  prior.read("scale", c.prior.scale);
  prior.read("path_softening", c.prior.path_softening);
  prior.read("init", c.prior.init);
  prior.read("init_noise", c.prior.init_noise);
  prior.read("starts_per_component", c.harmonic.starts_per_component);
  prior.read("max_relabellings", c.harmonic.max_relabellings);
  prior.read("hessian_floor", c.harmonic.hessian_floor);
  prior.read("covariance_scale", c.harmonic.covariance_scale);
  prior.read("merge_tolerance", c.harmonic.merge_tolerance);
  prior.read("merge_relabelled", c.harmonic.merge_relabelled);
  prior.read("rotor_symmetry", c.rotor_symmetry);
  prior.read("permutation_symmetry", c.permutation_symmetry);
  prior.read("rotor_sd", c.harmonic.rotor_sd);
  prior.read("tail_weight", c.harmonic.tail_weight);
  prior.read("tail_scale", c.harmonic.tail_scale);
  prior.reject_unknown();

  Table mint(root["mint"].as_table(), "[mint]", path);
  mint.read("steps", c.mint.steps);
  mint.read("samples", c.mint.samples);
  mint.read("learning_rate", c.mint.learning_rate);
  mint.read("final_lr_fraction", c.mint.final_lr_fraction);
  mint.read("repulsion", c.mint.repulsion);
  mint.read("beta_start", c.mint.beta_start);
  mint.read("warmup_steps", c.mint.warmup_steps);
  mint.read("log_every", c.mint.log_every);
  mint.read("objective", c.mint.objective);
  mint.read("langevin_steps", c.mint.langevin_steps);
  mint.read("em_strength", c.mint.em_strength);
  mint.read("em_split", c.mint.em_split);
  mint.read("langevin_refresh", c.mint.langevin_refresh);
  mint.read("langevin_burn_in", c.mint.langevin_burn_in);
  mint.read("select_every", c.mint.select_every);
  mint.read("select_samples", c.mint.select_samples);
  mint.read("checkpoint_every", c.mint.checkpoint_every);
  mint.read("eval_samples", c.eval_samples);
  mint.reject_unknown();

  Table network(root["network"].as_table(), "[network]", path);
  network.read("hidden", c.network.hidden);
  network.read("layers", c.network.layers);
  network.read("rank", c.network.rank);
  network.read("time_frequencies", c.network.time_frequencies);
  network.read("h_init_scale", c.network.h_init_scale);
  network.read("float32", c.network.float32);
  network.reject_unknown();

  Table julep(root["julep"].as_table(), "[julep]", path);
  julep.read("steps", c.julep.steps);
  julep.read("eps", c.julep.eps);
  julep.read("learn_eps", c.julep.learn_eps);
  julep.read("random_grid", c.julep.random_grid);
  julep.read("use_a", c.julep.use_a);
  julep.read("use_b", c.julep.use_b);
  julep.read("use_util", c.julep.use_util);
  julep.read("max_step", c.julep.max_step);
  julep.reject_unknown();

  Table train(root["train"].as_table(), "[train]", path);
  train.read("objective", c.train.objective);
  train.read("reverse_kl_fraction", c.train.reverse_kl_fraction);
  train.read("iterations", c.train.iterations);
  train.read("samples", c.train.samples);
  train.read("learning_rate", c.train.learning_rate);
  train.read("eps_learning_rate", c.train.eps_learning_rate);
  train.read("final_lr_fraction", c.train.final_lr_fraction);
  train.read("warmup_iterations", c.train.warmup_iterations);
  train.read("chunk_steps", c.train.chunk_steps);
  train.read("chunk_edges", c.train.chunk_edges);
  train.read("step_fraction", c.train.step_fraction);
  train.read("clip_norm", c.train.clip_norm);
  train.read("trim_fraction", c.train.trim_fraction);
  train.read("log_every", c.train.log_every);
  train.read("checkpoint_every", c.train.checkpoint_every);
  train.read("eval_samples", c.path_eval_samples);
  train.read("baseline", c.baseline);
  train.reject_unknown();

  c.anneal_configured = root.get("anneal") != nullptr;
  c.anneal.steps = c.julep.steps;
  Table anneal(root["anneal"].as_table(), "[anneal]", path);
  anneal.read("method", c.anneal.method);
  anneal.read("steps", c.anneal.steps);
  anneal.read("moves", c.anneal.moves);
  anneal.read("leapfrog", c.anneal.leapfrog);
  anneal.read("independence", c.anneal.independence);
  std::string anneal_path = "soft";
  anneal.read("path", anneal_path);
  try {
    c.anneal.geometric_path = anneal_path_is_geometric(anneal_path);
  } catch (const Error& e) {
    throw Error(path + ": [anneal] " + e.what());
  }
  anneal.read("schedule_power", c.anneal.schedule_power);
  anneal.read("step_size", c.anneal.step_size);
  anneal.read("target_acceptance", c.anneal.target_acceptance);
  anneal.read("max_step_size", c.anneal.max_step_size);
  anneal.read("pilot", c.anneal.pilot);
  anneal.read("resample_threshold", c.anneal.resample_threshold);
  anneal.read("chunk", c.anneal.chunk);
  anneal.reject_unknown();
  try {
    check_anneal_options(c.anneal);
  } catch (const Error& e) {
    throw Error(path + ": [anneal] " + e.what());
  }

  check(c.network.hidden >= 1 && c.network.layers >= 1 && c.network.rank >= 1 &&
            c.network.time_frequencies >= 0,
        path + ": [network] hidden, layers and rank must be >= 1");
  check(c.julep.steps >= 1 && c.julep.eps > 0, path + ": [julep] needs steps >= 1 and eps > 0");
  check(c.train.iterations >= 0 && c.train.samples >= 2 && c.train.chunk_steps >= 1 && c.train.chunk_edges >= 1,
        path + ": [train] needs iterations >= 0, samples >= 2, chunk_steps >= 1, chunk_edges >= 1");
  check(c.train.learning_rate > 0, path + ": [train] learning_rate must be positive");
  check(c.train.checkpoint_every >= 1, path + ": [train] checkpoint_every must be >= 1");
  check(c.train.eps_learning_rate >= 0,
        path + ": [train] eps_learning_rate must be >= 0 (0: the same as learning_rate)");
  check(c.train.step_fraction > 0 && c.train.step_fraction <= 1,
        path + ": [train] step_fraction must be in (0, 1]");
  check(c.train.trim_fraction >= 0 && c.train.trim_fraction < 0.5,
        path + ": [train] trim_fraction must be in [0, 0.5)");
  {
    const auto& names = julep_objectives();
    check(std::find(names.begin(), names.end(), c.train.objective) != names.end(),
          path + ": [train] objective '" + c.train.objective +
              "' is unknown; use log_variance, reverse_kl or reverse_kl+log_variance");
  }
  check(c.train.reverse_kl_fraction >= 0 && c.train.reverse_kl_fraction <= 1,
        path + ": [train] reverse_kl_fraction must be in [0, 1]");
  check(c.path_eval_samples >= 2, path + ": [train] eval_samples must be >= 2");
  check(c.prior.components >= 1, path + ": [prior] components must be >= 1");
  check(c.prior.family == "independent" || c.prior.family == "gaussian" || c.prior.family == "internal" ||
            c.prior.family == "isotropic",
        path + ": [prior] family must be \"independent\" (per-particle, the paper's), \"gaussian\" (correlated), "
               "\"internal\" (molecules: Gaussians in internal coordinates) or \"isotropic\" (the PIS/DDS baselines' "
               "isotropic Gaussian)");
  check(c.prior.family != "isotropic" || (c.prior.components == 1 && c.prior.init == "random"),
        path + ": [prior] family = \"isotropic\" is one Gaussian centred on the anchor; set components = 1 and "
               "leave init at \"random\"");
  check(std::isfinite(c.prior.scale) && c.prior.scale >= 0,
        path + ": [prior] scale must be >= 0 (0: radius / sqrt(dimension))");
  check(c.prior.init == "random" || c.prior.init == "reference" || c.prior.init == "minima" ||
            c.prior.init == "harmonic",
        path + ": [prior] init must be \"random\", \"reference\", \"minima\" or \"harmonic\"");
  check(c.prior.init != "harmonic" || c.prior.family == "gaussian" || c.prior.family == "internal",
        path + ": [prior] init = \"harmonic\" needs family = \"gaussian\" or \"internal\"");
  check(c.prior.family != "internal" || c.prior.init == "harmonic" || c.prior.init == "reference",
        path + ": [prior] family = \"internal\" needs init = \"harmonic\" or \"reference\"");
  check(c.prior.family == "independent" || c.prior.invariant,
        path + ": [prior] family = \"" + c.prior.family + "\" is always invariant; remove invariant = false");
  check(c.harmonic.starts_per_component >= 1 && c.harmonic.max_relabellings >= 0 &&
            c.harmonic.hessian_floor > 0 && c.harmonic.covariance_scale > 0 && c.harmonic.merge_tolerance > 0,
        path + ": [prior] needs starts_per_component >= 1, max_relabellings >= 0, and hessian_floor, "
               "covariance_scale, merge_tolerance > 0");
  check(c.prior.init_noise >= 0, path + ": [prior] init_noise must be >= 0");
  check(c.harmonic.rotor_sd >= 0 && std::isfinite(c.harmonic.rotor_sd),
        path + ": [prior] rotor_sd must be >= 0 (radians added along each methyl rotation)");
  check(c.harmonic.tail_weight >= 0 && c.harmonic.tail_weight < 1,
        path + ": [prior] tail_weight must be in [0, 1) (the weight of the wide copies; 0: none)");
  check(c.harmonic.tail_scale > 0 && std::isfinite(c.harmonic.tail_scale),
        path + ": [prior] tail_scale must be > 0 (the covariance factor of the wide copies)");
  check(c.harmonic.tail_weight == 0 || (c.prior.init == "harmonic" && c.prior.components % 2 == 0),
        path + ": [prior] tail_weight needs init = \"harmonic\" and an even number of components "
               "(half of them are the wide copies)");
  check(c.prior.kappa > 0 && c.prior.sigma > 0 && c.prior.radius_spread >= 0,
        path + ": [prior] kappa and sigma must be positive, radius_spread >= 0");
  check(c.mint.steps >= 0 && c.mint.samples >= 2, path + ": [mint] needs steps >= 0, samples >= 2");
  check(c.mint.learning_rate > 0, path + ": [mint] learning_rate must be positive");
  check(c.mint.beta_start > 0 && c.mint.beta_start <= 1, path + ": [mint] beta_start must be in (0, 1]");
  try {
    check_mint_objective(c.mint.objective);
  } catch (const Error& e) {
    throw Error(path + ": [mint] " + e.what());
  }
  check(c.mint.langevin_steps >= 1 && c.mint.langevin_refresh >= 0 && c.mint.langevin_refresh <= 1 &&
            c.mint.langevin_burn_in >= 0,
        path + ": [mint] langevin_steps must be >= 1, langevin_refresh in [0, 1], langevin_burn_in >= 0");
  check(c.mint.em_strength >= 0, path + ": [mint] em_strength must be >= 0");
  check(c.mint.em_split >= 0 && c.mint.em_split < 1,
        path + ": [mint] em_split must be in [0, 1) (a fraction of the largest component weight; 0: no splits)");
  check(c.mint.em_split == 0 || c.mint.objective == "em", path + ": [mint] em_split needs objective = \"em\"");
  check(c.mint.objective != "em" || c.prior.family == "internal",
        path + ": [mint] objective = \"em\" needs [prior] family = \"internal\" (molecules); use snis");
  check(c.eval_samples >= 2, path + ": [mint] eval_samples must be >= 2");
  check(c.mint.checkpoint_every >= 1, path + ": [mint] checkpoint_every must be >= 1");
  check(c.mint.select_every >= 0 && c.mint.select_samples >= 2,
        path + ": [mint] select_every must be >= 0 and select_samples >= 2");
  check(c.threads >= 0, path + ": threads must be >= 0 (0: one per core)");
  return c;
}

}  // namespace mintjulep
