// The library's model API: building from a built-in system name or a user-provided energy,
// sampling, and saving and loading run folders.
#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>
#include <mintjulep/model.hpp>
#include <mintjulep/systems.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

namespace mintjulep {
namespace {

namespace fs = std::filesystem;

RunConfig small_config() {
  RunConfig config;
  config.system = "dw4";
  config.seed = 3;
  config.prior.components = 4;
  config.network.hidden = 8;
  config.network.layers = 1;
  config.julep.steps = 4;
  config.anneal.steps = 4;
  config.anneal.pilot = 0;
  return config;
}

void expect_same_parameters(torch::nn::Module& a, torch::nn::Module& b) {
  auto pa = a.named_parameters(), pb = b.named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
}

TEST(Model, UserEnergyBuildsTheSameModelAsItsSystemName) {
  auto config = small_config();
  Model named = build_model(config, torch::kCPU, false, silent_log());
  Model user = build_model(make_system("dw4"), config, torch::kCPU, false, silent_log());
  EXPECT_EQ(user.system->name(), "dw4");
  expect_same_parameters(*named.prior, *user.prior);
  expect_same_parameters(*named.sampler, *user.sampler);
}

TEST(Model, SamplesCarryPositionsWeightsAndEnergies) {
  Model model = build_model(small_config(), torch::kCPU, false, silent_log());
  for (const std::string method : {"prior", "", "mala"}) {
    SamplingOptions options;
    options.method = method;
    options.count = 30;
    options.chunk = 16;
    Samples s = sample(model, options);
    EXPECT_EQ(s.positions.sizes(), (torch::IntArrayRef{30, 4, 2})) << method;
    EXPECT_EQ(s.log_w.numel(), 30) << method;
    EXPECT_EQ(s.energies.numel(), 30) << method;
    EXPECT_TRUE(std::isfinite(s.log_z)) << method;
    EXPECT_GT(s.ess, 0.0) << method;
    EXPECT_FALSE(s.smc);
  }
  SamplingOptions bad;
  bad.method = "hmc";
  EXPECT_THROW(sample(model, bad), Error);
}

TEST(Model, SavedRunLoadsBackWithAUserEnergy) {
  const auto folder = (fs::temp_directory_path() / "mintjulep_test_model_run").string();
  remove_tree(folder);
  auto config = small_config();
  Model model = build_model(config, torch::kCPU, false, silent_log());
  save_run(model, folder);
  config.seed = 4;  // a differently initialised model: the checkpoint must replace it
  Model loaded = load_run(folder, make_system("dw4"), config, torch::kCPU, true, silent_log());
  expect_same_parameters(*model.sampler, *loaded.sampler);
  EXPECT_THROW(load_run(folder + "-missing", torch::kCPU), Error);
  remove_tree(folder);
}

}  // namespace
}  // namespace mintjulep
