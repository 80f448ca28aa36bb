#pragma once
// Shared by the libFuzzer harnesses: every parser takes a path, so each input is written to a
// temporary file first. A rejected input must come out as a mintjulep::Error with a non-empty,
// one-line message; any other exception, a broken invariant of the result, a crash or a
// sanitizer report aborts the run and libFuzzer saves the input.
#include <mintjulep/error.hpp>

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>
#include <typeinfo>
#include <vector>

namespace mintjulep_fuzz {

// Removes the temporary files at exit.
struct TempFiles {
  std::vector<std::string> paths;
  ~TempFiles() {
    for (const auto& p : paths) std::remove(p.c_str());
  }
};

// Writes the input to "$TMPDIR/mintjulep-fuzz-<pid>-<name>" and returns that path. `name`
// carries the extension when the parser dispatches on it.
inline std::string write_input(const uint8_t* data, size_t size, const std::string& name) {
  static TempFiles files;
  const char* tmp = std::getenv("TMPDIR");
  const std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/mintjulep-fuzz-" +
                           std::to_string(::getpid()) + "-" + name;
  bool known = false;
  for (const auto& p : files.paths) known = known || p == path;
  if (!known) files.paths.push_back(path);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) {
    std::fprintf(stderr, "fuzz harness: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "\nfuzz harness: %s\n", what.c_str());
  std::abort();
}

// Runs `parse`: returns normally when it succeeds or throws a well-formed mintjulep::Error.
template <class F>
void expect_clean(F&& parse) {
  try {
    parse();
  } catch (const mintjulep::Error& e) {
    const std::string message = e.what();
    if (message.empty()) fail("mintjulep::Error with an empty message");
    for (char c : message) {
      const auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7f)
        fail("mintjulep::Error message is not one printable line: " + message);
    }
  } catch (const std::exception& e) {
    fail(std::string("parser threw ") + typeid(e).name() + " instead of mintjulep::Error: " +
         e.what());
  } catch (...) {
    fail("parser threw a non-std exception");
  }
}

}  // namespace mintjulep_fuzz

// An invariant of a successfully parsed result.
#define FUZZ_EXPECT(condition)                                                  \
  do {                                                                          \
    if (!(condition)) ::mintjulep_fuzz::fail("invariant failed: " #condition); \
  } while (0)
