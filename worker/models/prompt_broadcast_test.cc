// Text encoding once per replica, in 2 real processes over loopback Gloo:
// the pipeline of rank 0 encodes and broadcasts, the pipeline of rank 1
// receives and holds no text-encoder tensors, and both draw exactly the
// images of today's path, where every rank encodes for itself.

#include "worker/models/prompt_broadcast.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "parallel/gloo_communicator.h"
#include "parallel/testing/multiprocess.h"
#include "worker/models/model_config.h"
#include "worker/models/pipeline.h"
#include "worker/models/random_weights.h"
#include "worker/models/text_embedding_cache.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace dserve::models {
namespace {

constexpr int kWorld = 2;

PipelineConfig SmallConfig() {
  PipelineConfig c = DefaultModelConfig();
  c.dit.dim = 64;
  c.dit.num_heads = 4;
  c.dit.num_layers = 2;
  c.dit.ffn_dim = 128;
  return c;
}

GenerationSpec Spec() {
  GenerationSpec spec;
  spec.width = 32;
  spec.height = 32;
  spec.num_steps = 2;
  spec.flow_shift = 3.0f;
  // Batched, one item with the model's default negative prompt.
  spec.items = {{"a red circle on the left", "blue", 11, 4.5f},
                {"a green square", "", 12, 3.0f}};
  return spec;
}

struct Generated {
  at::Tensor pixels;
  int hits = 0;
  int misses = 0;
};

Generated Generate(const Pipeline& pipeline, const GenerationSpec& spec) {
  absl::StatusOr<DenoiseState> state = pipeline.Prepare(spec);
  EXPECT_TRUE(state.ok()) << state.status();
  if (!state.ok()) return {};
  for (int i = 0; i < spec.num_steps; ++i) {
    absl::Status s = pipeline.Step(*state);
    EXPECT_TRUE(s.ok()) << s;
  }
  return {pipeline.Decode(*state), state->text_cache_hits,
          state->text_cache_misses};
}

int TextEncoderTensors(const Pipeline& pipeline) {
  int n = 0;
  for (const auto& [key, tensor] : pipeline.weights()) {
    if (key.rfind("text_encoder.", 0) == 0) ++n;
  }
  return n;
}

std::unique_ptr<parallel::Communicator> Group(
    int rank, const c10::intrusive_ptr<c10d::Store>& store,
    const std::string& name) {
  auto group = parallel::CreateGlooCommunicator(store, name, rank, kWorld,
                                                std::chrono::seconds(30));
  EXPECT_TRUE(group.ok()) << group.status();
  return group.ok() ? *std::move(group) : nullptr;
}

TEST(PromptBroadcastTest, OneEncodingRankGivesTodaysImagesBitForBit) {
  absl::Status ran = parallel::testing::RunRanks(
      kWorld, [](int rank, int, c10::intrusive_ptr<c10d::Store> store) {
        at::set_num_threads(1);
        std::unique_ptr<parallel::Communicator> group =
            Group(rank, store, "prompts");
        ASSERT_NE(group, nullptr);
        const PipelineConfig config = SmallConfig();
        const WeightMap weights = RandomWeights(config, 21);

        // Today's path: this rank encodes for itself.
        auto today = Pipeline::Create(config, weights);
        ASSERT_TRUE(today.ok()) << today.status();
        ASSERT_GT(TextEncoderTensors(**today), 0);

        // The broadcast path without and with the embedding cache.
        PipelineOptions options;
        options.prompts.group = group.get();
        options.prompts.encoding_rank = 0;
        auto uncached = Pipeline::Create(config, weights, options);
        ASSERT_TRUE(uncached.ok()) << uncached.status();
        options.prompts.cache = std::make_shared<TextEmbeddingCache>(1 << 20);
        auto cached = Pipeline::Create(config, weights, options);
        ASSERT_TRUE(cached.ok()) << cached.status();
        for (const auto* p : {&uncached, &cached}) {
          EXPECT_EQ(TextEncoderTensors(***p),
                    rank == 0 ? TextEncoderTensors(**today) : 0);
        }

        // A batched plan: the same bits as today's path.
        const GenerationSpec spec = Spec();
        const Generated want = Generate(**today, spec);
        const Generated got = Generate(**uncached, spec);
        ASSERT_TRUE(got.pixels.defined());
        EXPECT_TRUE(at::equal(got.pixels, want.pixels)) << "rank " << rank;
        EXPECT_EQ(got.hits + got.misses, 0);

        // One item per plan (what a server runs unbatched), cold then
        // warm: the same bits as today's path; on rank 0 the default
        // negative prompt is a hit from the start (pinned).
        for (const GenerationItem& item : spec.items) {
          GenerationSpec one = spec;
          one.items = {item};
          const Generated today_one = Generate(**today, one);
          const Generated cold = Generate(**cached, one);
          const Generated warm = Generate(**cached, one);
          EXPECT_TRUE(at::equal(cold.pixels, today_one.pixels))
              << "rank " << rank << " cold, prompt " << item.prompt;
          EXPECT_TRUE(at::equal(warm.pixels, today_one.pixels))
              << "rank " << rank << " warm, prompt " << item.prompt;
          const bool default_negative = item.negative_prompt.empty();
          EXPECT_EQ(cold.hits, rank == 0 && default_negative ? 1 : 0);
          EXPECT_EQ(cold.misses, rank == 0 ? (default_negative ? 1 : 2) : 0);
          EXPECT_EQ(warm.hits, rank == 0 ? 2 : 0);
          EXPECT_EQ(warm.misses, 0);
        }
        // The batched plan from the cache: every text a hit, and (the word
        // encoder rounds a row by its batch; cached_prompt_encoder.h) within
        // fp32 rounding of today's.
        const Generated warm = Generate(**cached, spec);
        EXPECT_EQ(warm.hits, rank == 0 ? 4 : 0);
        EXPECT_LE((warm.pixels - want.pixels).abs().max().item<double>(),
                  1e-4);

        // Another prompt still reaches rank 1's DiT.
        GenerationSpec other = spec;
        other.items[0].prompt = "a blue square";
        const Generated changed = Generate(**uncached, other);
        EXPECT_FALSE(at::equal(changed.pixels, want.pixels));
        EXPECT_TRUE(
            at::equal(changed.pixels, Generate(**today, other).pixels));
      });
  EXPECT_TRUE(ran.ok()) << ran;
}

// Fails for one text, else a row filled with the text's length.
class FlakyEncoder : public PromptEncoder {
 public:
  absl::StatusOr<PromptEncoding> Encode(
      const std::vector<std::string>& texts,
      const std::string& field) const override {
    PromptEncoding out;
    out.context = at::zeros({static_cast<int64_t>(texts.size()), 3, 2});
    for (size_t i = 0; i < texts.size(); ++i) {
      if (texts[i] == "bad") {
        return absl::InvalidArgumentError(field + " says bad");
      }
      out.context[static_cast<int64_t>(i)].fill_(
          static_cast<double>(texts[i].size()));
    }
    out.unknown_words.resize(texts.size());
    return out;
  }
};

TEST(PromptBroadcastTest, EncoderErrorsReachEveryRankInLockstep) {
  absl::Status ran = parallel::testing::RunRanks(
      kWorld, [](int rank, int, c10::intrusive_ptr<c10d::Store> store) {
        std::unique_ptr<parallel::Communicator> group =
            Group(rank, store, "wire");
        ASSERT_NE(group, nullptr);
        PromptWire wire;
        wire.text_len = 3;
        wire.text_dim = 2;
        std::unique_ptr<PromptEncoder> encoder =
            rank == 0 ? MakeBroadcastingPromptEncoder(
                            std::make_unique<FlakyEncoder>(), *group, wire)
                      : MakeReceivingPromptEncoder(*group, wire);
        auto bad = encoder->Encode({"ok", "bad"}, "prompt");
        EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
        if (rank == 0) {
          EXPECT_EQ(bad.status().message(), "prompt says bad");
        }
        // Still in step: the next call works on both ranks.
        auto good = encoder->Encode({"ok", "four"}, "prompt");
        ASSERT_TRUE(good.ok()) << good.status();
        ASSERT_EQ(good->context.sizes(), at::IntArrayRef({2, 3, 2}));
        EXPECT_EQ(good->context[0][0][0].item<float>(), 2.0f);
        EXPECT_EQ(good->context[1][2][1].item<float>(), 4.0f);
        EXPECT_EQ(good->unknown_words.size(), 2u);
        // A receiver that expects another batch size says so (DATA_LOSS)
        // and the two sides stay matched for the data that follows.
        auto wrong = encoder->Encode(
            rank == 0 ? std::vector<std::string>{"a"}
                      : std::vector<std::string>{"a", "b"},
            "negative_prompt");
        if (rank == 1) {
          EXPECT_EQ(wrong.status().code(), absl::StatusCode::kDataLoss);
          // Drain the context rank 0 sent, to end the test cleanly.
          at::Tensor rest = at::empty({1, 3, 2});
          EXPECT_TRUE(group->Broadcast(rest, 0).ok());
        } else {
          EXPECT_TRUE(wrong.ok());
        }
      });
  EXPECT_TRUE(ran.ok()) << ran;
}

}  // namespace
}  // namespace dserve::models
