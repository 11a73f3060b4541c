#ifndef DSERVE_WORKER_MODELS_TEXT_EMBEDDING_CACHE_H_
#define DSERVE_WORKER_MODELS_TEXT_EMBEDDING_CACHE_H_

// An LRU cache of prompt embeddings, bounded by bytes, for the rank of a
// replica that runs the text encoder (prompt_broadcast.h): a repeated
// prompt skips the encoder (umT5-XXL: ~100 ms on a GPU, seconds on a CPU).
//
// Key: everything an embedding depends on inside one process: the model
// name, the encoder kind ("word", "umt5"), the RAW prompt text (each
// encoder's own cleaning is a fixed function of the raw text in a given
// build, so raw text + build is exact; nothing is persisted across builds),
// the encoder's max length in tokens, the compute dtype and the device.
// Two keys differing in any field never share an entry.
//
// Budget: bytes = the embedding tensor's nbytes + the key's and the unknown
// words' characters. Insert evicts least-recently-used unpinned entries until
// the total fits `capacity_bytes`; an entry larger than the room left beside
// the pinned ones is not stored. Pinned entries (a model's default negative
// prompt) count toward the total and are never evicted; a pinned entry is
// stored even when it alone exceeds the room left. capacity 0 stores
// nothing, pinned or not (the cache is off).
//
// Values are shared, refcounted tensors: callers must treat a looked-up
// embedding as read-only (CachingPromptEncoder copies rows into a new batch).
//
// Thread-safety: every method is thread-safe (one mutex; the critical
// sections only move list nodes and refcounts, never compute). Nothing
// blocks beyond that mutex.

#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

namespace dserve::models {

struct TextEmbeddingKey {
  std::string model;
  std::string encoder;
  std::string text;
  int max_len = 0;
  at::ScalarType dtype = at::kFloat;
  std::string device;

  // An unambiguous byte string of every field (length-prefixed).
  std::string Serialize() const;
};

struct TextEmbedding {
  // [text_len, text_dim], zero past the prompt's tokens.
  at::Tensor embedding;
  // Words the vocabulary did not know (word encoder only).
  std::vector<std::string> unknown_words;
};

struct TextEmbeddingCacheStats {
  int64_t hits = 0;
  int64_t misses = 0;
  int64_t insertions = 0;
  int64_t evictions = 0;
  int64_t entries = 0;
  int64_t pinned_entries = 0;
  int64_t bytes = 0;
  int64_t capacity_bytes = 0;
};

class TextEmbeddingCache {
 public:
  explicit TextEmbeddingCache(int64_t capacity_bytes);

  TextEmbeddingCache(const TextEmbeddingCache&) = delete;
  TextEmbeddingCache& operator=(const TextEmbeddingCache&) = delete;

  // The entry (now most recently used), counting a hit; nullopt counts a
  // miss.
  std::optional<TextEmbedding> Lookup(const TextEmbeddingKey& key);
  // Stores `value` under `key` (replacing an entry with that key) as the
  // most recently used entry; `pinned` entries are never evicted. Returns
  // false when the entry does not fit (see the budget above).
  bool Insert(const TextEmbeddingKey& key, TextEmbedding value,
              bool pinned = false);
  // True if `key` is cached (no hit/miss counted, order unchanged).
  bool Contains(const TextEmbeddingKey& key) const;

  TextEmbeddingCacheStats stats() const;
  int64_t capacity_bytes() const { return capacity_bytes_; }

  // What an entry costs against the budget.
  static int64_t EntryBytes(const std::string& serialized_key,
                            const TextEmbedding& value);

 private:
  struct Entry {
    std::string key;
    TextEmbedding value;
    int64_t bytes = 0;
    bool pinned = false;
  };
  using List = std::list<Entry>;

  void EraseLocked(List::iterator it);

  const int64_t capacity_bytes_;
  mutable std::mutex mu_;
  // Front = most recently used. Pinned entries live in the same list but
  // are skipped by eviction.
  List lru_;
  absl::flat_hash_map<std::string, List::iterator> index_;
  TextEmbeddingCacheStats stats_;
};

}  // namespace dserve::models

#endif  // DSERVE_WORKER_MODELS_TEXT_EMBEDDING_CACHE_H_
