#pragma once
// Learning-rate schedules shared by the two training stages.
#include <torch/optim/adam.h>

#include <algorithm>
#include <cmath>

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

}  // namespace mintjulep
