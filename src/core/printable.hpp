#pragma once
// Quoting text from input files in error messages, which must stay one printable line.
#include <cstddef>
#include <string>

namespace mintjulep {

// `text` made safe to quote in a one-line message: control characters become escapes
// (\n, \r, \t, \xNN) and anything past `max_length` characters is cut to "...".
inline std::string printable(const std::string& text, size_t max_length = 80) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i == max_length) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// True when `text` holds no control characters (tab allowed).
inline bool is_single_line(const std::string& text) {
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

}  // namespace mintjulep
