#include "worker/models/text_embedding_cache.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include <c10/core/ScalarType.h>

namespace dserve::models {
namespace {

void AppendField(std::string& out, const std::string& field) {
  absl::StrAppend(&out, field.size(), ":", field, "|");
}

}  // namespace

std::string TextEmbeddingKey::Serialize() const {
  std::string out;
  AppendField(out, model);
  AppendField(out, encoder);
  AppendField(out, absl::StrCat(max_len));
  AppendField(out, c10::toString(dtype));
  AppendField(out, device);
  AppendField(out, text);
  return out;
}

TextEmbeddingCache::TextEmbeddingCache(int64_t capacity_bytes)
    : capacity_bytes_(capacity_bytes < 0 ? 0 : capacity_bytes) {
  stats_.capacity_bytes = capacity_bytes_;
}

int64_t TextEmbeddingCache::EntryBytes(const std::string& serialized_key,
                                       const TextEmbedding& value) {
  int64_t bytes = static_cast<int64_t>(serialized_key.size());
  if (value.embedding.defined()) bytes += value.embedding.nbytes();
  for (const std::string& w : value.unknown_words) {
    bytes += static_cast<int64_t>(w.size());
  }
  return bytes;
}

std::optional<TextEmbedding> TextEmbeddingCache::Lookup(
    const TextEmbeddingKey& key) {
  const std::string k = key.Serialize();
  const std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(k);
  if (it == index_.end()) {
    ++stats_.misses;
    return std::nullopt;
  }
  ++stats_.hits;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->value;
}

bool TextEmbeddingCache::Contains(const TextEmbeddingKey& key) const {
  const std::string k = key.Serialize();
  const std::lock_guard<std::mutex> lock(mu_);
  return index_.contains(k);
}

void TextEmbeddingCache::EraseLocked(List::iterator it) {
  stats_.bytes -= it->bytes;
  --stats_.entries;
  if (it->pinned) --stats_.pinned_entries;
  index_.erase(it->key);
  lru_.erase(it);
}

bool TextEmbeddingCache::Insert(const TextEmbeddingKey& key,
                                TextEmbedding value, bool pinned) {
  std::string k = key.Serialize();
  const int64_t bytes = EntryBytes(k, value);
  const std::lock_guard<std::mutex> lock(mu_);
  if (auto it = index_.find(k); it != index_.end()) {
    pinned = pinned || it->second->pinned;
    EraseLocked(it->second);
  }
  int64_t pinned_bytes = 0;
  for (const Entry& e : lru_) {
    if (e.pinned) pinned_bytes += e.bytes;
  }
  if (capacity_bytes_ == 0 ||
      (!pinned && bytes > capacity_bytes_ - pinned_bytes)) {
    return false;
  }
  // Evict from the least recently used end, skipping pinned entries.
  auto victim = lru_.end();
  while (stats_.bytes + bytes > capacity_bytes_ && victim != lru_.begin()) {
    --victim;
    if (victim->pinned) continue;
    auto erase = victim++;
    EraseLocked(erase);
    ++stats_.evictions;
  }
  lru_.push_front(Entry{k, std::move(value), bytes, pinned});
  index_.emplace(std::move(k), lru_.begin());
  stats_.bytes += bytes;
  ++stats_.entries;
  ++stats_.insertions;
  if (pinned) ++stats_.pinned_entries;
  return true;
}

TextEmbeddingCacheStats TextEmbeddingCache::stats() const {
  const std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace dserve::models
