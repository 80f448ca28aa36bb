// The benchmark grid's settings: built-in budgets, the [bench] file, and the checks of
// plan_bench (the grid itself runs end to end in tests/cli/test_bench_command.sh).
#include <gtest/gtest.h>
#include <mintjulep/bench.hpp>
#include <mintjulep/error.hpp>
#include <mintjulep/systems.hpp>

#include <filesystem>
#include <functional>
#include <fstream>

namespace mintjulep {
namespace {

namespace fs = std::filesystem;

std::string configs_dir() { return (fs::path(data_dir()).parent_path() / "configs").string(); }

std::string write_file(const std::string& name, const std::string& text) {
  const auto folder = fs::temp_directory_path() / "mintjulep_test_bench";
  fs::create_directories(folder);
  const auto path = (folder / name).string();
  std::ofstream(path) << text;
  return path;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(BenchBudget, BuiltInBudgetsPerSystem) {
  const BenchBudget dw4 = builtin_budget("small", "dw4");
  EXPECT_EQ(dw4.samples.value(), 10000);
  EXPECT_EQ(dw4.steps.value(), 50);
  EXPECT_EQ(dw4.iterations.value(), 50);
  EXPECT_FALSE(dw4.mint_steps.has_value());
  const BenchBudget half = builtin_budget("small", "lj55-half");  // the same as lj55
  EXPECT_EQ(half.samples.value(), 1000);
  EXPECT_EQ(half.iterations.value(), 10);
  const BenchBudget paper = builtin_budget("paper", "lj13");
  EXPECT_EQ(paper.samples.value(), kPaperSamples);
  EXPECT_FALSE(paper.steps.has_value());  // the config's
  EXPECT_EQ(builtin_budget("paper", "dw4").iterations.value(), 200);
  EXPECT_EQ(paper.iterations.value(), 20);  // configs/lj13-julep.toml's
  EXPECT_EQ(builtin_budget("paper", "lj55-half").iterations.value(), 50);  // configs/lj55-julep.toml's
  EXPECT_NE(error_of([] { builtin_budget("large", "dw4"); }).find("unknown budget 'large'; use small"),
            std::string::npos);
}

TEST(BenchBudget, UpdateReplacesOnlyWhatIsSet) {
  BenchBudget b = builtin_budget("small", "dw4");
  BenchBudget other;
  other.samples = 7;
  b.update(other);
  EXPECT_EQ(b.samples.value(), 7);
  EXPECT_EQ(b.steps.value(), 50);
}

TEST(BenchFile, ReadsTheBenchSection) {
  const auto path = write_file("grid.toml", R"([bench]
systems = ["dw4", "lj13-half"]
methods = ["prior", "smc-julep"]
seeds = [4, 5]
budget = "paper"
samples = 300
keep_samples = false
kernel_samples = 40
[bench.dw4]
config = "sub/dw4.toml"
steps = 7
kernel_steps = 9
)");
  const BenchSettings s = load_bench_settings(path);
  EXPECT_EQ(s.systems, (std::vector<std::string>{"dw4", "lj13-half"}));
  EXPECT_EQ(s.methods, (std::vector<std::string>{"prior", "smc-julep"}));
  EXPECT_EQ(s.seeds, (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(s.budget, "paper");
  EXPECT_EQ(s.overrides.samples.value(), 300);
  EXPECT_FALSE(s.keep_samples);
  ASSERT_EQ(s.per_system.count("dw4"), 1u);
  // Paths are relative to the bench file.
  EXPECT_EQ(s.per_system.at("dw4").config, (fs::path(path).parent_path() / "sub/dw4.toml").string());
  EXPECT_EQ(s.per_system.at("dw4").budget.steps.value(), 7);
  EXPECT_EQ(s.per_system.at("dw4").budget.kernel_steps.value(), 9);
  EXPECT_EQ(s.overrides.kernel_samples.value(), 40);
}

TEST(BenchFile, BadKeysAreOneLineErrors) {
  EXPECT_NE(error_of([] { load_bench_settings(write_file("a.toml", "[bench]\nseed = [0]\n")); })
                .find("unknown key 'seed' in [bench]"),
            std::string::npos);
  EXPECT_NE(error_of([] { load_bench_settings(write_file("b.toml", "[bench]\nseeds = 3\n")); })
                .find("'seeds' in [bench] must be a list of integers"),
            std::string::npos);
  EXPECT_NE(error_of([] { load_bench_settings(write_file("c.toml", "[bench.dw4]\nsample = 3\n")); })
                .find("unknown key 'sample' in [bench.dw4]"),
            std::string::npos);
  EXPECT_NE(error_of([] { load_bench_settings(write_file("d.toml", "[grid]\n")); }).find("unknown key 'grid'"),
            std::string::npos);
}

TEST(BenchPlan, ResolvesConfigsBudgetsAndReferences) {
  BenchSettings s;
  s.configs = configs_dir();
  s.systems = {"dw4", "lj13-half"};
  s.methods = {"ais-mala"};
  s.command_line.samples = 50;
  const BenchPlan plan = plan_bench(s);
  ASSERT_EQ(plan.systems.size(), 2u);
  EXPECT_EQ(plan.seeds, (std::vector<int64_t>{0, 1, 2}));
  const BenchSystem& dw4 = plan.systems[0];
  EXPECT_EQ(fs::path(dw4.config).filename(), "dw4.toml");
  EXPECT_EQ(dw4.budget.samples.value(), 50);
  EXPECT_EQ(dw4.budget.kernel_samples.value(), 50);  // kernel cells default to samples
  EXPECT_FALSE(dw4.budget.kernel_steps.has_value());
  EXPECT_TRUE(dw4.reduced);
  EXPECT_EQ(fs::path(dw4.reference).filename(), "dw4-reference.npz");
  EXPECT_EQ(dw4.reference_positions.size(0), dw4.reference_energies.size(0));
  const BenchSystem& half = plan.systems[1];
  EXPECT_EQ(fs::path(half.config).filename(), "lj13-half.toml");  // its own config
  EXPECT_EQ(fs::path(half.reference).filename(), "lj13-half-reference.npz");  // data/'s md reference
  EXPECT_EQ(half.reference_positions.size(0), half.reference_energies.size(0));
  EXPECT_EQ(half.budget.iterations.value(), 20);
  EXPECT_EQ(half.budget.mint_steps.value(), 0);  // configs/lj13-half.toml's untrained Gaussian
  // Without a config of its own, a -half system takes the full system's: a configs folder
  // that holds lj55.toml alone.
  const auto only_full = fs::temp_directory_path() / "mintjulep_test_bench_configs";
  fs::create_directories(only_full);
  fs::copy_file(fs::path(configs_dir()) / "lj55.toml", only_full / "lj55.toml", fs::copy_options::overwrite_existing);
  s.configs = only_full.string();
  s.systems = {"lj55-half"};
  const BenchPlan lj55 = plan_bench(s);
  EXPECT_EQ(fs::path(lj55.systems[0].config).filename(), "lj55.toml");
}

// The shipped Table 1 grid stays a valid bench file: its per-system budgets reach the plan, and
// the kernel cells of every system get their own sample count.
TEST(BenchPlan, TheTableOneGridResolves) {
  const BenchSettings s = load_bench_settings((fs::path(configs_dir()) / "table1.toml").string());
  const BenchPlan plan = plan_bench(s);
  ASSERT_EQ(plan.systems.size(), 5u);
  EXPECT_EQ(plan.methods, (std::vector<std::string>{"prior", "ais-mala", "julep", "dds", "pis"}));
  EXPECT_EQ(plan.seeds, (std::vector<int64_t>{0, 1, 2}));
  for (const auto& system : plan.systems) {
    EXPECT_TRUE(system.reduced) << system.name;
    EXPECT_GT(system.budget.kernel_samples.value(), 0) << system.name;
    EXPECT_GE(system.budget.iterations.value(), 1) << system.name;  // the kernels are trained
    EXPECT_EQ(fs::path(system.config).filename(), system.name + ".toml");
  }
  EXPECT_EQ(plan.systems[2].name, "lj55-half");
  EXPECT_EQ(plan.systems[2].budget.kernel_steps.value(), 20);
  EXPECT_EQ(plan.systems[2].budget.steps.value(), 10000);  // MALA-AIS at the config's T
  EXPECT_EQ(plan.systems[0].name, "dw4");
  EXPECT_EQ(plan.systems[0].budget.steps.value(), 50);
  EXPECT_EQ(plan.systems[0].budget.kernel_steps.value(), 100);
}

TEST(BenchPlan, BadGridsAreOneLineErrors) {
  BenchSettings s;
  s.configs = configs_dir();
  s.systems = {"dw4"};
  s.methods = {"mala"};
  EXPECT_NE(error_of([&] { plan_bench(s); }).find("unknown bench method 'mala'; use prior, ais-ula"),
            std::string::npos);
  s.methods = {};
  s.systems = {"lj14"};
  EXPECT_NE(error_of([&] { plan_bench(s); }).find("unknown system 'lj14'"), std::string::npos);
  s.systems = {"dw4"};
  s.seeds = {2, 2};
  EXPECT_NE(error_of([&] { plan_bench(s); }).find("bench seed 2 is listed twice"), std::string::npos);
  s.seeds = {};
  s.per_system["dw4"].reference = "missing.npz";
  EXPECT_NE(error_of([&] { plan_bench(s); }).find("reference 'missing.npz' for bench system dw4 not found"),
            std::string::npos);
}

}  // namespace
}  // namespace mintjulep
