#pragma once
// Run configuration, read from a TOML file. Every key is documented in README.md; an
// unknown key is an error (it is almost always a typo that would silently be ignored).
#include <mintjulep/annealing.hpp>
#include <mintjulep/egnn.hpp>
#include <mintjulep/harmonic_prior.hpp>
#include <mintjulep/julep.hpp>
#include <mintjulep/julep_training.hpp>
#include <mintjulep/mint_prior.hpp>
#include <mintjulep/mint_training.hpp>

#include <array>
#include <string>

namespace mintjulep {

struct RunConfig {
  std::string system;
  double temperature = 0.0;             // kelvin, molecular systems only; 0: 300 K
  int64_t anchor = -1;                  // particle index; -1: the system's default
  std::array<int64_t, 2> frame = {-1, -1};  // particle indices; -1: first two non-anchor ones
  uint64_t seed = 0;
  std::string device = "cpu";
  int threads = 0;                      // 0: one per core
  MintPriorOptions prior;               // radius <= 0: the system's length scale
  HarmonicOptions harmonic;             // init = "harmonic"
  // [prior] symmetry averaging (MintPriorOptions::symmetries): over the cyclic relabellings of
  // a molecule's methyl rotors, or over every relabelling of identical particles (N! <= 720).
  bool rotor_symmetry = false;
  bool permutation_symmetry = false;
  MintTrainingOptions mint;
  int64_t eval_samples = 10000;         // fresh samples for the reported ESS
  EgnnOptions network;
  JulepOptions julep;
  JulepTrainingOptions train;
  int64_t path_eval_samples = 10000;    // fresh trajectories for the reported path ESS
  bool baseline = true;                 // also measure untrained AIS (A = b = Util = 0)
  // [anneal]: an exact annealing evaluation (DESIGN.md §4b) that train runs besides the
  // baseline and that sample uses by default when the section is present.
  AnnealOptions anneal;                 // steps default to [julep] steps
  bool anneal_configured = false;       // the config has an [anneal] section
};

// Parses and validates a config file; throws Error naming the file, key and fix.
RunConfig load_config(const std::string& path);

}  // namespace mintjulep
