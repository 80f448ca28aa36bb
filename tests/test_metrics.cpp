// Sample-quality metrics: 1D Wasserstein distances (closed forms, exact small cases, weights
// against repeated samples), the interatomic-distance W2 and its invariances, the integrated
// autocorrelation time of an AR(1) series, and the standard error of log Z.
#include <mintjulep/energy.hpp>
#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>
#include <mintjulep/metrics.hpp>
#include <mintjulep/systems.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include "test_helpers.hpp"

namespace mintjulep {
namespace {

torch::Tensor t(std::initializer_list<double> values) {
  return torch::tensor(std::vector<double>(values), torch::kFloat64);
}

TEST(Wasserstein, HandComputedExamples) {
  // Equal weights: the sorted samples are paired, 0 <-> 0.5 and 1 <-> 3.
  EXPECT_DOUBLE_EQ(wasserstein_1d(t({1, 0}), {}, t({3, 0.5}), {}, 1), 0.5 * 0.5 + 0.5 * 2.0);
  EXPECT_DOUBLE_EQ(wasserstein_1d(t({1, 0}), {}, t({3, 0.5}), {}, 2), std::sqrt(0.5 * 0.25 + 0.5 * 4.0));
  // All of a's mass (1/4 at 0, 3/4 at 2) moves to 1: W1 = W2 = 1.
  EXPECT_DOUBLE_EQ(wasserstein_1d(t({0, 2}), t({1, 3}), t({1}), {}, 1), 1.0);
  EXPECT_DOUBLE_EQ(wasserstein_1d(t({0, 2}), t({1, 3}), t({1}), {}, 2), 1.0);
  // a = 1/2 at 0, 1/4 at 1, 1/4 at 2 against b = 1/2 at 0, 1/2 at 2: only the quarter at 1
  // moves, by 1. W1 = 1/4, W2 = sqrt(1/4) = 1/2. Weights need not be normalised.
  EXPECT_DOUBLE_EQ(wasserstein_1d(t({2, 0, 1}), t({1, 2, 1}), t({0, 2}), {}, 1), 0.25);
  EXPECT_DOUBLE_EQ(wasserstein_1d(t({2, 0, 1}), t({1, 2, 1}), t({0, 2}), {}, 2), 0.5);
  // A shift by c moves everything by c: W_p = |c| for every p.
  EXPECT_DOUBLE_EQ(wasserstein_1d(t({0, 1, 5}), {}, t({2.5, 3.5, 7.5}), {}, 1), 2.5);
  EXPECT_NEAR(wasserstein_1d(t({0, 1, 5}), {}, t({2.5, 3.5, 7.5}), {}, 3), 2.5, 1e-14);
  // Zero-weight points take no part.
  EXPECT_DOUBLE_EQ(wasserstein_1d(t({0, 100}), t({1, 0}), t({0}), {}, 2), 0.0);
}

TEST(Wasserstein, IdenticalSamplesAreExactlyZero) {
  torch::manual_seed(1);
  auto a = torch::randn({5000}, torch::kFloat64);
  auto w = torch::rand({5000}, torch::kFloat64);
  EXPECT_EQ(wasserstein_1d(a, {}, a, {}, 1), 0.0);
  EXPECT_EQ(wasserstein_1d(a, {}, a.flip(0), {}, 2), 0.0);  // order does not matter
  EXPECT_EQ(wasserstein_1d(a, w, a, w, 2), 0.0);
  // Rescaled weights give the same levels up to rounding: zero up to the square root of it.
  EXPECT_NEAR(wasserstein_1d(a, w, a, 3.7 * w, 2), 0.0, 1e-6);
}

TEST(Wasserstein, IntegerWeightsEqualRepeatedSamples) {
  torch::manual_seed(2);
  auto a = torch::randn({300}, torch::kFloat64);
  auto counts = torch::randint(0, 5, {300}, torch::kLong);  // zeros included
  auto repeated = a.repeat_interleave(counts);
  auto b = 0.3 + 1.5 * torch::randn({700}, torch::kFloat64);
  for (double p : {1.0, 2.0}) {
    EXPECT_EQ(wasserstein_1d(a, counts.to(torch::kFloat64), b, {}, p), wasserstein_1d(repeated, {}, b, {}, p))
        << "p = " << p;
    EXPECT_EQ(wasserstein_1d(b, {}, a, counts.to(torch::kFloat64), p), wasserstein_1d(b, {}, repeated, {}, p))
        << "p = " << p;
  }
}

TEST(Wasserstein, GaussianW2MatchesTheClosedForm) {
  // W2(N(m1, s1^2), N(m2, s2^2)) = sqrt((m1 - m2)^2 + (s1 - s2)^2). The empirical W2^2 of n
  // samples each differs from it by O(1/sqrt(n)) noise in the mean and sd (se of a sample mean
  // s/sqrt(n), of a sample sd s/sqrt(2n)) plus an O(log n / n) term from the quantile noise;
  // the tolerance below is 5 of those standard errors, propagated to W2.
  const double m1 = 0.5, s1 = 1.0, m2 = -0.25, s2 = 2.0;
  const int64_t n = 1000000;
  torch::manual_seed(3);
  auto a = m1 + s1 * torch::randn({n}, torch::kFloat64);
  auto b = m2 + s2 * torch::randn({n}, torch::kFloat64);
  const double exact = std::sqrt((m1 - m2) * (m1 - m2) + (s1 - s2) * (s1 - s2));
  const double se_mean = std::sqrt((s1 * s1 + s2 * s2) / n);
  const double se_sd = std::sqrt((s1 * s1 + s2 * s2) / (2.0 * n));
  // d W2 = ((m1 - m2) d(m1 - m2) + (s1 - s2) d(s1 - s2)) / W2, plus the quantile-noise term
  // (s1^2 + s2^2) log(n) / n / (2 W2) in W2^2.
  const double se = (std::abs(m1 - m2) * se_mean + std::abs(s1 - s2) * se_sd) / exact;
  const double quantile_noise = (s1 * s1 + s2 * s2) * std::log(static_cast<double>(n)) / n / (2 * exact);
  const double w2 = wasserstein_1d(a, {}, b, {}, 2);
  EXPECT_NEAR(w2, exact, 5 * se + quantile_noise) << "se " << se;
  EXPECT_LT(5 * se + quantile_noise, 0.02 * exact);  // the check has power
  // The same with weights: a drawn from N(0, 1) and weighted to N(m1, s1^2) is not needed;
  // weighting half the samples by 2 and dropping the other half (weight 0) is the same law.
  auto w = (torch::arange(n) % 2 == 0).to(torch::kFloat64) * 2;
  EXPECT_NEAR(wasserstein_1d(a, w, b, {}, 2), exact, 5 * std::sqrt(2.0) * se + 2 * quantile_noise);
}

TEST(Wasserstein, RejectsBadWeights) {
  EXPECT_THROW(wasserstein_1d(t({0, 1}), t({0, 0}), t({1}), {}, 2), Error);
  EXPECT_THROW(wasserstein_1d(t({0, 1}), t({-1, 2}), t({1}), {}, 2), Error);
  EXPECT_THROW(wasserstein_1d(t({0, 1}), t({1}), t({1}), {}, 2), Error);
  EXPECT_THROW(wasserstein_1d(t({0, 1}), {}, t({1}), {}, 0.5), Error);
}

TEST(DistanceW2, PairDistances) {
  auto x = torch::tensor({0.0, 0.0, 3.0, 0.0, 3.0, 4.0}, torch::kFloat64).reshape({1, 3, 2});
  auto d = pairwise_distances(x);
  ASSERT_EQ(d.sizes(), (std::vector<int64_t>{1, 3}));
  EXPECT_DOUBLE_EQ(d[0][0].item<double>(), 3.0);  // (0, 1)
  EXPECT_DOUBLE_EQ(d[0][1].item<double>(), 5.0);  // (0, 2)
  EXPECT_DOUBLE_EQ(d[0][2].item<double>(), 4.0);  // (1, 2)
}

TEST(DistanceW2, InvariantUnderRotationTranslationAndPermutation) {
  auto x = testing::lattice_configurations(200, 13, 3, 1.1, 0.3, 4);
  auto y = testing::lattice_configurations(300, 13, 3, 1.1, 0.35, 5);
  torch::manual_seed(6);
  auto wx = torch::rand({200}, torch::kFloat64);
  const double base = distance_wasserstein2(x, wx, y, {});
  ASSERT_GT(base, 1e-3);
  // Each configuration gets its own rotation (or reflection), translation and relabelling.
  auto moved = x.clone();
  for (int64_t b = 0; b < x.size(0); ++b) {
    auto q = testing::random_orthogonal(3, b % 2 == 1, 100 + static_cast<uint64_t>(b));
    auto perm = torch::randperm(13, torch::kLong);
    auto shift = torch::randn({1, 3}, torch::kFloat64) * 10;
    moved[b].copy_(x[b].index_select(0, perm).matmul(q.t()) + shift);
  }
  EXPECT_NEAR(distance_wasserstein2(moved, wx, y, {}), base, 1e-9 * base);
  // The order of the configurations (with their weights) does not matter either.
  auto order = torch::randperm(200, torch::kLong);
  EXPECT_NEAR(distance_wasserstein2(x.index_select(0, order), wx.index_select(0, order), y, {}), base, 1e-12 * base);
  EXPECT_EQ(distance_wasserstein2(x, wx, x, wx), 0.0);
}

TEST(DistanceW2, WeightsSpreadOverAConfigurationsPairs) {
  // Two configurations of 3 particles in 1D; weights 1 and 3 equal repeating the second 3 times.
  auto x = torch::tensor({0.0, 1.0, 3.0, 0.0, 2.0, 2.5}, torch::kFloat64).reshape({2, 3, 1});
  auto repeated = torch::cat({x.narrow(0, 0, 1), x.narrow(0, 1, 1).expand({3, 3, 1})});
  auto y = torch::tensor({0.0, 1.5, 2.0}, torch::kFloat64).reshape({1, 3, 1});
  EXPECT_EQ(distance_wasserstein2(x, t({1, 3}), y, {}), distance_wasserstein2(repeated, {}, y, {}));
}

// x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t, stationary start: tau = (1 + rho) / (1 - rho).
torch::Tensor ar1(int64_t frames, int64_t replicas, double rho, uint64_t seed) {
  torch::manual_seed(seed);
  auto noise = torch::randn({frames, replicas}, torch::kFloat64);
  auto out = torch::empty({frames, replicas}, torch::kFloat64);
  auto e = noise.accessor<double, 2>();
  auto o = out.accessor<double, 2>();
  const double s = std::sqrt(1 - rho * rho);
  for (int64_t r = 0; r < replicas; ++r) {
    o[0][r] = e[0][r];
    for (int64_t f = 1; f < frames; ++f) o[f][r] = rho * o[f - 1][r] + s * e[f][r];
  }
  return out;
}

TEST(Autocorrelation, Ar1MatchesTheClosedForm) {
  for (double rho : {0.0, 0.5, 0.9}) {
    const double exact = (1 + rho) / (1 - rho);
    const auto ac = autocorrelation(ar1(20000, 32, rho, 7), 5.0);
    EXPECT_TRUE(ac.long_enough);
    EXPECT_EQ(ac.frames, 20000);
    EXPECT_EQ(ac.replicas, 32);
    // Sokal's standard error; the window's truncation bias (rho^M / (1 - rho)) and the bias of
    // each replica's own mean (O(tau / F)) are far below it here.
    EXPECT_NEAR(ac.tau, exact, 4 * ac.tau_se) << "rho " << rho << ", se " << ac.tau_se;
    EXPECT_LT(ac.tau_se, 0.03 * exact);
    EXPECT_DOUBLE_EQ(ac.ess, 20000.0 * 32 / ac.tau);
    EXPECT_DOUBLE_EQ(ac.ess_per_replica, 20000.0 / ac.tau);
    ASSERT_EQ(ac.tau_per_replica.size(0), 32);
    // Each replica alone has 32 times the variance: the mean of the 32 estimates is about as
    // precise as the pooled one.
    const double per_replica = ac.tau_per_replica.mean().item<double>();
    EXPECT_NEAR(per_replica, exact, 5 * ac.tau_se) << "rho " << rho;
  }
}

TEST(Autocorrelation, ShortSeriesAndBadInput) {
  // 400 frames of a series with tau = 199: each replica's own mean hides most of the
  // correlation, and the estimate is flagged as too short (fewer than 50 tau frames).
  const auto ac = autocorrelation(ar1(400, 4, 0.99, 8));
  EXPECT_FALSE(ac.long_enough);
  EXPECT_LT(ac.tau, 199.0);
  EXPECT_THROW(autocorrelation(torch::ones({100, 2}, torch::kFloat64)), Error);
  EXPECT_THROW(autocorrelation(torch::zeros({1, 2}, torch::kFloat64)), Error);
  // A one-dimensional series is one replica.
  EXPECT_EQ(autocorrelation(ar1(1000, 1, 0.5, 9).squeeze(1)).replicas, 1);
}

TEST(WeightSummary, LogZStandardErrorMatchesTheSpreadOfRepeatedDraws) {
  // Log-normal weights w = exp(sigma z - sigma^2 / 2): Z = 1, and the delta method gives
  // sd(log Z_hat) = sqrt((e^{sigma^2} - 1) / S).
  const double sigma = 0.5;
  const int64_t s = 2000, repeats = 400;
  torch::manual_seed(10);
  auto log_w = sigma * torch::randn({repeats, s}, torch::kFloat64) - sigma * sigma / 2;
  std::vector<double> log_z, se;
  for (int64_t r = 0; r < repeats; ++r) {
    const auto summary = summarize_weights(log_w[r]);
    log_z.push_back(summary.log_z);
    se.push_back(summary.log_z_se);
  }
  auto lz = torch::tensor(log_z, torch::kFloat64), ses = torch::tensor(se, torch::kFloat64);
  const double closed = std::sqrt((std::exp(sigma * sigma) - 1) / s);
  // The spread over repeats estimates sd(log Z_hat) with relative se 1/sqrt(2 (repeats - 1));
  // the mean reported se is much more precise.
  const double rel = 1 / std::sqrt(2.0 * (repeats - 1));
  EXPECT_NEAR(lz.std().item<double>(), closed, 4 * rel * closed);
  EXPECT_NEAR(ses.mean().item<double>(), closed, 0.02 * closed);
  EXPECT_NEAR(lz.mean().item<double>(), 0.0, 4 * closed / std::sqrt(static_cast<double>(repeats)) + closed * closed);
}

TEST(WeightSummary, NonFiniteLogWeightsCountAsZero) {
  const double inf = std::numeric_limits<double>::infinity();
  const auto s = summarize_weights(t({0.0, std::log(3.0), -inf, std::nan(""), inf}));
  EXPECT_EQ(s.num_samples, 5);
  EXPECT_EQ(s.num_zero, 3);
  // w = (1, 3, 0, 0, 0): ESS = 16 / (5 * 10), log Z = log(4 / 5).
  EXPECT_NEAR(s.ess, 16.0 / 50.0, 1e-15);
  EXPECT_NEAR(s.effective_count, 1.6, 1e-14);
  EXPECT_NEAR(s.log_z, std::log(0.8), 1e-15);
  // sd(w) with divisor 4: mean 0.8, sum (w - 0.8)^2 = 0.04 + 4.84 + 3 * 0.64 = 6.8.
  EXPECT_NEAR(s.log_z_se, std::sqrt(6.8 / 4) / (std::sqrt(5.0) * 0.8), 1e-14);
  EXPECT_THROW(summarize_weights(t({-inf, std::nan("")})), Error);
  EXPECT_THROW(normalized_weights(t({-inf})), Error);
  auto w = normalized_weights(t({0.0, std::log(3.0), inf}));
  EXPECT_NEAR(w[0].item<double>(), 0.25, 1e-15);
  EXPECT_EQ(w[2].item<double>(), 0.0);
}

TEST(WeightSummary, SmcStandardErrorComesFromThePopulations) {
  // Four populations of two with Z_i = 1, 2, 3, 6 and a trailing partial one (left out):
  // mean 3, sd (divisor 3) sqrt(14 / 3), se = sd / (sqrt(4) 3).
  const double inf = std::numeric_limits<double>::infinity();
  auto log_w = t({1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 2.0, 10.0, 100.0}).log();
  EXPECT_NEAR(population_log_z_se(log_w, 2), std::sqrt(14.0 / 3.0) / (2.0 * 3.0), 1e-14);
  // Shifting every log w leaves it unchanged; a zero weight is a zero, not a NaN.
  EXPECT_NEAR(population_log_z_se(log_w + 700.0, 2), std::sqrt(14.0 / 3.0) / 6.0, 1e-12);
  auto with_zero = t({0.0, 0.0, std::log(4.0), -inf});  // Z = 1, 2
  EXPECT_NEAR(population_log_z_se(with_zero, 2), std::sqrt(0.5) / (std::sqrt(2.0) * 1.5), 1e-14);
  EXPECT_TRUE(std::isnan(population_log_z_se(log_w, 5)));  // one full population
  EXPECT_THROW(population_log_z_se(log_w, 0), Error);
}

TEST(CompareSamples, WeightedSamplesAgainstAReference) {
  auto ref = testing::lattice_configurations(400, 4, 2, 3.0, 0.5, 11);
  auto ref_u = torch::randn({400}, torch::kFloat64);
  // The reference itself, equally weighted, with one extra sample of weight 0: distances 0.
  auto x = torch::cat({ref, torch::zeros({1, 4, 2}, torch::kFloat64)});
  auto u = torch::cat({ref_u, t({std::nan("")})});
  auto log_w = torch::cat({torch::zeros({400}, torch::kFloat64), t({-std::numeric_limits<double>::infinity()})});
  const auto m = compare_samples(x, log_w, u, ref, ref_u);
  EXPECT_EQ(m.weights.num_zero, 1);
  EXPECT_EQ(m.energy_w1, 0.0);
  EXPECT_EQ(m.energy_w2, 0.0);
  EXPECT_EQ(m.distance_w2, 0.0);
  EXPECT_NEAR(m.weights.ess, 400.0 / 401.0, 1e-14);
  // Energies shifted by 0.5 kT: W1 = W2 = 0.5.
  const auto shifted = compare_samples(ref, torch::zeros({400}, torch::kFloat64), ref_u + 0.5, ref, ref_u);
  EXPECT_NEAR(shifted.energy_w1, 0.5, 1e-14);
  EXPECT_NEAR(shifted.energy_w2, 0.5, 1e-14);
  EXPECT_THROW(compare_samples(ref, torch::zeros({399}, torch::kFloat64), ref_u, ref, ref_u), Error);
  EXPECT_THROW(compare_samples(ref.narrow(1, 0, 3), torch::zeros({400}, torch::kFloat64), ref_u,
                               ref, ref_u),
               Error);
  EXPECT_THROW(compare_samples(ref, torch::full({400}, std::nan(""), torch::kFloat64), ref_u, ref, ref_u), Error);
}


// md frames (F, R, N, n) without energies: the burn-in is dropped from each replica, the
// energies are the system's, the weights equal; a sample file keeps its log w.
TEST(ReadWeightedConfigurations, MdFramesAndSampleFiles) {
  const auto dir = std::filesystem::temp_directory_path() / "mintjulep-read-configurations";
  std::filesystem::create_directories(dir);
  const auto system = make_system("dw4");
  auto frames = testing::lattice_configurations(5 * 3, 4, 2, 3.0, 0.3, 7).reshape({5, 3, 4, 2});
  const std::string md = (dir / "md.npz").string();
  write_npz(md, {{"positions", frames.to(torch::kFloat32)}});
  ReadConfigurationsOptions options;
  options.role = "--reference";
  options.reference = true;
  options.burn_in = 2;
  const auto ref = read_weighted_configurations(md, system.get(), options);
  EXPECT_TRUE(ref.trajectory);
  EXPECT_EQ(ref.frames, 3);
  EXPECT_EQ(ref.replicas, 3);
  const auto kept = frames.to(torch::kFloat32).to(torch::kFloat64).narrow(0, 2, 3).reshape({9, 4, 2});
  EXPECT_TRUE(torch::equal(ref.positions, kept));
  EXPECT_TRUE(torch::allclose(ref.energies, system->energy(kept, 1.0).to(torch::kFloat64), 1e-12, 1e-12));
  EXPECT_TRUE(torch::equal(ref.energy_series, ref.energies.reshape({3, 3})));
  EXPECT_TRUE(torch::equal(ref.log_w, torch::zeros({9}, torch::kFloat64)));
  options.burn_in = 5;
  EXPECT_THROW(read_weighted_configurations(md, system.get(), options), Error);
  options.burn_in = 0;
  EXPECT_THROW(read_weighted_configurations(md, nullptr, options), Error);  // no energies to be had

  const std::string samples = (dir / "samples.npz").string();
  const auto x = kept.narrow(0, 0, 4);
  const auto log_w = t({0.0, -1.0, 2.0, -0.5});
  write_npz(samples, {{"positions", x}, {"log_w", log_w}, {"energies", t({1, 2, 3, 4})}});
  const auto in = read_weighted_configurations(samples, nullptr, {});
  EXPECT_FALSE(in.trajectory);
  EXPECT_TRUE(torch::equal(in.log_w, log_w));
  EXPECT_TRUE(torch::equal(in.energies, t({1, 2, 3, 4})));
  // Unequal weights are no reference; four particles are not LJ-13's thirteen.
  EXPECT_THROW(read_weighted_configurations(samples, nullptr, options), Error);
  EXPECT_THROW(read_weighted_configurations(samples, make_system("lj13").get(), {}), Error);
  remove_tree(dir.string());
}

}  // namespace
}  // namespace mintjulep
