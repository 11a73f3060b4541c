#include "common/png.h"

#include <csetjmp>
#include <cstdio>
#include <cstring>

#include <png.h>

#include "absl/strings/str_cat.h"

namespace dserve::common {
namespace {

// libpng reports errors by calling this and then longjmp-ing back to the
// setjmp in the caller; we keep the message for the Status.
struct ErrorState {
  char message[256] = {0};
};

void OnError(png_structp png, png_const_charp msg) {
  auto* state = static_cast<ErrorState*>(png_get_error_ptr(png));
  std::snprintf(state->message, sizeof(state->message), "%s", msg);
  png_longjmp(png, 1);
}

void OnWarning(png_structp, png_const_charp) {}

void WriteToString(png_structp png, png_bytep data, png_size_t length) {
  auto* out = static_cast<std::string*>(png_get_io_ptr(png));
  out->append(reinterpret_cast<const char*>(data), length);
}

void Flush(png_structp) {}

struct ReadCursor {
  std::string_view data;
  size_t offset = 0;
};

void ReadFromView(png_structp png, png_bytep out, png_size_t length) {
  auto* cursor = static_cast<ReadCursor*>(png_get_io_ptr(png));
  if (cursor->data.size() - cursor->offset < length) {
    png_error(png, "unexpected end of PNG data");
  }
  std::memcpy(out, cursor->data.data() + cursor->offset, length);
  cursor->offset += length;
}

// The setjmp frames: they hold no C++ objects of their own (everything they
// fill lives in the caller and is reached through pointers), so the longjmp
// from OnError skips no destructor and reads no clobbered local.
bool EncodeRows(png_structp png, png_infop info, const uint8_t* rgb, int width,
                int height) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_compression_level(png, 6);
  png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const size_t stride = static_cast<size_t>(width) * 3;
  for (int y = 0; y < height; ++y) {
    png_write_row(png, const_cast<png_bytep>(rgb + y * stride));
  }
  png_write_end(png, nullptr);
  return true;
}

// Reads the header and sets up conversion to 8-bit RGB.
bool ReadHeader(png_structp png, png_infop info) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_user_limits(png, kMaxPngDimension, kMaxPngDimension);
  png_read_info(png, info);
  const png_byte color = png_get_color_type(png, info);
  const png_byte depth = png_get_bit_depth(png, info);
  if (depth == 16) png_set_strip_16(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) {
    png_set_expand_gray_1_2_4_to_8(png);
  }
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) {
    png_set_gray_to_rgb(png);
  }
  if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) {
    png_set_tRNS_to_alpha(png);
    png_set_strip_alpha(png);
  }
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  return true;
}

bool ReadRows(png_structp png, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  png_read_end(png, nullptr);
  return true;
}

}  // namespace

absl::StatusOr<std::string> EncodePng(const uint8_t* rgb, int width,
                                      int height) {
  if (rgb == nullptr) {
    return absl::InvalidArgumentError("EncodePng: rgb buffer is null");
  }
  if (width < 1 || width > kMaxPngDimension || height < 1 ||
      height > kMaxPngDimension) {
    return absl::InvalidArgumentError(
        absl::StrCat("EncodePng: size ", width, "x", height,
                     " is out of range; allowed: [1, ", kMaxPngDimension,
                     "] per side"));
  }
  ErrorState errors;
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &errors,
                                            OnError, OnWarning);
  if (png == nullptr) {
    return absl::ResourceExhaustedError("EncodePng: png_create_write_struct");
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    return absl::ResourceExhaustedError("EncodePng: png_create_info_struct");
  }
  png_set_write_fn(png, &out, WriteToString, Flush);
  const bool ok = EncodeRows(png, info, rgb, width, height);
  png_destroy_write_struct(&png, &info);
  if (!ok) {
    return absl::InternalError(
        absl::StrCat("EncodePng: libpng error: ", errors.message));
  }
  return out;
}

absl::StatusOr<DecodedImage> DecodePng(std::string_view data) {
  if (data.size() < 8 ||
      png_sig_cmp(reinterpret_cast<png_const_bytep>(data.data()), 0, 8) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("DecodePng: ", data.size(),
                     " bytes do not start with the PNG signature"));
  }
  ErrorState errors;
  ReadCursor cursor{data, 0};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &errors,
                                           OnError, OnWarning);
  if (png == nullptr) {
    return absl::ResourceExhaustedError("DecodePng: png_create_read_struct");
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return absl::ResourceExhaustedError("DecodePng: png_create_info_struct");
  }
  png_set_read_fn(png, &cursor, ReadFromView);
  DecodedImage image;
  bool ok = ReadHeader(png, info);
  if (ok) {
    image.width = static_cast<int>(png_get_image_width(png, info));
    image.height = static_cast<int>(png_get_image_height(png, info));
    const size_t stride = static_cast<size_t>(image.width) * 3;
    if (png_get_rowbytes(png, info) != stride) {
      std::snprintf(errors.message, sizeof(errors.message),
                    "unexpected row size after conversion to RGB");
      ok = false;
    } else {
      image.rgb.resize(stride * image.height);
      std::vector<png_bytep> rows(image.height);
      for (int y = 0; y < image.height; ++y) {
        rows[y] = image.rgb.data() + y * stride;
      }
      ok = ReadRows(png, rows.data());
    }
  }
  png_destroy_read_struct(&png, &info, nullptr);
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("DecodePng: corrupt PNG: ", errors.message));
  }
  return image;
}

}  // namespace dserve::common
