#pragma once
// Reading and writing configurations: numpy .npy arrays and XYZ trajectories.
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace mintjulep {

class Energy;

// Reads a numpy .npy array (format 1.0-3.0) of float32, float64, int32 or int64, little
// endian, C or Fortran order, into a CPU tensor of the same dtype. Throws Error on a missing,
// truncated or unsupported file.
torch::Tensor read_npy(const std::string& path);

// Writes a CPU-copyable tensor (float32, float64, int32, int64) as .npy, atomically: the data
// goes to a temporary file in the same folder that is renamed over `path` when complete.
void write_npy(const std::string& path, const torch::Tensor& array);

// The bytes of a .npy file holding `array`.
std::string npy_bytes(const torch::Tensor& array);

// Reads every .npy member of a numpy .npz archive (numpy.savez or savez_compressed), keyed by
// the name without ".npy".
std::map<std::string, torch::Tensor> read_npz(const std::string& path);

// Writes named arrays as a numpy .npz archive (read with numpy.load), atomically.
void write_npz(const std::string& path,
               const std::vector<std::pair<std::string, torch::Tensor>>& arrays);

// Writes an 8-bit RGB image (row-major, top row first, 3 bytes per pixel) as PNG, atomically.
void write_png_rgb(const std::string& path, int64_t width, int64_t height,
                   const std::vector<uint8_t>& rgb);

struct XyzTrajectory {
  torch::Tensor positions;            // (frames, atoms, 3), float64
  std::vector<std::string> elements;  // symbols of the first frame
};

// Reads one or more frames of an XYZ file (atom count line, comment line, then one
// "symbol x y z" line per atom). All frames must have the same atom count.
XyzTrajectory read_xyz(const std::string& path);

// Writes frames (F, N, n) with n = 2 or 3 (z = 0 for n = 2) as XYZ, atomically.
void write_xyz(const std::string& path, const torch::Tensor& positions,
               const std::vector<std::string>& elements, const std::string& comment = "");

// Reads configurations for `system` from a .npy file of shape (B, N, n) (or (N, n) for one
// configuration) or an .xyz file (for n = 2 the z column must be 0). Checks shape and that
// every number is finite. Returns a float64 CPU tensor (B, N, n).
torch::Tensor read_configurations(const std::string& path, const Energy& system);

}  // namespace mintjulep
