#include "worker/models/text/prompt_clean.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>

namespace dserve::models {
namespace {

struct NamedEntity {
  const char* name;
  const char32_t* value;
};
struct CodepointMap {
  char32_t cp;
  const char32_t* value;
};
struct CombiningRange {
  char32_t first;
  char32_t last;
  int ccc;
};
struct Composition {
  char32_t first;
  char32_t second;
  char32_t composite;
};

#include "worker/models/text/text_tables.inc"

constexpr char32_t kReplacement = 0xFFFD;

// ---- table lookups ------------------------------------------------------

template <size_t N>
const char32_t* FindMapped(const CodepointMap (&table)[N], char32_t cp) {
  auto it = std::lower_bound(
      std::begin(table), std::end(table), cp,
      [](const CodepointMap& e, char32_t c) { return e.cp < c; });
  return (it != std::end(table) && it->cp == cp) ? it->value : nullptr;
}

template <size_t N>
const char32_t* FindEntity(const NamedEntity (&table)[N],
                           const std::string& name) {
  auto it = std::lower_bound(std::begin(table), std::end(table), name,
                             [](const NamedEntity& e, const std::string& n) {
                               return std::strcmp(e.name, n.c_str()) < 0;
                             });
  return (it != std::end(table) && name == it->name) ? it->value : nullptr;
}

// `text` as an ASCII string, or nullopt when it has another code point
// (no entity name has one).
std::optional<std::string> AsAscii(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) {
    if (c >= 0x80) return std::nullopt;
    out.push_back(static_cast<char>(c));
  }
  return out;
}

const char32_t* FindHtml5(std::u32string_view name) {
  std::optional<std::string> ascii = AsAscii(name);
  return ascii ? FindEntity(kHtml5Entities, *ascii) : nullptr;
}

bool IsPythonSpace(char32_t c) {
  return std::binary_search(std::begin(kPythonWhitespace),
                            std::end(kPythonWhitespace), c);
}

bool IsAsciiDigit(char32_t c) { return c >= '0' && c <= '9'; }
bool IsAsciiAlnum(char32_t c) {
  return IsAsciiDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
int HexValue(char32_t c) {
  if (IsAsciiDigit(c)) return static_cast<int>(c - '0');
  if (c >= 'a' && c <= 'f') return static_cast<int>(c - 'a' + 10);
  if (c >= 'A' && c <= 'F') return static_cast<int>(c - 'A' + 10);
  return -1;
}

// ---- html.unescape ------------------------------------------------------

// Python's html._replace_charref for a numeric reference; `num` saturates at
// 0x110000 (anything larger behaves the same: U+FFFD).
std::u32string NumericCharref(uint32_t num) {
  for (const CodepointMap& e : kHtmlInvalidCharrefs) {
    if (e.cp == num) return e.value;
  }
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
    return std::u32string(1, kReplacement);
  }
  if (std::binary_search(std::begin(kHtmlInvalidCodepoints),
                         std::end(kHtmlInvalidCodepoints),
                         static_cast<char32_t>(num))) {
    return U"";
  }
  return std::u32string(1, static_cast<char32_t>(num));
}

// Tries html.unescape's `_charref` regex at text[i] == '&':
//   &(#[0-9]+;? | #[xX][0-9a-fA-F]+;? | [^\t\n\f <&#;]{1,32};?)
// On a match appends the replacement to `out` and returns the index after
// the match; otherwise returns i.
size_t UnescapeOne(std::u32string_view s, size_t i, std::u32string& out) {
  const size_t n = s.size();
  size_t j = i + 1;
  if (j < n && s[j] == '#') {
    size_t k = j + 1;
    int base = 10;
    if (k < n && IsAsciiDigit(s[k])) {
      base = 10;
    } else if (k + 1 < n && (s[k] == 'x' || s[k] == 'X') &&
               HexValue(s[k + 1]) >= 0) {
      base = 16;
      ++k;
    } else {
      return i;
    }
    uint32_t num = 0;
    while (k < n && (base == 10 ? IsAsciiDigit(s[k]) : HexValue(s[k]) >= 0)) {
      const uint32_t d = static_cast<uint32_t>(HexValue(s[k]));
      num = std::min<uint64_t>(0x110000, uint64_t{num} * base + d);
      ++k;
    }
    if (k < n && s[k] == ';') ++k;
    out += NumericCharref(num);
    return k;
  }
  size_t k = j;
  while (k < n && k - j < 32 && s[k] != '\t' && s[k] != '\n' &&
         s[k] != '\f' && s[k] != ' ' && s[k] != '<' && s[k] != '&' &&
         s[k] != '#' && s[k] != ';') {
    ++k;
  }
  if (k == j) return i;
  if (k < n && s[k] == ';') ++k;
  const std::u32string_view name = s.substr(j, k - j);
  if (const char32_t* v = FindHtml5(name)) {
    out += v;
    return k;
  }
  // The longest prefix (of at least 2 characters) that is an entity name.
  for (size_t x = name.size() - 1; x >= 2 && x < name.size(); --x) {
    if (const char32_t* v = FindHtml5(name.substr(0, x))) {
      out += v;
      out += name.substr(x);
      return k;
    }
  }
  out += U'&';
  out += name;
  return k;
}

// ---- ftfy fixers --------------------------------------------------------

// ftfy.fixes.unescape_html: `&#?[0-9A-Za-z]{1,24};`.
std::u32string FtfyUnescapeHtml(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != '&') {
      out += s[i++];
      continue;
    }
    const bool numeric = i + 1 < s.size() && s[i + 1] == '#';
    const size_t start = i + 1 + (numeric ? 1 : 0);
    size_t k = start;
    while (k < s.size() && k - start < 25 && IsAsciiAlnum(s[k])) ++k;
    const size_t run = k - start;
    if (run < 1 || run > 24 || k >= s.size() || s[k] != ';') {
      out += s[i++];
      continue;
    }
    const std::u32string_view match = s.substr(i, k + 1 - i);
    const size_t end = k + 1;
    if (!numeric) {
      // All ASCII by construction; html5 name includes the ';'.
      const std::string name = *AsAscii(match.substr(1));
      const char32_t* v = FindEntity(kHtml5Entities, name);
      if (v == nullptr) v = FindEntity(kFtfyUpperEntities, name);
      if (v != nullptr) {
        out += v;
      } else {
        out += match;
      }
    } else {
      const std::u32string decoded = HtmlUnescape(match);
      if (decoded.find(U';') != std::u32string::npos) {
        out += match;
      } else {
        out += decoded;
      }
    }
    i = end;
  }
  return out;
}

// The per-character fixers 2-6 and 8 of the header, in ftfy's order. Each
// is a translate() over the output of the one before, so they compose
// per character except fix_line_breaks' "\r\n" and the terminal escapes,
// handled in FixSegmentOnce.
void AppendTranslated(char32_t c, std::u32string& out) {
  // fix_c1_controls.
  if (c >= 0x80 && c <= 0x9F) c = kC1Map[c - 0x80];
  // fix_latin_ligatures, then fix_character_width on its result.
  std::u32string step;
  if (const char32_t* v = FindMapped(kLigatures, c)) {
    step = v;
  } else {
    step.assign(1, c);
  }
  for (char32_t d : step) {
    if (const char32_t* v = FindMapped(kWidthMap, d)) {
      out += v;
    } else {
      out += d;
    }
  }
}

char32_t UncurlQuote(char32_t c) {
  if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) return U'\'';
  if (c >= 0x201C && c <= 0x201F) return U'"';
  return c;
}

bool IsFtfyControl(char32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
         (c >= 0x206A && c <= 0x206F) || c == 0xFEFF ||
         (c >= 0xFFF9 && c <= 0xFFFC);
}

std::u32string FixLineBreaks(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char32_t c = s[i];
    if (c == '\r') {
      out += U'\n';
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
    } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
      out += U'\n';
    } else {
      out += c;
    }
  }
  return out;
}

// ANSI_RE = "\033\[((?:\d|;)*)([a-zA-Z])"; Python's \d is any Unicode
// decimal digit, but a run of them is only removed when it ends in an ASCII
// letter, so ASCII digits cover every prompt that is not adversarial.
std::u32string RemoveTerminalEscapes(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == 0x1B && i + 1 < s.size() && s[i + 1] == '[') {
      size_t k = i + 2;
      while (k < s.size() && (IsAsciiDigit(s[k]) || s[k] == ';')) ++k;
      if (k < s.size() && ((s[k] >= 'a' && s[k] <= 'z') ||
                           (s[k] >= 'A' && s[k] <= 'Z'))) {
        i = k + 1;
        continue;
      }
    }
    out += s[i++];
  }
  return out;
}

std::u32string FixSegmentOnce(std::u32string_view segment, bool unescape) {
  std::u32string text(segment);
  if (unescape) text = FtfyUnescapeHtml(text);
  std::u32string translated;
  translated.reserve(text.size());
  for (char32_t c : text) AppendTranslated(c, translated);
  for (char32_t& c : translated) c = UncurlQuote(c);
  text = RemoveTerminalEscapes(FixLineBreaks(translated));
  text.erase(std::remove_if(text.begin(), text.end(), IsFtfyControl),
             text.end());
  return NormalizeNfc(text);
}

// ---- NFC ----------------------------------------------------------------

constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161,
                   kTBase = 0x11A7;
constexpr int kLCount = 19, kVCount = 21, kTCount = 28,
              kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

int CombiningClass(char32_t c) {
  if (c < 0x300) return 0;
  auto it = std::upper_bound(
      std::begin(kCombiningClasses), std::end(kCombiningClasses), c,
      [](char32_t v, const CombiningRange& r) { return v < r.first; });
  if (it == std::begin(kCombiningClasses)) return 0;
  --it;
  return c <= it->last ? it->ccc : 0;
}

void AppendDecomposed(char32_t c, std::u32string& out) {
  if (c >= kSBase && c < kSBase + kSCount) {
    const int s = static_cast<int>(c - kSBase);
    out += static_cast<char32_t>(kLBase + s / kNCount);
    out += static_cast<char32_t>(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out += static_cast<char32_t>(kTBase + s % kTCount);
    return;
  }
  if (c >= 0xC0) {
    if (const char32_t* v = FindMapped(kCanonicalDecomposition, c)) {
      out += v;
      return;
    }
  }
  out += c;
}

// The primary composite of (a, b), or 0.
char32_t Compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase &&
      b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 &&
      b > kTBase && b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  auto it = std::lower_bound(
      std::begin(kCompositions), std::end(kCompositions), std::make_pair(a, b),
      [](const Composition& e, const std::pair<char32_t, char32_t>& k) {
        return e.first < k.first || (e.first == k.first && e.second < k.second);
      });
  if (it != std::end(kCompositions) && it->first == a && it->second == b) {
    return it->composite;
  }
  return 0;
}

}  // namespace

std::u32string NormalizeNfc(std::u32string_view text) {
  // Fast path: below U+0300 nothing decomposes or combines.
  if (std::all_of(text.begin(), text.end(),
                  [](char32_t c) { return c < 0xC0; })) {
    return std::u32string(text);
  }
  std::u32string d;
  d.reserve(text.size() + 8);
  for (char32_t c : text) AppendDecomposed(c, d);
  // Canonical ordering: stable sort of each run of non-starters by class.
  for (size_t i = 0; i < d.size();) {
    if (CombiningClass(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && CombiningClass(d[j]) != 0) ++j;
    std::stable_sort(d.begin() + i, d.begin() + j, [](char32_t a, char32_t b) {
      return CombiningClass(a) < CombiningClass(b);
    });
    i = j;
  }
  // Canonical composition (UAX #15): a character composes with the last
  // starter unless a character between them blocks it.
  std::u32string out;
  out.reserve(d.size());
  size_t starter = std::u32string::npos;
  int last_class = 256;
  for (char32_t c : d) {
    const int cc = CombiningClass(c);
    if (starter != std::u32string::npos && (last_class < cc || last_class == 0)) {
      if (char32_t composite = Compose(out[starter], c)) {
        out[starter] = composite;
        continue;
      }
    }
    if (cc == 0) starter = out.size();
    last_class = cc;
    out += c;
  }
  return out;
}

std::u32string HtmlUnescape(std::u32string_view text) {
  if (text.find(U'&') == std::u32string_view::npos) {
    return std::u32string(text);
  }
  std::u32string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '&') {
      const size_t next = UnescapeOne(text, i, out);
      if (next != i) {
        i = next;
        continue;
      }
    }
    out += text[i++];
  }
  return out;
}

std::u32string FixTextSubset(std::u32string_view text) {
  constexpr size_t kMaxDecodeLength = 1000000;
  std::u32string out;
  out.reserve(text.size());
  bool unescape = true;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(U'\n', pos);
    end = end == std::u32string_view::npos ? text.size() : end + 1;
    end = std::min(end, pos + kMaxDecodeLength);
    std::u32string segment(text.substr(pos, end - pos));
    if (segment.find(U'<') != std::u32string::npos) unescape = false;
    while (true) {
      std::u32string fixed = FixSegmentOnce(segment, unescape);
      if (fixed == segment) break;
      segment = std::move(fixed);
    }
    out += segment;
    pos = end;
  }
  return out;
}

std::u32string CollapseWhitespace(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (char32_t c : text) {
    if (IsPythonSpace(c)) {
      pending_space = true;
      continue;
    }
    if (pending_space && !out.empty()) out += U' ';
    pending_space = false;
    out += c;
  }
  return out;
}

std::string CleanPrompt(std::string_view utf8) {
  std::u32string text = FixTextSubset(DecodeUtf8(utf8));
  text = HtmlUnescape(HtmlUnescape(text));
  // basic_clean's strip() is subsumed: collapsing then stripping removes
  // the same leading/trailing whitespace.
  return EncodeUtf8(CollapseWhitespace(text));
}

std::u32string DecodeUtf8(std::string_view utf8) {
  std::u32string out;
  out.reserve(utf8.size());
  const size_t n = utf8.size();
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<uint8_t>(utf8[k]); };
  while (i < n) {
    const uint8_t b = byte(i);
    if (b < 0x80) {
      out += static_cast<char32_t>(b);
      ++i;
      continue;
    }
    int need = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    char32_t cp = 0;
    if (b >= 0xC2 && b <= 0xDF) {
      need = 1;
      cp = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
      need = 2;
      cp = b & 0x0F;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      need = 3;
      cp = b & 0x07;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    } else {
      out += kReplacement;
      ++i;
      continue;
    }
    // The maximal well-formed prefix; one U+FFFD for an incomplete one.
    size_t k = i + 1;
    bool ok = true;
    for (int m = 0; m < need; ++m, ++k) {
      const uint8_t lower = m == 0 ? lo : 0x80, upper = m == 0 ? hi : 0xBF;
      if (k >= n || byte(k) < lower || byte(k) > upper) {
        ok = false;
        break;
      }
      cp = (cp << 6) | (byte(k) & 0x3F);
    }
    out += ok ? cp : kReplacement;
    i = k;
  }
  return out;
}

std::string EncodeUtf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) {
    if ((c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF) c = kReplacement;
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xE0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (c >> 18));
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

const char* PromptCleanUnicodeVersion() { return kUnicodeVersion; }

}  // namespace dserve::models
