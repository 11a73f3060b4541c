// The dserve CLI against the real server: generate writes a valid PNG of the
// requested size and prints the seed; a bad request exits with the
// documented code for its status (clients/cli_status.h); the job commands
// work end to end; a video request writes an MP4 that ffprobe reads back
// (--out clip.mp4 or --format mp4) and a multi-frame PNG request numbered
// PNGs, never PNG bytes under an .mp4 name.

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/png.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"
#include "tests/testing/subprocess.h"

namespace dserve::tests {
namespace {

using ::testing::HasSubstr;

// Exit codes from the table in clients/cli_status.h.
constexpr int kExitOk = 0;
constexpr int kExitUsage = 1;
constexpr int kExitInvalidArgument = 13;
constexpr int kExitNotFound = 15;
constexpr int kExitUnavailable = 24;

constexpr absl::Duration kCliTimeout = absl::Seconds(120);

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream data;
  data << file.rdbuf();
  return data.str();
}

bool Exists(const std::string& path) { return std::ifstream(path).good(); }

// ffprobe's view of the first video stream of `path`: codec_name, width,
// height, pix_fmt, r_frame_rate and nb_read_frames (frames decoded), or an
// empty map (and a test failure) when ffprobe cannot read it.
std::map<std::string, std::string> Probe(const std::string& path) {
  absl::StatusOr<CapturedRun> run = RunAndCapture(
      {"/usr/bin/ffprobe", "-v", "error", "-select_streams", "v:0",
       "-count_frames", "-show_entries",
       "stream=codec_name,width,height,pix_fmt,r_frame_rate,nb_read_frames",
       "-of", "default=noprint_wrappers=1", path},
      absl::Seconds(30));
  EXPECT_TRUE(run.ok()) << run.status();
  if (!run.ok()) return {};
  EXPECT_EQ(run->exit_code, 0) << "ffprobe " << path << ": "
                               << run->stderr_text;
  std::map<std::string, std::string> fields;
  for (absl::string_view line : absl::StrSplit(run->stdout_text, '\n')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, '=');
    if (!kv.first.empty()) fields[kv.first] = kv.second;
  }
  return fields;
}

ServerProcess* server = nullptr;

class ServerEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto started = ServerProcess::Start(ServerProcess::Options());
    ASSERT_TRUE(started.ok()) << started.status();
    server = started->release();
  }
  void TearDown() override {
    if (server == nullptr) return;
    absl::StatusOr<int> code = server->Stop();
    EXPECT_TRUE(code.ok()) << code.status();
    if (code.ok()) {
      EXPECT_EQ(*code, 0) << "server exit code after SIGTERM";
    }
    delete server;
    server = nullptr;
  }
};

::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new ServerEnvironment);

class CliE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(server, nullptr) << "server did not start";
    absl::StatusOr<std::string> cli = RunfilePath("clients/dserve");
    ASSERT_TRUE(cli.ok()) << cli.status();
    cli_ = *cli;
  }

  // Runs `dserve --server=<test server> --progress=false <args...>`.
  CapturedRun Run(const std::vector<std::string>& args,
                  const std::string& server_address = "") {
    std::vector<std::string> argv = {
        cli_,
        "--server=" +
            (server_address.empty() ? server->address() : server_address),
        "--timeout_s=100"};
    argv.insert(argv.end(), args.begin(), args.end());
    absl::StatusOr<CapturedRun> run = RunAndCapture(argv, kCliTimeout);
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? *run : CapturedRun();
  }

  std::string cli_;
};

TEST_F(CliE2eTest, GenerateWritesPngAndPrintsSeed) {
  const std::string out = TestTempDir() + "/cli_generate.png";
  const CapturedRun run =
      Run({"generate", "--prompt", "a red circle", "--width", "64",
           "--height", "32", "--steps", "2", "--guidance", "1", "--seed", "77",
           "--out", out});
  ASSERT_EQ(run.exit_code, kExitOk) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("seed: 77\n"));
  EXPECT_THAT(run.stdout_text, HasSubstr("timings: "));
  EXPECT_THAT(run.stdout_text, HasSubstr("wrote: " + out + "\n"));
  absl::StatusOr<common::DecodedImage> png = common::DecodePng(ReadFile(out));
  ASSERT_TRUE(png.ok()) << png.status();
  EXPECT_EQ(png->width, 64);
  EXPECT_EQ(png->height, 32);
}

// `--cache=fast` sends the preset's step cache; the server reuses steps and
// the CLI prints the counts (issue 15).
TEST_F(CliE2eTest, CachePresetReusesStepsAndPrintsTheCounts) {
  const std::string out = TestTempDir() + "/cli_cached.png";
  const CapturedRun run =
      Run({"generate", "--prompt", "a red circle", "--width", "32",
           "--height", "32", "--steps", "20", "--seed", "5", "--cache",
           "fast", "--out", out});
  ASSERT_EQ(run.exit_code, kExitOk) << run.stderr_text;
  int computed = -1;
  int reused = -1;
  const size_t at = run.stdout_text.find("steps computed ");
  ASSERT_NE(at, std::string::npos) << run.stdout_text;
  ASSERT_EQ(std::sscanf(run.stdout_text.c_str() + at,
                        "steps computed %d, reused %d", &computed, &reused),
            2)
      << run.stdout_text;
  EXPECT_EQ(computed + reused, 20);
  EXPECT_GT(reused, 0) << run.stdout_text;
  EXPECT_EQ(Run({"generate", "--prompt", "x", "--cache", "fastest"})
                .exit_code,
            kExitUsage);
}

// The bar is for a person at a terminal: with stderr captured (a pipe, as
// here, or a log file) the CLI draws none, on either stream. The bar's own
// rendering is tested in clients/progress_bar_test.
TEST_F(CliE2eTest, NoProgressBarWhenStderrIsNotATerminal) {
  const std::string out = TestTempDir() + "/cli_progress.png";
  std::vector<std::string> argv = {
      cli_,        "--server=" + server->address(),
      "generate",  "--prompt=a blue square",
      "--width=32", "--height=32",
      "--steps=3", "--seed=5",
      "--out=" + out};
  absl::StatusOr<CapturedRun> run = RunAndCapture(argv, kCliTimeout);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->exit_code, kExitOk) << run->stderr_text;
  EXPECT_THAT(run->stderr_text, ::testing::Not(HasSubstr("100%")));
  EXPECT_THAT(run->stderr_text, ::testing::Not(HasSubstr("\r")));
  EXPECT_THAT(run->stdout_text, ::testing::Not(HasSubstr("\r")));
  EXPECT_THAT(run->stdout_text, HasSubstr("wrote:"));
}

TEST_F(CliE2eTest, BadRequestExitsWithInvalidArgumentCode) {
  const std::string out = TestTempDir() + "/cli_bad.png";
  const CapturedRun run = Run({"generate", "--prompt", "x", "--steps=-1",
                               "--out", out});
  EXPECT_EQ(run.exit_code, kExitInvalidArgument) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(run.stderr_text, HasSubstr("num_inference_steps"));
  std::ifstream absent(out);
  EXPECT_FALSE(absent.good()) << "no file may be written for a refused request";
}

TEST_F(CliE2eTest, UnknownJobAndUnreachableServerAndUsage) {
  EXPECT_EQ(Run({"status", "no-such-job"}).exit_code, kExitNotFound);
  // Port 1 on loopback: nothing listens there.
  EXPECT_EQ(Run({"info"}, "127.0.0.1:1").exit_code, kExitUnavailable);
  EXPECT_EQ(Run({"frobnicate"}).exit_code, kExitUsage);
  EXPECT_EQ(Run({"generate", "--prompt", "x"}).exit_code, kExitUsage);
  EXPECT_EQ(Run({"generate", "--prompt", "x", "--out", "/tmp/x.png",
                 "--guidance", "lots"})
                .exit_code,
            kExitUsage);
}

TEST_F(CliE2eTest, SubmitWatchStatusAndListJobs) {
  const CapturedRun submitted =
      Run({"submit", "--prompt", "a green tree", "--width", "32", "--height",
           "32", "--steps", "2", "--seed", "9"});
  ASSERT_EQ(submitted.exit_code, kExitOk) << submitted.stderr_text;
  ASSERT_THAT(submitted.stdout_text, ::testing::StartsWith("job_id: "));
  std::string job_id = submitted.stdout_text.substr(8);
  job_id = job_id.substr(0, job_id.find('\n'));
  ASSERT_FALSE(job_id.empty());

  const std::string out = TestTempDir() + "/cli_watch.png";
  const CapturedRun watched = Run({"watch", job_id, "--out", out});
  ASSERT_EQ(watched.exit_code, kExitOk) << watched.stderr_text;
  EXPECT_THAT(watched.stdout_text, HasSubstr("seed: 9\n"));
  absl::StatusOr<common::DecodedImage> png = common::DecodePng(ReadFile(out));
  ASSERT_TRUE(png.ok()) << png.status();
  EXPECT_EQ(png->width, 32);

  const CapturedRun status = Run({"status", job_id});
  ASSERT_EQ(status.exit_code, kExitOk) << status.stderr_text;
  EXPECT_THAT(status.stdout_text, HasSubstr("state: succeeded\n"));

  const CapturedRun listed = Run({"jobs", "--state", "succeeded"});
  ASSERT_EQ(listed.exit_code, kExitOk) << listed.stderr_text;
  EXPECT_THAT(listed.stdout_text, HasSubstr(job_id));

  EXPECT_EQ(Run({"jobs", "--state", "nonsense"}).exit_code, kExitUsage);

  const CapturedRun info = Run({"info"});
  ASSERT_EQ(info.exit_code, kExitOk) << info.stderr_text;
  EXPECT_THAT(info.stdout_text, HasSubstr("replica 0: "));
  EXPECT_THAT(info.stdout_text, HasSubstr("replica 1: "));
  const CapturedRun models = Run({"models"});
  ASSERT_EQ(models.exit_code, kExitOk) << models.stderr_text;
  EXPECT_THAT(models.stdout_text, HasSubstr("(default)"));
}

// --out clip.mp4 asks for an MP4: one H.264 file of the requested frames,
// size and fps, and the CLI says what it wrote. --format mp4 asks the same
// whatever the file is called.
TEST_F(CliE2eTest, VideoRequestWritesAnMp4ThatFfprobeReads) {
  const std::string dir = TestTempDir();
  struct Case {
    std::vector<std::string> args;
    std::string out;
  };
  const Case cases[] = {
      {{"--out", dir + "/clip.mp4"}, dir + "/clip.mp4"},
      {{"--format", "mp4", "--out", dir + "/clip.video"}, dir + "/clip.video"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.out);
    std::vector<std::string> args = {
        "generate", "--prompt", "a red circle moving right", "--width", "48",
        "--height", "32", "--frames", "5", "--steps", "2", "--seed", "21",
        "--fps", "8"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const CapturedRun run = Run(args);
    ASSERT_EQ(run.exit_code, kExitOk) << run.stderr_text;
    EXPECT_THAT(run.stdout_text, HasSubstr("wrote: " + c.out + "\n"));
    EXPECT_THAT(run.stdout_text,
                HasSubstr("video: 5 frames at 8 fps, 48x32, H.264 in MP4\n"));
    const std::string mp4 = ReadFile(c.out);
    ASSERT_GT(mp4.size(), 8u);
    EXPECT_EQ(mp4.substr(4, 4), "ftyp") << "an MP4 starts with its ftyp box";
    const std::map<std::string, std::string> probe = Probe(c.out);
    EXPECT_EQ(probe.count("codec_name") ? probe.at("codec_name") : "", "h264");
    EXPECT_EQ(probe.count("width") ? probe.at("width") : "", "48");
    EXPECT_EQ(probe.count("height") ? probe.at("height") : "", "32");
    EXPECT_EQ(probe.count("pix_fmt") ? probe.at("pix_fmt") : "", "yuv420p");
    EXPECT_EQ(probe.count("r_frame_rate") ? probe.at("r_frame_rate") : "",
              "8/1");
    EXPECT_EQ(probe.count("nb_read_frames") ? probe.at("nb_read_frames") : "",
              "5");
    // One file: no numbered per-frame files beside it.
    EXPECT_FALSE(Exists(dir + "/clip_0000.mp4"));
    EXPECT_FALSE(Exists(dir + "/clip_0000.video"));
  }
}

// Several PNG frames are numbered files; PNG bytes never land under an .mp4
// name (asking for PNG into x.mp4 fails and writes nothing).
TEST_F(CliE2eTest, MultiFramePngWritesNumberedPngsNeverAnMp4Name) {
  const std::string dir = TestTempDir();
  const std::vector<std::string> request = {
      "generate", "--prompt", "a blue square", "--width", "32", "--height",
      "32",       "--frames", "3",             "--steps", "2",  "--seed",
      "4"};
  std::vector<std::string> args = request;
  args.insert(args.end(), {"--out", dir + "/frames.png"});
  const CapturedRun run = Run(args);
  ASSERT_EQ(run.exit_code, kExitOk) << run.stderr_text;
  for (int i = 0; i < 3; ++i) {
    const std::string path = dir + "/frames_000" + std::to_string(i) + ".png";
    EXPECT_THAT(run.stdout_text, HasSubstr("wrote: " + path + "\n"));
    absl::StatusOr<common::DecodedImage> png =
        common::DecodePng(ReadFile(path));
    ASSERT_TRUE(png.ok()) << path << ": " << png.status();
    EXPECT_EQ(png->width, 32);
  }
  EXPECT_FALSE(Exists(dir + "/frames.png"));
  EXPECT_THAT(run.stdout_text, ::testing::Not(HasSubstr("video:")));

  // Refused as a usage error before any request is sent.
  args = request;
  args.insert(args.end(), {"--format", "png", "--out", dir + "/wrong.mp4"});
  const CapturedRun refused = Run(args);
  EXPECT_EQ(refused.exit_code, kExitUsage) << refused.stdout_text;
  EXPECT_THAT(refused.stdout_text, ::testing::Not(HasSubstr("job_id:")));
  EXPECT_THAT(refused.stderr_text, HasSubstr(".mp4"));
  EXPECT_THAT(refused.stdout_text, ::testing::Not(HasSubstr("wrote:")));
  EXPECT_FALSE(Exists(dir + "/wrong.mp4"));
  EXPECT_FALSE(Exists(dir + "/wrong_0000.mp4"));
}

}  // namespace
}  // namespace dserve::tests
