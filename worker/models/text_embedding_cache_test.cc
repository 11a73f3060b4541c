#include "worker/models/text_embedding_cache.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "worker/models/cached_prompt_encoder.h"
#include "worker/models/prompt_encoder.h"
#include <ATen/ATen.h>

namespace dserve::models {
namespace {

constexpr int kLen = 4;
constexpr int kDim = 8;
// One [4, 8] fp32 row.
constexpr int64_t kRowBytes = kLen * kDim * 4;

TextEmbeddingKey Key(const std::string& text) {
  TextEmbeddingKey k;
  k.model = "m";
  k.encoder = "umt5";
  k.text = text;
  k.max_len = kLen;
  k.dtype = at::kFloat;
  k.device = "cpu";
  return k;
}

TextEmbedding Row(float value) {
  return {at::full({kLen, kDim}, value, at::kFloat), {}};
}

int64_t Bytes(const std::string& text) {
  return TextEmbeddingCache::EntryBytes(Key(text).Serialize(), Row(0));
}

TEST(TextEmbeddingCacheTest, EvictsLeastRecentlyUsedWithinTheByteBudget) {
  // Room for exactly three entries of the same size.
  TextEmbeddingCache cache(3 * Bytes("a"));
  ASSERT_TRUE(cache.Insert(Key("a"), Row(1)));
  ASSERT_TRUE(cache.Insert(Key("b"), Row(2)));
  ASSERT_TRUE(cache.Insert(Key("c"), Row(3)));
  EXPECT_EQ(cache.stats().bytes, 3 * Bytes("a"));
  // Touch "a": "b" is now the least recently used.
  ASSERT_TRUE(cache.Lookup(Key("a")).has_value());
  ASSERT_TRUE(cache.Insert(Key("d"), Row(4)));
  EXPECT_TRUE(cache.Contains(Key("a")));
  EXPECT_FALSE(cache.Contains(Key("b")));
  EXPECT_TRUE(cache.Contains(Key("c")));
  EXPECT_TRUE(cache.Contains(Key("d")));
  TextEmbeddingCacheStats s = cache.stats();
  EXPECT_EQ(s.entries, 3);
  EXPECT_EQ(s.evictions, 1);
  EXPECT_LE(s.bytes, s.capacity_bytes);
  // The value comes back as stored.
  auto c = cache.Lookup(Key("c"));
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(at::equal(c->embedding, Row(3).embedding));
  EXPECT_FALSE(cache.Lookup(Key("b")).has_value());
  s = cache.stats();
  EXPECT_EQ(s.hits, 2);
  EXPECT_EQ(s.misses, 1);
}

TEST(TextEmbeddingCacheTest, ByteBudgetCountsTensorBytesAndRefusesTooLarge) {
  EXPECT_EQ(Bytes("a"), kRowBytes + static_cast<int64_t>(
                                        Key("a").Serialize().size()));
  TextEmbeddingCache cache(Bytes("a") + Bytes("b") - 1);
  ASSERT_TRUE(cache.Insert(Key("a"), Row(1)));
  ASSERT_TRUE(cache.Insert(Key("b"), Row(2)));  // evicts "a"
  EXPECT_FALSE(cache.Contains(Key("a")));
  EXPECT_EQ(cache.stats().entries, 1);
  // Larger than the whole budget: refused, nothing evicted.
  TextEmbedding big{at::zeros({10 * kLen, kDim}, at::kFloat), {}};
  EXPECT_FALSE(cache.Insert(Key("big"), big));
  EXPECT_TRUE(cache.Contains(Key("b")));

  TextEmbeddingCache off(0);
  EXPECT_FALSE(off.Insert(Key("a"), Row(1)));
  EXPECT_FALSE(off.Insert(Key("a"), Row(1), /*pinned=*/true));
  EXPECT_EQ(off.stats().entries, 0);
}

TEST(TextEmbeddingCacheTest, PinnedEntryIsNeverEvicted) {
  // The pinned entry plus one unpinned one fit, not two.
  TextEmbeddingCache cache(3 * Bytes("a"));
  ASSERT_TRUE(cache.Insert(Key("neg"), Row(9), /*pinned=*/true));
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(cache.Insert(Key(std::string(1, 'a' + i)), Row(i)));
  }
  EXPECT_TRUE(cache.Contains(Key("neg")));
  EXPECT_TRUE(cache.Contains(Key("j")));
  EXPECT_FALSE(cache.Contains(Key("i")));
  TextEmbeddingCacheStats s = cache.stats();
  EXPECT_EQ(s.entries, 2);
  EXPECT_EQ(s.pinned_entries, 1);
  // An unpinned entry cannot take the pinned entry's room.
  TextEmbeddingCache tight(Bytes("a") + 10);
  ASSERT_TRUE(tight.Insert(Key("neg"), Row(9), /*pinned=*/true));
  EXPECT_FALSE(tight.Insert(Key("a"), Row(1)));
  EXPECT_TRUE(tight.Contains(Key("neg")));
  // Re-inserting a pinned key keeps it pinned.
  ASSERT_TRUE(cache.Insert(Key("neg"), Row(8)));
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(cache.Insert(Key(std::string(1, 'k' + i)), Row(i)));
  }
  auto neg = cache.Lookup(Key("neg"));
  ASSERT_TRUE(neg.has_value());
  EXPECT_TRUE(at::equal(neg->embedding, Row(8).embedding));
}

TEST(TextEmbeddingCacheTest, EveryKeyFieldSeparatesEntries) {
  TextEmbeddingCache cache(1 << 20);
  const TextEmbeddingKey base = Key("a cat");
  ASSERT_TRUE(cache.Insert(base, Row(1)));
  std::vector<TextEmbeddingKey> others(6, base);
  others[0].model = "m2";
  others[1].encoder = "word";
  others[2].text = "a cat ";  // raw text, not a cleaned form
  others[3].max_len = kLen + 1;
  others[4].dtype = at::kBFloat16;
  others[5].device = "cuda:0";
  for (const TextEmbeddingKey& k : others) {
    EXPECT_FALSE(cache.Contains(k)) << k.Serialize();
  }
  // Length prefixes: moving a character between fields is another key.
  TextEmbeddingKey shifted = base;
  shifted.model = "m|";
  shifted.encoder = "mt5";
  TextEmbeddingKey plain = base;
  plain.model = "m";
  plain.encoder = "|umt5";
  EXPECT_NE(shifted.Serialize(), plain.Serialize());
  EXPECT_TRUE(cache.Contains(base));
}

// Encodes each text as a row filled with its length; counts the texts it
// was asked for.
class CountingEncoder : public PromptEncoder {
 public:
  explicit CountingEncoder(std::vector<std::string>* seen) : seen_(seen) {}
  absl::StatusOr<PromptEncoding> Encode(
      const std::vector<std::string>& texts,
      const std::string& field) const override {
    PromptEncoding out;
    out.context = at::zeros({static_cast<int64_t>(texts.size()), kLen, kDim});
    for (size_t i = 0; i < texts.size(); ++i) {
      if (texts[i] == "bad") {
        return absl::InvalidArgumentError(field + " is bad");
      }
      seen_->push_back(texts[i]);
      out.context[static_cast<int64_t>(i)].fill_(
          static_cast<double>(texts[i].size()));
      out.unknown_words.push_back({texts[i] + "?"});
    }
    return out;
  }

 private:
  std::vector<std::string>* seen_;
};

TEST(CachingPromptEncoderTest, RepeatsSkipTheEncoderAndMatchIt) {
  std::vector<std::string> seen;
  auto cache = std::make_shared<TextEmbeddingCache>(1 << 20);
  TextEmbeddingKey identity = Key("");
  auto encoder = MakeCachingPromptEncoder(
      std::make_unique<CountingEncoder>(&seen), cache, identity,
      {"blurry"});
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  EXPECT_EQ(seen, std::vector<std::string>{"blurry"});  // pinned at build
  seen.clear();

  CountingEncoder reference(&seen);
  auto want = reference.Encode({"a", "bb", "a", "blurry"}, "prompt");
  ASSERT_TRUE(want.ok());
  seen.clear();

  auto first = (*encoder)->Encode({"a", "bb", "a", "blurry"}, "prompt");
  ASSERT_TRUE(first.ok()) << first.status();
  // The distinct misses, each alone, in order of first appearance.
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "bb"}));
  EXPECT_EQ(first->cache_misses, 2);
  EXPECT_EQ(first->cache_hits, 2);  // the repeated "a" and the pinned one
  EXPECT_TRUE(at::equal(first->context, want->context));
  EXPECT_EQ(first->unknown_words, want->unknown_words);

  seen.clear();
  auto second = (*encoder)->Encode({"bb", "a"}, "prompt");
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(seen.empty());
  EXPECT_EQ(second->cache_hits, 2);
  EXPECT_EQ(second->cache_misses, 0);
  EXPECT_TRUE(at::equal(second->context[0], want->context[1]));
  EXPECT_EQ(second->unknown_words[1], std::vector<std::string>{"a?"});
  // The result is a new tensor: writing to it does not reach the cache.
  second->context.fill_(-1);
  auto third = (*encoder)->Encode({"bb"}, "prompt");
  ASSERT_TRUE(third.ok());
  EXPECT_TRUE(at::equal(third->context[0], want->context[1]));

  // Errors are the inner encoder's; nothing is stored.
  auto bad = (*encoder)->Encode({"a", "bad"}, "negative_prompt");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "negative_prompt is bad");
  EXPECT_EQ(cache->stats().entries, 3);
  EXPECT_EQ(cache->stats().pinned_entries, 1);
}

}  // namespace
}  // namespace dserve::models
