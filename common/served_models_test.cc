#include "common/served_models.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::common {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string TempDir(const std::string& leaf) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::filesystem::path dir =
      std::filesystem::path(base != nullptr ? base : "/tmp") / leaf;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

void Touch(const std::string& path) { std::ofstream(path) << "{}"; }

std::vector<std::string> Names(const std::vector<ModelSpec>& models) {
  std::vector<std::string> names;
  for (const ModelSpec& m : models) names.push_back(m.name);
  return names;
}

TEST(ValidateModelNameTest, AllowsTheDocumentedCharsetAndLength) {
  for (const char* ok : {"a", "wan2.1-t2v_1.3B", "0x", "dserve-tiny-shapes"}) {
    EXPECT_TRUE(ValidateModelName(ok, "--model").ok()) << ok;
  }
  EXPECT_TRUE(ValidateModelName(std::string(64, 'm'), "--model").ok());
  for (const char* bad : {"", "-lead", ".hidden", "_x", "a b", "a/b", "a=b",
                          "caf\xc3\xa9"}) {
    absl::Status s = ValidateModelName(bad, "--model=X");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(s.message(), HasSubstr("--model=X")) << bad;
    EXPECT_THAT(s.message(), HasSubstr("A-Z a-z 0-9 . _ -")) << bad;
  }
  absl::Status long_name = ValidateModelName(std::string(65, 'm'), "--model");
  EXPECT_EQ(long_name.code(), absl::StatusCode::kInvalidArgument);
  // The echoed name is cut at 64 characters.
  absl::Status huge = ValidateModelName(std::string(1000, 'm'), "--model");
  EXPECT_THAT(huge.message(), HasSubstr("... (1000 bytes)"));
  EXPECT_LT(huge.message().size(), 300u);
}

TEST(ParseModelFlagTest, NameEqualsDirOrTheBuiltInAlone) {
  absl::StatusOr<ModelSpec> spec = ParseModelFlag("wan=/models/wan=2");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name, "wan");
  EXPECT_EQ(spec->dir, "/models/wan=2");  // Only the first '=' splits.
  EXPECT_EQ(spec->source, "--model=wan=/models/wan=2");

  spec = ParseModelFlag(kBuiltinModelName);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name, kBuiltinModelName);
  EXPECT_EQ(spec->dir, "");

  absl::Status bare = ParseModelFlag("wan").status();
  EXPECT_EQ(bare.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bare.message(), HasSubstr("--model=wan: expected NAME=DIR"));
  EXPECT_THAT(ParseModelFlag("wan=").status().message(),
              HasSubstr("--model=wan=: the directory after '=' is empty"));
  EXPECT_THAT(ParseModelFlag("=/models/wan").status().message(),
              HasSubstr("model name is empty"));
  EXPECT_THAT(ParseModelFlag("w a n=/d").status().message(),
              HasSubstr("model name \"w a n\" is not valid"));
}

TEST(ParseWorkerModelFlagTest, EmptyDirMeansTheBuiltInModel) {
  absl::StatusOr<ModelSpec> spec = ParseWorkerModelFlag("tiny=");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name, "tiny");
  EXPECT_EQ(spec->dir, "");
  spec = ParseWorkerModelFlag(FormatWorkerModelFlag({"wan", "/m/wan", ""}));
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name, "wan");
  EXPECT_EQ(spec->dir, "/m/wan");
  EXPECT_FALSE(ParseWorkerModelFlag("tiny").ok());
  EXPECT_FALSE(ParseWorkerModelFlag("a/b=/d").ok());
}

TEST(ScanModelRepositoryTest, EverySubfolderIsAModelSortedByName) {
  const std::string repo = TempDir("repo_scan");
  for (const char* d : {"wan-diffusers", "b", "wan", ".git", "lost+found"}) {
    std::filesystem::create_directories(repo + "/" + d);
  }
  Touch(repo + "/README.md");  // Files are not models.
  absl::StatusOr<std::vector<ModelSpec>> models = ScanModelRepository(repo);
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_THAT(Names(*models), ElementsAre("b", "wan", "wan-diffusers"));
  EXPECT_EQ((*models)[1].dir, repo + "/wan");
  EXPECT_EQ((*models)[1].source,
            "--model_repository=" + repo + " (subfolder wan)");
}

TEST(ScanModelRepositoryTest, BadFolderNamesMissingAndEmptyRepositories) {
  const std::string repo = TempDir("repo_bad");
  absl::Status empty = ScanModelRepository(repo).status();
  EXPECT_EQ(empty.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(empty.message(), HasSubstr("no model subfolders"));

  std::filesystem::create_directories(repo + "/has space");
  absl::Status bad = ScanModelRepository(repo).status();
  EXPECT_THAT(bad.message(),
              HasSubstr("--model_repository=" + repo + " (subfolder has space)"));
  EXPECT_THAT(bad.message(), HasSubstr("is not valid"));

  absl::Status missing = ScanModelRepository(repo + "/nope").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.message(), HasSubstr("/nope: not a folder"));
}

TEST(ResolveServedModelsTest, NothingGivenServesTheBuiltInModel) {
  absl::StatusOr<ServedModels> served = ResolveServedModels({});
  ASSERT_TRUE(served.ok()) << served.status();
  ASSERT_EQ(served->models.size(), 1u);
  EXPECT_EQ(served->models[0].name, kBuiltinModelName);
  EXPECT_EQ(served->models[0].dir, "");
  EXPECT_EQ(served->default_model, kBuiltinModelName);

  ModelFlags flags;
  flags.default_model = "wan";
  EXPECT_THAT(ResolveServedModels(flags).status().message(),
              HasSubstr("--default_model=wan is not a served model"));
}

TEST(ResolveServedModelsTest, ModelFlagsThenRepositoryFirstIsTheDefault) {
  const std::string repo = TempDir("repo_resolve");
  std::filesystem::create_directories(repo + "/wan");
  std::filesystem::create_directories(repo + "/diff");
  ModelFlags flags;
  flags.models = {std::string(kBuiltinModelName), "big=/models/big"};
  flags.model_repository = repo;
  absl::StatusOr<ServedModels> served = ResolveServedModels(flags);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_THAT(Names(served->models),
              ElementsAre(kBuiltinModelName, "big", "diff", "wan"));
  EXPECT_EQ(served->default_model, kBuiltinModelName);

  flags.default_model = "wan";
  served = ResolveServedModels(flags);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(served->default_model, "wan");

  flags.models = {};
  flags.default_model = "";
  served = ResolveServedModels(flags);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(served->default_model, "diff");  // First subfolder by name.

  flags.default_model = "nope";
  absl::Status s = ResolveServedModels(flags).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("--default_model=nope is not a served "
                                     "model (served: diff, wan)"));
}

TEST(ResolveServedModelsTest, DuplicateNamesNameBothSources) {
  const std::string repo = TempDir("repo_dup");
  std::filesystem::create_directories(repo + "/wan");
  ModelFlags flags;
  flags.models = {"wan=/models/wan"};
  flags.model_repository = repo;
  absl::Status s = ResolveServedModels(flags).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("(subfolder wan): model \"wan\" is "
                                     "served twice (also --model=wan=/models/"
                                     "wan)"));
  flags.model_repository = "";
  flags.models = {"a=/x", "a=/y"};
  EXPECT_THAT(ResolveServedModels(flags).status().message(),
              HasSubstr("--model=a=/y: model \"a\" is served twice"));
}

TEST(ResolveServedModelsTest, ModelDirIsTheSingleModelForm) {
  ModelFlags flags;
  flags.model_dir = "/models/one";
  absl::StatusOr<ServedModels> served = ResolveServedModels(flags);
  ASSERT_TRUE(served.ok()) << served.status();
  ASSERT_EQ(served->models.size(), 1u);
  EXPECT_EQ(served->models[0].name, "");  // The config's own name.
  EXPECT_EQ(served->models[0].dir, "/models/one");
  EXPECT_EQ(served->default_model, "");

  flags.models = {"a=/x"};
  EXPECT_THAT(ResolveServedModels(flags).status().message(),
              HasSubstr("cannot be combined with --model or "
                        "--model_repository"));
  flags.models = {};
  flags.default_model = "one";
  EXPECT_THAT(ResolveServedModels(flags).status().message(),
              HasSubstr("--default_model=one needs --model"));
}

TEST(CheckModelDirectoryTest, NeedsConfigOrModelIndex) {
  const std::string dir = TempDir("model_dir_check");
  absl::Status missing = CheckModelDirectory(dir, "--model=wan=" + dir);
  EXPECT_EQ(missing.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.message(), HasSubstr("--model=wan=" + dir +
                                           ": the model's weights are "
                                           "missing (no " +
                                           dir + "/config.json"));
  Touch(dir + "/model_index.json");
  EXPECT_TRUE(CheckModelDirectory(dir, "--model=wan").ok());
}

TEST(CheckModelListTest, WorkerSideChecks) {
  EXPECT_TRUE(CheckModelList({{"a", "", ""}, {"b", "/d", ""}}, "b").ok());
  EXPECT_TRUE(CheckModelList({{"a", "", ""}}, "").ok());
  EXPECT_THAT(CheckModelList({{"a", "", ""}, {"a", "/d", ""}}, "").message(),
              HasSubstr("served twice"));
  EXPECT_THAT(CheckModelList({{"a", "", ""}}, "c").message(),
              HasSubstr("--default_model=c is not a served model (served: a)"));
}

}  // namespace
}  // namespace dserve::common
