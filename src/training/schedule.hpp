#pragma once
// Learning-rate schedules and progress cadence shared by the training loops.
#include <torch/optim/adam.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace mintjulep {

// Cosine decay from `base` at step 0 to base * final_fraction at the last step.
inline double cosine_schedule(double base, double final_fraction, int64_t step, int64_t steps) {
  const double progress = static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, steps));
  return base * (final_fraction + (1 - final_fraction) * 0.5 * (1 + std::cos(M_PI * progress)));
}

inline void set_learning_rate(torch::optim::Adam& optimizer, double lr) {
  for (auto& group : optimizer.param_groups())
    static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
}

// Parameter group g gets factor * base_lrs[g]: one schedule over groups with their own rates.
inline void scale_learning_rates(torch::optim::Adam& optimizer, const std::vector<double>& base_lrs,
                                 double factor) {
  auto& groups = optimizer.param_groups();
  for (size_t g = 0; g < groups.size(); ++g)
    static_cast<torch::optim::AdamOptions&>(groups[g].options()).lr(factor * base_lrs.at(g));
}

// Whether a progress line is due: every `every` steps (0: never) and at the last step.
inline bool progress_due(int64_t step, int64_t every, int64_t steps) {
  return every > 0 && (step % every == 0 || step + 1 == steps);
}

}  // namespace mintjulep
