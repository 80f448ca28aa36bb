// Run configuration files: defaults, every key, and clear errors for bad input.
#include <mintjulep/bench.hpp>
#include <mintjulep/config.hpp>
#include <mintjulep/error.hpp>
#include <mintjulep/systems.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace mintjulep {
namespace {

namespace fs = std::filesystem;

std::string write_config(const std::string& name, const std::string& text) {
  const auto path = fs::temp_directory_path() / ("mintjulep_config_" + name + ".toml");
  std::ofstream(path) << text;
  return path.string();
}

std::string error_of(const std::string& path) {
  try {
    load_config(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Config, ReadsEveryKey) {
  auto c = load_config(write_config("full", R"(
system = "lj13"
anchor = 3
frame = [1, 2]
seed = 7
device = "cpu"
threads = 2
[prior]
components = 5
invariant = false
kappa = 3.5
radius = 1.2
radius_spread = 0.1
sigma = 0.4
[mint]
steps = 11
samples = 12
learning_rate = 0.5
final_lr_fraction = 0.2
repulsion = 0.3
beta_start = 0.25
warmup_steps = 4
log_every = 2
objective = "reverse_kl"
eval_samples = 99
)"));
  EXPECT_EQ(c.system, "lj13");
  EXPECT_EQ(c.anchor, 3);
  EXPECT_EQ(c.frame[1], 2);
  EXPECT_EQ(c.seed, 7u);
  EXPECT_EQ(c.threads, 2);
  EXPECT_EQ(c.prior.components, 5);
  EXPECT_FALSE(c.prior.invariant);
  EXPECT_DOUBLE_EQ(c.prior.kappa, 3.5);
  EXPECT_DOUBLE_EQ(c.prior.radius, 1.2);
  EXPECT_DOUBLE_EQ(c.prior.radius_spread, 0.1);
  EXPECT_DOUBLE_EQ(c.prior.sigma, 0.4);
  EXPECT_EQ(c.mint.steps, 11);
  EXPECT_EQ(c.mint.samples, 12);
  EXPECT_DOUBLE_EQ(c.mint.learning_rate, 0.5);
  EXPECT_DOUBLE_EQ(c.mint.final_lr_fraction, 0.2);
  EXPECT_DOUBLE_EQ(c.mint.repulsion, 0.3);
  EXPECT_DOUBLE_EQ(c.mint.beta_start, 0.25);
  EXPECT_EQ(c.mint.warmup_steps, 4);
  EXPECT_EQ(c.mint.log_every, 2);
  EXPECT_EQ(c.mint.objective, "reverse_kl");
  EXPECT_EQ(c.eval_samples, 99);
}

TEST(Config, DefaultsNeedOnlyTheSystem) {
  auto c = load_config(write_config("minimal", "system = \"dw4\"\n"));
  EXPECT_EQ(c.anchor, -1);
  EXPECT_TRUE(c.prior.invariant);
  EXPECT_EQ(c.prior.radius, 0.0);  // resolved to the system's length scale at run time
  EXPECT_EQ(c.mint.objective, "snis");
}

TEST(Config, ReadsTheAnnealSection) {
  auto c = load_config(write_config("anneal", R"(
system = "dw4"
[julep]
steps = 40
[anneal]
method = "smc-mala"
moves = 3
independence = 2
path = "geometric"
step_size = 0.02
target_acceptance = 0.6
max_step_size = 0.1
pilot = 0
resample_threshold = 0.3
chunk = 2000
)"));
  EXPECT_TRUE(c.anneal_configured);
  EXPECT_EQ(c.anneal.method, "smc-mala");
  EXPECT_EQ(c.anneal.steps, 40);  // [julep] steps unless given
  EXPECT_EQ(c.anneal.moves, 3);
  EXPECT_EQ(c.anneal.independence, 2);
  EXPECT_TRUE(c.anneal.geometric_path);
  EXPECT_DOUBLE_EQ(c.anneal.step_size, 0.02);
  EXPECT_DOUBLE_EQ(c.anneal.target_acceptance, 0.6);
  EXPECT_DOUBLE_EQ(c.anneal.max_step_size, 0.1);
  EXPECT_EQ(c.anneal.pilot, 0);
  EXPECT_DOUBLE_EQ(c.anneal.resample_threshold, 0.3);
  EXPECT_EQ(c.anneal.chunk, 2000);
  auto plain = load_config(write_config("no_anneal", "system = \"dw4\"\n"));
  EXPECT_FALSE(plain.anneal_configured);
  EXPECT_FALSE(plain.anneal.geometric_path);
  EXPECT_EQ(plain.anneal.independence, 0);
}

TEST(Config, BadFilesAreOneLineErrorsNamingTheKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"system = \"dw4\"\nsteps = 3\n", "unknown key 'steps'"},
      {"system = \"dw4\"\n[prior]\ncomponent = 3\n", "unknown key 'component' in [prior]"},
      {"system = \"dw4\"\n[mint]\nsteps = \"many\"\n", "'steps' in [mint] must be an integer"},
      {"system = \"dw4\"\n[mint]\nsteps = 2.5\n", "'steps' in [mint] must be an integer"},
      {"system = \"dw4\"\n[prior]\nkappa = -1.0\n", "kappa and sigma must be positive"},
      {"[prior]\ncomponents = 3\n", "'system' is missing"},
      {"system = \"dw4\"\nframe = [1]\n", "list of two particle indices"},
      {"system = \"dw4\"\n[mint]\nobjective = \"fast\"\n", "objective must be"},
      {"system = \"dw4\"\n[mint]\nobjective = \"em\"\n", "needs [prior] family = \"internal\""},
      {"system = \"dw4\"\n[mint]\nobjective = \"em+snis\"\n", "or em alone"},
      {"system = \"dw4\"\n[mint]\nem_strength = -1.0\n", "em_strength must be >= 0"},
      {"system = \"dw4\"\n[mint]\nem_split = 1.0\n", "em_split must be in [0, 1)"},
      {"system = \"dw4\"\n[mint]\nem_split = 0.001\n", "em_split needs objective = \"em\""},
      {"system = \"dw4\"\nprior = 3\n", "must be a table"},
      {"system = = \"dw4\"\n", "invalid TOML"},
      {"system = \"dw4\"\n[anneal]\nmethod = \"hmc\"\n", "[anneal] annealing method 'hmc' is unknown"},
      {"system = \"dw4\"\n[anneal]\nresample_threshold = 2.0\n", "resample_threshold must be in [0, 1]"},
      {"system = \"dw4\"\n[anneal]\ntarget_acceptance = 1.0\n", "target_acceptance must be in (0, 1)"},
      {"system = \"dw4\"\n[anneal]\nstep = 3\n", "unknown key 'step' in [anneal]"},
      {"system = \"dw4\"\n[anneal]\npath = \"straight\"\n", "[anneal] annealing path 'straight' is unknown; use \"soft\""},
      {"system = \"dw4\"\n[anneal]\nindependence = -2\n", "independence moves per temperature must be >= 0"},
      {"system = \"dw4\"\n[prior]\nfamily = \"pairs\"\n", "[prior] family must be"},
      {"system = \"dw4\"\n[prior]\ninit = \"harmonic\"\n", "init = \"harmonic\" needs family"},
      {"system = \"dw4\"\n[prior]\nfamily = \"isotropic\"\n", "family = \"isotropic\" is one Gaussian centred on the anchor; set components = 1"},
      {"system = \"dw4\"\n[prior]\nfamily = \"isotropic\"\ncomponents = 1\nscale = -1.0\n", "[prior] scale must be >= 0"},
      {"system = \"dw4\"\n[prior]\nfamily = \"gaussian\"\nhessian_floor = 0.0\n", "hessian_floor"},
      {"system = \"dw4\"\n[mint]\nselect_every = -1\n", "select_every must be >= 0"},
      {"system = \"dw4\"\n[prior]\nfamily = \"gaussian\"\ninit = \"harmonic\"\ntail_weight = 1.0\n", "tail_weight must be in [0, 1)"},
      {"system = \"dw4\"\n[prior]\nfamily = \"gaussian\"\ninit = \"harmonic\"\ncomponents = 5\ntail_weight = 0.2\n", "an even number of components"},
      {"system = \"dw4\"\n[mint]\ncheckpoint_every = 0\n", "[mint] checkpoint_every must be >= 1"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string message = error_of(write_config("bad" + std::to_string(i), cases[i].first));
    EXPECT_NE(message.find(cases[i].second), std::string::npos) << "got: " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
  EXPECT_NE(error_of("/nonexistent/config.toml").find("/nonexistent/config.toml"), std::string::npos);
}

// Inputs from the fuzz harnesses (fuzz/): non-finite numbers, integers that do not fit the
// key, and control characters in strings or keys, which would end up in one-line messages.
TEST(Config, OutOfRangeNumbersAndControlCharactersAreErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"system = \"dw4\"\n[prior]\nradius = nan\n", "'radius' in [prior] must be a finite number"},
      {"system = \"dw4\"\n[prior]\npath_softening = inf\n", "'path_softening' in [prior] must be a finite number"},
      {"system = \"dw4\"\ntemperature = -inf\n", "'temperature' in the top level must be a finite number"},
      {"system = \"dw4\"\nthreads = 4294967297\n", "'threads' in the top level must be an integer in ["},
      {"system = \"dw4\"\nseed = -1\n", "'seed' in the top level must be a non-negative integer"},
      {"system = \"dw4\"\nthreads = 4E77\n", "'threads' in the top level must be an integer"},  // fuzz_config
      {"system = \"dw4\\nlj13\"\n", "'system' in the top level must be a one-line string"},
      {"system = \"dw4\"\n[mint]\nobjective = \"snis\\r\"\n", "'objective' in [mint] must be a one-line string"},
      {"system = \"dw4\"\n\"a\\nb\" = 1\n", "unknown key 'a\\nb'"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string message = error_of(write_config("range" + std::to_string(i), cases[i].first));
    EXPECT_NE(message.find(cases[i].second), std::string::npos) << "got: " << message;
    for (char c : message) EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20) << message;
  }
  // Non-ASCII text outside comments and one-line strings would reach toml++ 3.3's Unicode
  // whitespace test, which has undefined behaviour for some characters.
  for (const std::string text : {"\xef\xbb\xbdtei \n= 1\n", "system = \"dw4\"\n\xc2\xa7 = 1\n",
                                 "system = \"\"\"\\\n\xc2\xa7\"\"\"\n",
                                 // a quote inside a malformed bare value opens no string (found by fuzz_config)
                                 "system = \"5dw4\"\nthreads = 429le@@@\"0\xd0\xb6" "0rge = 0"}) {
    const std::string message = error_of(write_config("unicode", text));
    EXPECT_NE(message.find("non-ASCII character outside a comment"), std::string::npos) << message;
  }
  const RunConfig c = load_config(
      write_config("comment", "# \xc2\xa7 3b\nsystem = \"openmm:caf\xc3\xa9.xml:x.pdb\" # \xc2\xa7\n"));
  EXPECT_EQ(c.system, "openmm:caf\xc3\xa9.xml:x.pdb");

  const std::string message = error_of(write_config("control", "system = \"dw4\"\x01\n"));
  EXPECT_NE(message.find("invalid TOML"), std::string::npos) << message;
  for (char c : message) EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20) << message;
}

TEST(Config, EveryShippedConfigLoads) {
  const auto folder = std::filesystem::path(data_dir()).parent_path() / "configs";
  if (!std::filesystem::is_directory(folder)) GTEST_SKIP() << "no configs folder next to " << data_dir();
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    if (entry.path().extension() != ".toml") continue;
    SCOPED_TRACE(entry.path().string());
    std::ifstream file(entry.path());
    const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    if (text.rfind("[bench]", 0) == 0 || text.find("\n[bench]") != std::string::npos) {
      EXPECT_NO_THROW(load_bench_settings(entry.path().string()));  // a grid for `mintjulep bench`
      continue;
    }
    EXPECT_NO_THROW(load_config(entry.path().string()));
    ++count;
  }
  EXPECT_GE(count, 7);
}

}  // namespace
}  // namespace mintjulep
