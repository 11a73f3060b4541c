#include "worker/models/safetensors.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <cstring>
#include <fstream>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker/models/checkpoint/mapped_file.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

namespace dserve::models {
namespace {

using nlohmann::json;

// A header larger than this is treated as corruption rather than allocated.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
};

constexpr DtypeInfo kDtypes[] = {
    {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf},
    {"BF16", at::kBFloat16}, {"I64", at::kLong}, {"I32", at::kInt},
    {"I16", at::kShort},  {"I8", at::kChar},   {"U8", at::kByte},
    {"BOOL", at::kBool},
};

bool DtypeFromName(const std::string& name, at::ScalarType& out) {
  for (const DtypeInfo& d : kDtypes) {
    if (name == d.name) {
      out = d.type;
      return true;
    }
  }
  return false;
}

const char* DtypeName(at::ScalarType type) {
  for (const DtypeInfo& d : kDtypes) {
    if (d.type == type) return d.name;
  }
  return nullptr;
}

bool IsLittleEndian() {
  const uint16_t probe = 1;
  uint8_t first;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

absl::Status Corrupt(const std::string& path, const std::string& detail) {
  return absl::DataLossError(
      absl::StrCat("safetensors file ", path, ": ", detail));
}

struct Header {
  json entries;
  uint64_t data_start = 0;
  uint64_t data_size = 0;
};

absl::StatusOr<Header> ParseHeader(const checkpoint::MappedFile& file) {
  const std::string& path = file.path();
  if (!IsLittleEndian()) {
    return absl::UnimplementedError(
        "safetensors reading needs a little-endian host");
  }
  const uint64_t file_size = file.size();
  if (file_size < 8) {
    return Corrupt(path, absl::StrCat("file is ", file_size,
                                      " bytes, shorter than the 8-byte "
                                      "header length"));
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, file.data(), 8);
  if (header_len > kMaxHeaderBytes || header_len > file_size - 8) {
    return Corrupt(path, absl::StrCat("header length ", header_len,
                                      " exceeds the file size ", file_size,
                                      " (or the ", kMaxHeaderBytes,
                                      "-byte limit)"));
  }
  const char* text = reinterpret_cast<const char*>(file.data()) + 8;
  Header header;
  header.entries =
      json::parse(text, text + header_len, nullptr, /*allow_exceptions=*/false);
  if (header.entries.is_discarded() || !header.entries.is_object()) {
    return Corrupt(path, "header is not a JSON object");
  }
  header.data_start = 8 + header_len;
  header.data_size = file_size - header.data_start;
  return header;
}

// A shard name from an index must stay inside the index's directory.
bool EscapesDirectory(const std::string& name) {
  if (name.empty() || name[0] == '/') return true;
  size_t begin = 0;
  while (begin <= name.size()) {
    size_t end = name.find('/', begin);
    if (end == std::string::npos) end = name.size();
    if (name.compare(begin, end - begin, "..") == 0 && end - begin == 2) {
      return true;
    }
    begin = end + 1;
  }
  return false;
}

// Validates one header entry and returns its dtype, shape and byte range.
absl::Status ParseEntry(const std::string& path, const std::string& key,
                        const json& entry, uint64_t data_size,
                        at::ScalarType& dtype, std::vector<int64_t>& shape,
                        uint64_t& begin, uint64_t& end) {
  auto bad = [&](const std::string& detail) {
    return Corrupt(path, absl::StrCat("tensor \"", key, "\": ", detail));
  };
  if (!entry.is_object()) return bad("entry is not a JSON object");
  auto dt = entry.find("dtype");
  auto sh = entry.find("shape");
  auto off = entry.find("data_offsets");
  if (dt == entry.end() || !dt->is_string()) return bad("missing dtype");
  if (sh == entry.end() || !sh->is_array()) return bad("missing shape");
  if (off == entry.end() || !off->is_array() || off->size() != 2) {
    return bad("data_offsets must be [begin, end]");
  }
  if (!DtypeFromName(dt->get<std::string>(), dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "safetensors file ", path, ": tensor \"", key, "\": dtype \"",
        dt->get<std::string>(),
        "\" is not supported (F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)"));
  }
  // `span` (the product of the non-zero dims) bounds the strides too: with a
  // 0 dim numel stays 0, but the other dims' strides are still multiplied
  // out and must not overflow (found by fuzz/safetensors_fuzzer's UBSan).
  uint64_t numel = 1, span = 1;
  shape.clear();
  for (const json& d : *sh) {
    if (!d.is_number_unsigned()) return bad("shape has a non-integer entry");
    const uint64_t n = d.get<uint64_t>();
    if (n > (1ull << 40) || (n != 0 && span > (1ull << 50) / n)) {
      return bad("shape is too large");
    }
    numel *= n;
    if (n != 0) span *= n;
    shape.push_back(static_cast<int64_t>(n));
  }
  if (!(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned()) {
    return bad("data_offsets are not non-negative integers");
  }
  begin = (*off)[0].get<uint64_t>();
  end = (*off)[1].get<uint64_t>();
  if (begin > end || end > data_size) {
    return bad(absl::StrCat("data_offsets [", begin, ", ", end,
                            ") are outside the data section of ", data_size,
                            " bytes"));
  }
  const uint64_t expected = numel * c10::elementSize(dtype);
  if (end - begin != expected) {
    return bad(absl::StrCat("data_offsets cover ", end - begin,
                            " bytes but dtype and shape need ", expected));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<WeightMap> ReadSafetensors(const std::string& path,
                                          const KeyFilter& keep) {
  ASSIGN_OR_RETURN(std::shared_ptr<const checkpoint::MappedFile> file,
                   checkpoint::MappedFile::Open(path));
  ASSIGN_OR_RETURN(Header header, ParseHeader(*file));
  WeightMap weights;
  for (auto it = header.entries.begin(); it != header.entries.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    at::ScalarType dtype;
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;
    RETURN_IF_ERROR(ParseEntry(path, it.key(), it.value(), header.data_size,
                               dtype, shape, begin, end));
    if (keep && !keep(it.key())) continue;
    std::vector<int64_t> strides(shape.size(), 1);
    for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) {
      strides[i] = strides[i + 1] * std::max<int64_t>(shape[i + 1], 1);
    }
    at::Tensor t;
    RETURN_IF_ERROR(CatchTorch(
        absl::StrCat("safetensors file ", path, ": tensor \"", it.key(), "\""),
        [&] {
          t = checkpoint::TensorView(file, header.data_start + begin,
                                     end - begin, dtype, shape, strides);
        }));
    weights.emplace(it.key(), std::move(t));
  }
  return weights;
}

absl::StatusOr<std::map<std::string, std::string>> ReadSafetensorsMetadata(
    const std::string& path) {
  ASSIGN_OR_RETURN(std::shared_ptr<const checkpoint::MappedFile> file,
                   checkpoint::MappedFile::Open(path));
  ASSIGN_OR_RETURN(Header header, ParseHeader(*file));
  std::map<std::string, std::string> metadata;
  auto it = header.entries.find("__metadata__");
  if (it == header.entries.end()) return metadata;
  if (!it->is_object()) return Corrupt(path, "__metadata__ is not an object");
  for (auto m = it->begin(); m != it->end(); ++m) {
    if (!m.value().is_string()) {
      return Corrupt(path, absl::StrCat("__metadata__ \"", m.key(),
                                        "\" is not a string"));
    }
    metadata[m.key()] = m.value().get<std::string>();
  }
  return metadata;
}

absl::StatusOr<WeightMap> ReadSafetensorsIndex(const std::string& index_path,
                                               const KeyFilter& keep) {
  std::ifstream in(index_path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", index_path));
  json index = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded() || !index.is_object() ||
      !index.contains("weight_map") || !index["weight_map"].is_object()) {
    return absl::DataLossError(absl::StrCat(
        "safetensors index ", index_path,
        ": expected a JSON object with a \"weight_map\" object"));
  }
  const size_t slash = index_path.find_last_of('/');
  const std::string dir =
      slash == std::string::npos ? "" : index_path.substr(0, slash + 1);
  std::map<std::string, std::vector<std::string>> keys_by_shard;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end();
       ++it) {
    if (!it.value().is_string()) {
      return absl::DataLossError(
          absl::StrCat("safetensors index ", index_path, ": key \"", it.key(),
                       "\" does not map to a file name"));
    }
    const std::string shard = it.value().get<std::string>();
    if (EscapesDirectory(shard)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "safetensors index ", index_path, ": shard \"", shard,
          "\" (for key \"", it.key(),
          "\") is not a relative path inside the index's directory"));
    }
    if (keep && !keep(it.key())) continue;
    keys_by_shard[shard].push_back(it.key());
  }
  WeightMap weights;
  for (const auto& [shard, keys] : keys_by_shard) {
    ASSIGN_OR_RETURN(WeightMap part, ReadSafetensors(dir + shard, keep));
    for (const std::string& key : keys) {
      auto found = part.find(key);
      if (found == part.end()) {
        return absl::DataLossError(absl::StrCat(
            "safetensors index ", index_path, ": key \"", key,
            "\" is not in shard ", dir + shard));
      }
      weights[key] = std::move(found->second);
    }
  }
  return weights;
}

absl::Status WriteSafetensors(const WeightMap& weights,
                              const std::string& path,
                              const std::map<std::string, std::string>& metadata) {
  if (!IsLittleEndian()) {
    return absl::UnimplementedError(
        "safetensors writing needs a little-endian host");
  }
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [key, tensor] : weights) {
    if (key == "__metadata__") {
      return absl::InvalidArgumentError(absl::StrCat(
          "safetensors file ", path, ": \"__metadata__\" is reserved"));
    }
    if (!tensor.defined()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "safetensors file ", path, ": tensor \"", key, "\" is undefined"));
    }
    const char* dtype = DtypeName(tensor.scalar_type());
    if (dtype == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "safetensors file ", path, ": tensor \"", key, "\" has dtype ",
          c10::toString(tensor.scalar_type()),
          ", not one of F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL"));
    }
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    const uint64_t bytes = t.numel() * t.element_size();
    header[key] = json{{"dtype", dtype},
                       {"shape", t.sizes().vec()},
                       {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(std::move(t));
  }
  std::string text = header.dump();
  // Pad with spaces (valid JSON whitespace) so the data starts 8-aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    return absl::NotFoundError(
        absl::StrCat("cannot open ", path, " for writing"));
  }
  const uint64_t header_len = text.size();
  out.write(reinterpret_cast<const char*>(&header_len), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const at::Tensor& t : data) {
    out.write(static_cast<const char*>(t.data_ptr()),
              static_cast<std::streamsize>(t.numel() * t.element_size()));
  }
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

void ReleaseMappedPages(const WeightMap& weights) {
  for (const auto& [key, t] : weights) checkpoint::ReleaseMappedPages(t);
}

}  // namespace dserve::models
