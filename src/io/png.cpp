#include <mintjulep/error.hpp>
#include <mintjulep/io.hpp>

#include <fmt/format.h>
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <unistd.h>

namespace mintjulep {

void write_png_rgb(const std::string& path, int64_t width, int64_t height,
                   const std::vector<uint8_t>& rgb) {
  check(width > 0 && height > 0 && static_cast<int64_t>(rgb.size()) == width * height * 3,
        fmt::format("PNG image {}x{} needs {} RGB bytes, got {}", width, height,
                    width * height * 3, rgb.size()));
  const std::string temp = path + fmt::format(".tmp{}", ::getpid());
  FILE* file = std::fopen(temp.c_str(), "wb");
  check(file != nullptr, fmt::format("cannot write '{}': check that the folder exists and is writable", path));
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (png == nullptr || info == nullptr || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(file);
    std::remove(temp.c_str());
    throw Error(fmt::format("writing PNG '{}' failed", path));
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
  const bool closed = std::fclose(file) == 0;
  check(closed && std::rename(temp.c_str(), path.c_str()) == 0,
        fmt::format("writing PNG '{}' failed (disk full?)", path));
}

}  // namespace mintjulep
