#pragma once
// Local energy minimisation (L-BFGS with a strong-Wolfe line search) of anchored
// configurations, e.g. to relax a molecule's PDB structure before centring the prior on it.
#include <mintjulep/energy.hpp>

namespace mintjulep {

struct MinimizeResult {
  torch::Tensor y;             // (B, M, n) minimised, float64
  double initial_energy = 0;   // sum over the batch, kT
  double final_energy = 0;
};

// Minimises V(y, t) (t = 1: the target energy; t = 0: the soft-core end of the path, finite
// even for overlapping particles).
MinimizeResult minimize_energy(const AnchoredEnergy& energy, const torch::Tensor& y,
                               int64_t max_iterations = 1000, double t = 1.0);

}  // namespace mintjulep
