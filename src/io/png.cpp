#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>

#include <fmt/format.h>
#include <png.h>

#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <unistd.h>

#include "io/atomic_file.hpp"

namespace mintjulep {

void write_png_rgb(const std::string& path, int64_t width, int64_t height,
                   const std::vector<uint8_t>& rgb) {
  check(width > 0 && height > 0 && static_cast<int64_t>(rgb.size()) == width * height * 3,
        fmt::format("PNG image {}x{} needs {} RGB bytes, got {}", width, height,
                    width * height * 3, rgb.size()));
  const std::string temp = path + fmt::format(".tmp{}", ::getpid());
  FILE* file = std::fopen(temp.c_str(), "wb");
  if (file == nullptr) throw Error(write_error(path, errno));
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  errno = 0;
  if (png == nullptr || info == nullptr || setjmp(png_jmpbuf(png))) {
    const int error = errno;  // libpng's write error comes from a failed fwrite
    png_destroy_write_struct(&png, &info);
    std::fclose(file);
    std::remove(temp.c_str());
    throw Error(error != 0 ? write_error(path, error) : fmt::format("writing PNG '{}' failed", path));
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
               PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int64_t row = 0; row < height; ++row)
    png_write_row(png, const_cast<png_bytep>(rgb.data() + row * width * 3));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  int error = std::fflush(file) == 0 ? 0 : errno;
  if (std::fclose(file) != 0 && error == 0) error = errno;
  if (error == 0 && std::rename(temp.c_str(), path.c_str()) != 0) error = errno;
  if (error != 0) {
    std::remove(temp.c_str());
    throw Error(write_error(path, error));
  }
}

}  // namespace mintjulep
