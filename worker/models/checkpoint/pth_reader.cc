#include "worker/models/checkpoint/pth_reader.h"

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "worker/models/checkpoint/mapped_file.h"
#include "worker/models/checkpoint/zip_archive.h"
#include <ATen/ATen.h>

namespace dserve::models::checkpoint {
namespace {

// A tensor described by the pickle, made into a view only if selected.
struct TensorRef {
  std::string storage_key;
  at::ScalarType dtype = at::kFloat;
  int64_t storage_numel = 0;
  int64_t storage_offset = 0;
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
};

// One pickle value. Containers are shared so the memo aliases them, as
// Python's does (SETITEMS on a memoised dict is seen through BINGET).
struct Value {
  enum Kind {
    kNone, kBool, kInt, kFloat, kString, kTuple, kList, kDict, kGlobal,
    kStorage, kTensor, kMark,
  };
  Kind kind = kNone;
  int64_t i = 0;  // kBool, kInt; kStorage: numel
  double f = 0;
  std::string s;  // kString; kGlobal "module.name"; kStorage key
  at::ScalarType dtype = at::kFloat;  // kStorage, kGlobal storage types
  std::shared_ptr<std::vector<Value>> items;  // kTuple, kList
  std::shared_ptr<std::vector<std::pair<Value, Value>>> dict;  // kDict
  std::shared_ptr<TensorRef> tensor;  // kTensor
};

const char* KindName(Value::Kind k) {
  static const char* kNames[] = {"None",  "bool",   "int",     "float",
                                 "str",   "tuple",  "list",    "dict",
                                 "global", "storage", "tensor", "mark"};
  return kNames[k];
}

struct StorageType {
  const char* name;
  at::ScalarType dtype;
};
constexpr StorageType kStorageTypes[] = {
    {"torch.DoubleStorage", at::kDouble}, {"torch.FloatStorage", at::kFloat},
    {"torch.HalfStorage", at::kHalf},     {"torch.BFloat16Storage", at::kBFloat16},
    {"torch.LongStorage", at::kLong},     {"torch.IntStorage", at::kInt},
    {"torch.ShortStorage", at::kShort},   {"torch.CharStorage", at::kChar},
    {"torch.ByteStorage", at::kByte},     {"torch.BoolStorage", at::kBool},
};

constexpr const char* kOrderedDict = "collections.OrderedDict";
constexpr const char* kRebuildTensor = "torch._utils._rebuild_tensor_v2";
// A state dict built from parameters rather than state_dict() pickles
// nn.Parameter(tensor) as _rebuild_parameter(tensor, requires_grad, hooks).
constexpr const char* kRebuildParameter = "torch._utils._rebuild_parameter";

class Unpickler {
 public:
  Unpickler(std::string path, const uint8_t* data, uint64_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  Unpickler(const Unpickler&) = delete;
  Unpickler& operator=(const Unpickler&) = delete;

  // A pickle's containers form a graph, not a tree: a memoised list can be
  // appended to itself (shared ownership alone would leak the cycle), and
  // a list nested a million deep would be freed by a million nested
  // destructor calls (a stack overflow). So every container stays owned by
  // the unpickler too, and here each is emptied while all are still alive:
  // dropping an element only decrements another container's count, and the
  // empty containers are then freed one by one. Values read from Run() are
  // empty after this, so the caller finishes with them first.
  ~Unpickler() {
    for (auto& list : lists_) list->clear();
    for (auto& dict : dicts_) dict->clear();
  }

  absl::StatusOr<Value> Run() {
    while (true) {
      if (pos_ >= size_) return Bad("ends without STOP");
      const uint64_t at = pos_;
      const uint8_t op = data_[pos_++];
      bool stop = false;
      absl::Status s = Step(op, stop);
      if (!s.ok()) {
        return absl::Status(s.code(),
                            absl::StrCat(path_, ": pickle opcode 0x",
                                         absl::Hex(op, absl::kZeroPad2),
                                         " at byte ", at, ": ", s.message()));
      }
      if (stop) break;
    }
    if (stack_.size() != 1) return Bad("STOP with a stack of size != 1");
    return stack_.back();
  }

 private:
  absl::Status Bad(const std::string& detail) const {
    return absl::DataLossError(detail);
  }

  absl::Status Need(uint64_t n) const {
    if (n > size_ - pos_) return Bad("argument runs past the end");
    return absl::OkStatus();
  }
  uint64_t Le(int bytes) {
    uint64_t v = 0;
    for (int b = bytes - 1; b >= 0; --b) v = (v << 8) | data_[pos_ + b];
    pos_ += bytes;
    return v;
  }
  absl::StatusOr<std::string> Line() {
    const uint64_t start = pos_;
    while (pos_ < size_ && data_[pos_] != '\n') ++pos_;
    if (pos_ >= size_) return Bad("unterminated GLOBAL line");
    std::string line(reinterpret_cast<const char*>(data_) + start,
                     pos_ - start);
    ++pos_;
    return line;
  }
  absl::StatusOr<Value> Pop() {
    if (stack_.empty() || stack_.back().kind == Value::kMark) {
      return Bad("stack underflow");
    }
    Value v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  // Items above the topmost MARK, which is removed.
  absl::StatusOr<std::vector<Value>> PopToMark() {
    size_t m = stack_.size();
    while (m > 0 && stack_[m - 1].kind != Value::kMark) --m;
    if (m == 0) return Bad("no MARK on the stack");
    std::vector<Value> items(std::make_move_iterator(stack_.begin() + m),
                             std::make_move_iterator(stack_.end()));
    stack_.resize(m - 1);
    return items;
  }
  // Every container is also kept in lists_/dicts_ until the unpickler is
  // destroyed (see ~Unpickler).
  Value Tuple(std::vector<Value> items) {
    Value v;
    v.kind = Value::kTuple;
    v.items = std::make_shared<std::vector<Value>>(std::move(items));
    lists_.push_back(v.items);
    return v;
  }
  Value Dict() {
    Value v;
    v.kind = Value::kDict;
    v.dict = std::make_shared<std::vector<std::pair<Value, Value>>>();
    dicts_.push_back(v.dict);
    return v;
  }

  absl::Status PushGlobal(const std::string& module, const std::string& name) {
    Value v;
    v.kind = Value::kGlobal;
    v.s = module + "." + name;
    bool known = v.s == kOrderedDict || v.s == kRebuildTensor ||
                 v.s == kRebuildParameter;
    for (const StorageType& t : kStorageTypes) {
      if (v.s == t.name) {
        v.dtype = t.dtype;
        known = true;
      }
    }
    if (!known) {
      return absl::UnimplementedError(absl::StrCat(
          "global ", v.s,
          " is not one a state dict uses (collections.OrderedDict, "
          "torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter, "
          "torch.<Type>Storage)"));
    }
    stack_.push_back(std::move(v));
    return absl::OkStatus();
  }

  // ('storage', storage_type, key, location, numel)
  absl::StatusOr<Value> PersistentLoad(const Value& pid) {
    if (pid.kind != Value::kTuple || pid.items->size() != 5 ||
        (*pid.items)[0].kind != Value::kString ||
        (*pid.items)[0].s != "storage") {
      return Bad("persistent id is not ('storage', type, key, location, "
                 "numel)");
    }
    const std::vector<Value>& t = *pid.items;
    if (t[1].kind != Value::kGlobal || t[1].s == kOrderedDict ||
        t[1].s == kRebuildTensor || t[1].s == kRebuildParameter) {
      return Bad("persistent id storage type is not a torch.<Type>Storage");
    }
    if (t[2].kind != Value::kString || t[4].kind != Value::kInt ||
        t[4].i < 0) {
      return Bad("persistent id key/numel have the wrong types");
    }
    Value v;
    v.kind = Value::kStorage;
    v.dtype = t[1].dtype;
    v.s = t[2].s;
    v.i = t[4].i;
    return v;
  }

  static absl::StatusOr<std::vector<int64_t>> IntTuple(const Value& v,
                                                      const char* what) {
    if (v.kind != Value::kTuple) {
      return absl::DataLossError(absl::StrCat(what, " is not a tuple"));
    }
    std::vector<int64_t> out;
    for (const Value& e : *v.items) {
      if (e.kind != Value::kInt) {
        return absl::DataLossError(absl::StrCat(what, " holds a non-int"));
      }
      out.push_back(e.i);
    }
    return out;
  }

  absl::StatusOr<Value> Reduce(const Value& callable, const Value& args) {
    if (callable.kind != Value::kGlobal || args.kind != Value::kTuple) {
      return Bad("REDUCE needs a known global and an argument tuple");
    }
    const std::vector<Value>& a = *args.items;
    if (callable.s == kOrderedDict) {
      if (!a.empty()) return Bad("OrderedDict(...) with arguments");
      return Dict();
    }
    if (callable.s == kRebuildTensor) {
      // (storage, storage_offset, size, stride, requires_grad,
      //  backward_hooks[, metadata])
      if (a.size() < 6 || a[0].kind != Value::kStorage ||
          a[1].kind != Value::kInt) {
        return Bad("_rebuild_tensor_v2 arguments are not (storage, offset, "
                   "size, stride, requires_grad, hooks)");
      }
      auto ref = std::make_shared<TensorRef>();
      ref->storage_key = a[0].s;
      ref->dtype = a[0].dtype;
      ref->storage_numel = a[0].i;
      ref->storage_offset = a[1].i;
      ASSIGN_OR_RETURN(ref->sizes, IntTuple(a[2], "tensor size"));
      ASSIGN_OR_RETURN(ref->strides, IntTuple(a[3], "tensor stride"));
      if (ref->sizes.size() != ref->strides.size()) {
        return Bad("tensor size and stride have different ranks");
      }
      Value v;
      v.kind = Value::kTensor;
      v.tensor = std::move(ref);
      return v;
    }
    if (callable.s == kRebuildParameter) {
      if (a.size() < 1 || a[0].kind != Value::kTensor) {
        return Bad("_rebuild_parameter's first argument is not a tensor");
      }
      return a[0];
    }
    return absl::UnimplementedError(
        absl::StrCat("REDUCE of ", callable.s, " is not supported"));
  }

  absl::Status SetItems(std::vector<Value> kv) {
    if (kv.size() % 2 != 0) return Bad("SETITEMS with an odd item count");
    if (stack_.empty() || stack_.back().kind != Value::kDict) {
      return Bad("SETITEM(S) target is not a dict");
    }
    auto& d = *stack_.back().dict;
    for (size_t k = 0; k < kv.size(); k += 2) {
      d.emplace_back(std::move(kv[k]), std::move(kv[k + 1]));
    }
    return absl::OkStatus();
  }

  absl::Status Step(uint8_t op, bool& stop) {
    switch (op) {
      case 0x80:  // PROTO
        RETURN_IF_ERROR(Need(1));
        if (data_[pos_] > 5) return Bad("pickle protocol above 5");
        ++pos_;
        return absl::OkStatus();
      case 0x95:  // FRAME (framing is only a read-ahead hint)
        RETURN_IF_ERROR(Need(8));
        pos_ += 8;
        return absl::OkStatus();
      case '.':  // STOP
        stop = true;
        return absl::OkStatus();
      case 'c': {  // GLOBAL
        ASSIGN_OR_RETURN(std::string module, Line());
        ASSIGN_OR_RETURN(std::string name, Line());
        return PushGlobal(module, name);
      }
      case 0x93: {  // STACK_GLOBAL
        ASSIGN_OR_RETURN(Value name, Pop());
        ASSIGN_OR_RETURN(Value module, Pop());
        if (name.kind != Value::kString || module.kind != Value::kString) {
          return Bad("STACK_GLOBAL needs two strings");
        }
        return PushGlobal(module.s, name.s);
      }
      case 'Q': {  // BINPERSID
        ASSIGN_OR_RETURN(Value pid, Pop());
        ASSIGN_OR_RETURN(Value storage, PersistentLoad(pid));
        stack_.push_back(std::move(storage));
        return absl::OkStatus();
      }
      case '}':  // EMPTY_DICT
        stack_.push_back(Dict());
        return absl::OkStatus();
      case ']': {  // EMPTY_LIST
        Value v = Tuple({});
        v.kind = Value::kList;
        stack_.push_back(std::move(v));
        return absl::OkStatus();
      }
      case ')':  // EMPTY_TUPLE
        stack_.push_back(Tuple({}));
        return absl::OkStatus();
      case '(': {  // MARK
        Value m;
        m.kind = Value::kMark;
        stack_.push_back(std::move(m));
        return absl::OkStatus();
      }
      case 't': {  // TUPLE
        ASSIGN_OR_RETURN(std::vector<Value> items, PopToMark());
        stack_.push_back(Tuple(std::move(items)));
        return absl::OkStatus();
      }
      case 0x85:  // TUPLE1
      case 0x86:  // TUPLE2
      case 0x87: {  // TUPLE3
        std::vector<Value> items(op - 0x84);
        for (size_t k = items.size(); k-- > 0;) {
          ASSIGN_OR_RETURN(items[k], Pop());
        }
        stack_.push_back(Tuple(std::move(items)));
        return absl::OkStatus();
      }
      case 'J':  // BININT
      case 'K':  // BININT1
      case 'M': {  // BININT2
        const int bytes = op == 'J' ? 4 : op == 'K' ? 1 : 2;
        RETURN_IF_ERROR(Need(bytes));
        Value v;
        v.kind = Value::kInt;
        const uint64_t raw = Le(bytes);
        v.i = op == 'J' ? static_cast<int64_t>(static_cast<int32_t>(raw))
                        : static_cast<int64_t>(raw);
        stack_.push_back(std::move(v));
        return absl::OkStatus();
      }
      case 0x8a: {  // LONG1: n bytes of little-endian two's complement
        RETURN_IF_ERROR(Need(1));
        const int n = data_[pos_++];
        if (n > 8) return Bad("LONG1 wider than 64 bits");
        RETURN_IF_ERROR(Need(n));
        uint64_t raw = n == 0 ? 0 : Le(n);
        if (n > 0 && n < 8 && (raw >> (8 * n - 1)) & 1) {
          raw |= ~uint64_t{0} << (8 * n);  // sign-extend
        }
        Value v;
        v.kind = Value::kInt;
        v.i = static_cast<int64_t>(raw);
        stack_.push_back(std::move(v));
        return absl::OkStatus();
      }
      case 'X':  // BINUNICODE
      case 0x8c:  // SHORT_BINUNICODE
      case 0x8d: {  // BINUNICODE8
        const int bytes = op == 'X' ? 4 : op == 0x8c ? 1 : 8;
        RETURN_IF_ERROR(Need(bytes));
        const uint64_t n = Le(bytes);
        RETURN_IF_ERROR(Need(n));
        Value v;
        v.kind = Value::kString;
        v.s.assign(reinterpret_cast<const char*>(data_) + pos_, n);
        pos_ += n;
        stack_.push_back(std::move(v));
        return absl::OkStatus();
      }
      case 'G': {  // BINFLOAT, big-endian
        RETURN_IF_ERROR(Need(8));
        uint64_t raw = 0;
        for (int b = 0; b < 8; ++b) raw = (raw << 8) | data_[pos_ + b];
        pos_ += 8;
        Value v;
        v.kind = Value::kFloat;
        std::memcpy(&v.f, &raw, 8);
        stack_.push_back(std::move(v));
        return absl::OkStatus();
      }
      case 0x88:  // NEWTRUE
      case 0x89: {  // NEWFALSE
        Value v;
        v.kind = Value::kBool;
        v.i = op == 0x88;
        stack_.push_back(std::move(v));
        return absl::OkStatus();
      }
      case 'N':  // NONE
        stack_.push_back(Value());
        return absl::OkStatus();
      case 'q':  // BINPUT
      case 'r': {  // LONG_BINPUT
        const int bytes = op == 'q' ? 1 : 4;
        RETURN_IF_ERROR(Need(bytes));
        const uint64_t idx = Le(bytes);
        if (stack_.empty()) return Bad("BINPUT on an empty stack");
        memo_[idx] = stack_.back();
        return absl::OkStatus();
      }
      case 0x94:  // MEMOIZE
        if (stack_.empty()) return Bad("MEMOIZE on an empty stack");
        memo_[memo_.size()] = stack_.back();
        return absl::OkStatus();
      case 'h':  // BINGET
      case 'j': {  // LONG_BINGET
        const int bytes = op == 'h' ? 1 : 4;
        RETURN_IF_ERROR(Need(bytes));
        const uint64_t idx = Le(bytes);
        auto it = memo_.find(idx);
        if (it == memo_.end()) return Bad(absl::StrCat("memo ", idx, " unset"));
        stack_.push_back(it->second);
        return absl::OkStatus();
      }
      case 's': {  // SETITEM
        ASSIGN_OR_RETURN(Value value, Pop());
        ASSIGN_OR_RETURN(Value key, Pop());
        std::vector<Value> kv;
        kv.push_back(std::move(key));
        kv.push_back(std::move(value));
        return SetItems(std::move(kv));
      }
      case 'u': {  // SETITEMS
        ASSIGN_OR_RETURN(std::vector<Value> kv, PopToMark());
        return SetItems(std::move(kv));
      }
      case 'a':  // APPEND
      case 'e': {  // APPENDS
        std::vector<Value> items;
        if (op == 'a') {
          ASSIGN_OR_RETURN(Value v, Pop());
          items.push_back(std::move(v));
        } else {
          ASSIGN_OR_RETURN(items, PopToMark());
        }
        if (stack_.empty() || stack_.back().kind != Value::kList) {
          return Bad("APPEND(S) target is not a list");
        }
        for (Value& v : items) stack_.back().items->push_back(std::move(v));
        return absl::OkStatus();
      }
      case 'R': {  // REDUCE
        ASSIGN_OR_RETURN(Value args, Pop());
        ASSIGN_OR_RETURN(Value callable, Pop());
        ASSIGN_OR_RETURN(Value result, Reduce(callable, args));
        stack_.push_back(std::move(result));
        return absl::OkStatus();
      }
      case 'b': {  // BUILD: only an OrderedDict's attributes (`_metadata`)
        ASSIGN_OR_RETURN(Value state, Pop());
        if (stack_.empty() || stack_.back().kind != Value::kDict) {
          return Bad("BUILD on something other than a dict");
        }
        if (state.kind != Value::kDict && state.kind != Value::kNone) {
          return Bad(absl::StrCat("BUILD state is a ", KindName(state.kind),
                                  ", expected a dict of attributes"));
        }
        return absl::OkStatus();
      }
      case '0':  // POP
        return Pop().status();
      default:
        return absl::UnimplementedError(
            "opcode is not in the state-dict subset this reader accepts");
    }
  }

  std::string path_;
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::vector<Value> stack_;
  std::map<uint64_t, Value> memo_;
  std::vector<std::shared_ptr<std::vector<Value>>> lists_;  // and tuples
  std::vector<std::shared_ptr<std::vector<std::pair<Value, Value>>>> dicts_;
};

}  // namespace

absl::StatusOr<WeightMap> ReadPth(const std::string& path,
                                  const KeyFilter& keep) {
  ASSIGN_OR_RETURN(std::shared_ptr<const MappedFile> file,
                   MappedFile::Open(path));
  ASSIGN_OR_RETURN(auto entries, ReadZipDirectory(*file));
  // torch.save names every record "<archive>/...": find data.pkl.
  std::string prefix;
  bool found = false;
  for (const auto& [name, entry] : entries) {
    const size_t slash = name.find('/');
    if (slash != std::string::npos && name.substr(slash + 1) == "data.pkl") {
      if (found) {
        return absl::DataLossError(
            absl::StrCat(path, ": more than one data.pkl in the archive"));
      }
      prefix = name.substr(0, slash + 1);
      found = true;
    }
  }
  if (!found) {
    return absl::DataLossError(absl::StrCat(
        path, ": no <archive>/data.pkl (not a torch.save zip archive?)"));
  }
  auto byteorder = entries.find(prefix + "byteorder");
  if (byteorder != entries.end()) {
    const std::string order(
        reinterpret_cast<const char*>(file->data()) + byteorder->second.data_offset,
        byteorder->second.size);
    if (order != "little") {
      return absl::UnimplementedError(absl::StrCat(
          path, ": byteorder \"", order, "\"; only little-endian is supported"));
    }
  }
  const ZipEntry& pkl = entries.at(prefix + "data.pkl");
  Unpickler unpickler(path, file->data() + pkl.data_offset, pkl.size);
  ASSIGN_OR_RETURN(Value top, unpickler.Run());
  if (top.kind != Value::kDict) {
    return absl::DataLossError(absl::StrCat(
        path, ": the pickled object is a ", KindName(top.kind),
        ", expected a state dict (dict of name to tensor)"));
  }
  WeightMap weights;
  for (const auto& [key, value] : *top.dict) {
    if (key.kind != Value::kString) {
      return absl::DataLossError(
          absl::StrCat(path, ": state dict key is a ", KindName(key.kind)));
    }
    if (value.kind != Value::kTensor) {
      return absl::DataLossError(absl::StrCat(path, ": state dict entry \"",
                                              key.s, "\" is a ",
                                              KindName(value.kind),
                                              ", expected a tensor"));
    }
    if (keep && !keep(key.s)) continue;
    const TensorRef& t = *value.tensor;
    // A plain reference: C++17 (and clang) do not let a lambda capture a
    // structured binding.
    const std::string& name = key.s;
    auto bad = [&path, &name](const std::string& detail) {
      return absl::DataLossError(
          absl::StrCat(path, ": tensor \"", name, "\": ", detail));
    };
    auto record = entries.find(prefix + "data/" + t.storage_key);
    if (record == entries.end()) {
      return bad(absl::StrCat("storage record data/", t.storage_key,
                              " is missing"));
    }
    const uint64_t element = c10::elementSize(t.dtype);
    // Divided, not multiplied: the pickle may hold any int64, and a product
    // that wraps past 2^64 would pass and map bytes beyond the record (and
    // the file).
    if (t.storage_numel < 0 ||
        static_cast<uint64_t>(t.storage_numel) >
            record->second.size / element) {
      return bad(absl::StrCat("storage of ", t.storage_numel,
                              " elements needs more than the record's ",
                              record->second.size, " bytes"));
    }
    // Elements the view reaches: offset + 1 + Σ (size-1)·stride, computed
    // without signed overflow (any that occurs reaches past the storage).
    bool empty = false, overflow = false;
    int64_t reach = 1;
    for (size_t d = 0; d < t.sizes.size(); ++d) {
      if (t.sizes[d] < 0 || t.strides[d] < 0) {
        return bad("negative size or stride");
      }
      if (t.sizes[d] == 0) empty = true;
      int64_t span = 0;
      overflow |= __builtin_mul_overflow(t.sizes[d] - 1, t.strides[d], &span) ||
                  __builtin_add_overflow(reach, span, &reach);
    }
    if (empty) reach = 0;
    int64_t end = 0;
    if (t.storage_offset < 0 || (overflow && !empty) ||
        __builtin_add_overflow(t.storage_offset, reach, &end) ||
        end > t.storage_numel) {
      return bad(absl::StrCat("view (offset ", t.storage_offset, ", ", reach,
                              " elements) reaches past its storage of ",
                              t.storage_numel, " elements"));
    }
    at::Tensor view;
    RETURN_IF_ERROR(CatchTorch(absl::StrCat(path, ": tensor \"", key.s, "\""),
                               [&] {
                                 view = TensorView(
                                     file,
                                     record->second.data_offset +
                                         t.storage_offset * element,
                                     reach * element, t.dtype, t.sizes,
                                     t.strides);
                               }));
    weights[key.s] = std::move(view);
  }
  return weights;
}

}  // namespace dserve::models::checkpoint
