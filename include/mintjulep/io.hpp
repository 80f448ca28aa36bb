#pragma once
// Reading and writing configurations: numpy .npy arrays, XYZ, PDB and DCD trajectories.
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace mintjulep {

class Energy;

// Removes a file or a folder with everything in it; a missing path is no error. Returns false
// when something could not be removed. Use this, not std::filesystem::remove_all: CUDA builds of
// LibTorch 2.x export a copy of remove_all of their own, which the dynamic linker binds ahead of
// libstdc++'s, and that copy crashes.
bool remove_tree(const std::string& path) noexcept;

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

// Writes named arrays as a numpy .npz archive (read with numpy.load), atomically. Members carry
// a fixed time stamp (1980-01-01 00:00), so the same arrays always give the same bytes.
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

// Writes frames (F, N, n) as extended XYZ, atomically: each comment line is
// "Properties=species:S:1:pos:R:3 pbc=\"F F F\"" followed by properties[f] (key=value pairs,
// may be empty; one entry per frame).
void write_extended_xyz(const std::string& path, const torch::Tensor& positions,
                        const std::vector<std::string>& elements,
                        const std::vector<std::string>& properties);

// What structure files call each particle.
struct ParticleNames {
  std::vector<std::string> atom_names, residue_names, elements;
  std::vector<int64_t> residue_numbers;  // 1-based
};

// A molecule's atoms as its PDB topology names them; for other systems (clusters) one atom
// "X" (element X, a dummy atom) in its own residue "UNK" per particle.
ParticleNames particle_names(const Energy& system);

// Angstrom per length unit of `system`: 10 for molecules (nm); 1 for systems in reduced
// units, whose dimensionless lengths are written to Angstrom files numerically unchanged.
double angstrom_per_length_unit(const Energy& system);

// Writes frames (F, N, 2 or 3) in Angstrom as a multi-model PDB (z = 0 for n = 2),
// atomically. remarks[f], when not empty, goes on a REMARK line before model f. Coordinates
// must fit the fixed columns (-999.999 to 9999.999 Angstrom).
void write_pdb_models(const std::string& path, const torch::Tensor& positions_angstrom,
                      const ParticleNames& names, const std::vector<std::string>& remarks);

// Reads the ATOM/HETATM coordinates of every model of a PDB file: (F, N, 3) float64 Angstrom.
torch::Tensor read_pdb_models(const std::string& path);

// Writes frames (F, N, 2 or 3) in Angstrom as a CHARMM/NAMD DCD file (float32, no unit cell,
// z = 0 for n = 2), as VMD, MDAnalysis and mdtraj read it, atomically.
void write_dcd(const std::string& path, const torch::Tensor& positions_angstrom);

// Reads a DCD file written by write_dcd (or CHARMM/NAMD without unit cell or with one, not
// 4D, no fixed atoms): (F, N, 3) float32 Angstrom.
torch::Tensor read_dcd(const std::string& path);

enum class TrajectoryFormat { npz, pdb, dcd, xyz };

// The format named by the extension of `path` (.npz, .pdb, .dcd, .xyz); Error for any other.
TrajectoryFormat trajectory_format(const std::string& path);

// Writes configurations (F, N, n) of `system`, in its length unit, as the PDB, DCD or
// extended XYZ file `path` names (not .npz), in Angstrom, with the system's particle names.
// labels[f] ("key=value ..." text, may be empty) goes to model f's REMARK (PDB) or frame
// f's comment line (XYZ); DCD has no place for it.
void write_trajectory(const std::string& path, const torch::Tensor& positions,
                      const Energy& system, const std::vector<std::string>& labels);

// Reads configurations for `system` from a .npy file of shape (B, N, n) (or (N, n) for one
// configuration), an .xyz file (for n = 2 the z column must be 0; in the system's length
// unit), a PDB or DCD file (every model/frame, Angstrom converted to the system's length
// unit) or an .npz with `positions`. Checks shape and that every number is finite. Returns a
// float64 CPU tensor (B, N, n). An .npz of `md` holds a trajectory (F, R, N, n): its last frame
// (R configurations) is read, or with every_md_frame all F x R configurations, frame by frame.
torch::Tensor read_configurations(const std::string& path, const Energy& system, bool every_md_frame = false);

}  // namespace mintjulep
