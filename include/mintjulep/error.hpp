#pragma once
// The one exception type of MintJulep. Every user-facing failure (bad input, unknown
// system, malformed file, non-finite numbers) is reported as a mintjulep::Error whose
// message is one line naming the problem and, where there is one, the fix.
#include <stdexcept>
#include <string>

namespace mintjulep {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws Error(message) when `condition` is false.
inline void check(bool condition, const std::string& message) {
  if (!condition) throw Error(message);
}

}  // namespace mintjulep
