#pragma once
// The built-in systems, by name.
#include <mintjulep/energy.hpp>

#include <memory>
#include <string>
#include <vector>

namespace mintjulep {

// Builds a system from its name:
//   dw4                 double well, 4 particles in 2D (pair sum over i<j)
//   lj13, lj55          Lennard-Jones, pair term over ordered pairs i != j (eps = 2 over i<j,
//                       as in equivariant flow matching / iDEM data) + 0.5 sum |x_i - mean x|^2
//   lj13-half, lj55-half  same with the pair term over i<j (eps = 1, bgflow convention)
//   lj:N:n              pure Lennard-Jones pair term over i<j, eps = 1, rm = 1, no harmonic term
//   dw:N:n              double well with N particles in n dimensions
// Throws Error naming the known systems when the name is not one of them.
std::shared_ptr<Energy> make_system(const std::string& name);

// One line per known system name pattern, for help texts.
std::vector<std::string> known_systems();

}  // namespace mintjulep
