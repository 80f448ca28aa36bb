#pragma once
// Internal to the library: TOML text made safe for toml++ before parsing.
#include <string>

namespace mintjulep {

// toml++ 3.3 (Debian 12) reaches __builtin_unreachable in its Unicode whitespace test for some
// non-ASCII characters. Returns `text` with the non-ASCII characters of comments blanked and
// one-line strings kept; throws Error (naming `path`, line and column) for a non-ASCII
// character anywhere else.
std::string ascii_outside_strings(const std::string& text, const std::string& path);

}  // namespace mintjulep
