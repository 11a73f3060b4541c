// A result far over gRPC's default 4 MiB receive limit reaches a client with
// default channel settings: JobEventWriter streams it as MediaChunk events
// and the Result (without those bytes) last.

#include "server/job_event_writer.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "scheduler/job.h"

namespace dserve::server {
namespace {

std::string Bytes(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 31 + i / 7);
  return s;
}

// Serves one finished job on Generate.
class OneJobService final
    : public dserve::v1::DiffusionService::CallbackService {
 public:
  explicit OneJobService(std::shared_ptr<scheduler::Job> job)
      : job_(std::move(job)) {}
  grpc::ServerWriteReactor<dserve::v1::GenerateEvent>* Generate(
      grpc::CallbackServerContext*, const dserve::v1::GenerateRequest*) override {
    return new JobEventWriter(job_, JobEventWriter::Mode::kGenerate, nullptr);
  }

 private:
  std::shared_ptr<scheduler::Job> job_;
};

dserve::v1::Result BigResult() {
  dserve::v1::Result result;
  result.set_seed(5);
  auto* video = result.add_media();
  video->set_mime_type("application/x-dserve-f32");
  video->set_data(Bytes(6 * 1024 * 1024 + 123, 'a'));  // over 4 MiB alone
  video->add_shape(1);
  auto* small = result.add_media();
  small->set_mime_type("image/png");
  small->set_data(Bytes(1000, 'b'));
  auto* empty = result.add_media();
  empty->set_mime_type("image/png");
  return result;
}

TEST(JobEventWriterTest, ResultOverFourMiBArrivesInChunksAtDefaultLimits) {
  scheduler::JobSpec spec;
  spec.id = "j-1";
  auto job = std::make_shared<scheduler::Job>(spec);
  const dserve::v1::Result want = BigResult();
  ASSERT_TRUE(job->Succeed(want, absl::Now()));

  OneJobService service(job);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);

  // Default channel arguments: 4 MiB receive limit.
  auto stub = dserve::v1::DiffusionService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  auto reader = stub->Generate(&context, dserve::v1::GenerateRequest());
  dserve::v1::GenerateEvent event;
  std::vector<std::string> parts(3);
  int chunks = 0;
  dserve::v1::Result got;
  bool result_seen = false;
  while (reader->Read(&event)) {
    EXPECT_LE(event.ByteSizeLong(), kMediaChunkBytes + 1024);
    if (event.has_media_chunk()) {
      ASSERT_FALSE(result_seen) << "chunks come before the Result";
      const dserve::v1::MediaChunk& c = event.media_chunk();
      ASSERT_LT(c.media_index(), 3);
      EXPECT_EQ(c.offset(), static_cast<int64_t>(parts[c.media_index()].size()));
      EXPECT_EQ(c.total_bytes(),
                static_cast<int64_t>(want.media(c.media_index()).data().size()));
      parts[c.media_index()] += c.data();
      ++chunks;
    }
    if (event.has_result()) {
      got = event.result();
      result_seen = true;
    }
  }
  const grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(result_seen);
  EXPECT_EQ(chunks, 8);  // 7 for the 6 MiB media, 1 for the small one
  ASSERT_EQ(got.media_size(), 3);
  EXPECT_EQ(got.seed(), 5u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(got.media(i).data().empty()) << i;
    EXPECT_EQ(got.media(i).chunked_size(),
              static_cast<int64_t>(want.media(i).data().size()));
    EXPECT_EQ(parts[i], want.media(i).data()) << i;
    EXPECT_EQ(got.media(i).mime_type(), want.media(i).mime_type());
  }
  server->Shutdown();
}

TEST(JobEventWriterTest, SmallResultsStayInline) {
  dserve::v1::Result small;
  small.add_media()->set_data(Bytes(1000, 'c'));
  EXPECT_FALSE(StripLargeResultMedia(&small));
  EXPECT_EQ(small.media(0).data().size(), 1000u);
  dserve::v1::Result big = BigResult();
  EXPECT_TRUE(StripLargeResultMedia(&big));
  EXPECT_TRUE(big.media(0).data().empty());
  EXPECT_EQ(big.media(0).chunked_size(), 6 * 1024 * 1024 + 123);
}

}  // namespace
}  // namespace dserve::server
