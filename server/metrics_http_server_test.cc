// The metrics port against hostile requests (issue 16, finding 6): a body
// it would have to read is refused with 413 before it is read, and the
// connection closes, so a 256 MiB POST cannot grow the process.

#include "server/metrics_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/testing/proc_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dserve::server {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A blocking TCP connection to 127.0.0.1:`port` with 10 s send/receive
// timeouts; -1 on failure.
int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n =
        send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// Everything the server sends until it closes the connection; `closed` says
// whether it did (false: the 10 s receive timeout passed first).
std::string ReadUntilClosed(int fd, bool* closed) {
  std::string out;
  char buffer[4096];
  while (true) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n > 0) {
      out.append(buffer, static_cast<size_t>(n));
      continue;
    }
    // 0 = orderly close; ECONNRESET is a close too (unread bytes left).
    *closed = n == 0 || errno == ECONNRESET;
    return out;
  }
}

int64_t RssBytes() {
  return common::testing::ProcStatusKib(0, "VmRSS") * 1024;
}

class MetricsHttpServerLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.GetCounter("dserve_test_total", "Test.")->Increment(3);
    auto server = MetricsHttpServer::Start("127.0.0.1", 0, &registry_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  MetricsRegistry registry_;
  std::unique_ptr<MetricsHttpServer> server_;
};

TEST_F(MetricsHttpServerLimitsTest, ScrapeWorksAndClosesTheConnection) {
  const int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  bool closed = false;
  const std::string reply = ReadUntilClosed(fd, &closed);
  close(fd);
  EXPECT_TRUE(closed);
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(reply, HasSubstr("Connection: close"));
  EXPECT_THAT(reply, HasSubstr("dserve_test_total 3\n"));
}

TEST_F(MetricsHttpServerLimitsTest, HugeDeclaredBodyIs413WithoutReadingIt) {
  const int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  // Declares 256 MiB but sends none of it: the reply must not wait for it.
  ASSERT_TRUE(SendAll(fd,
                      "POST /metrics HTTP/1.1\r\nHost: x\r\n"
                      "Content-Length: 268435456\r\n\r\n"));
  bool closed = false;
  const std::string reply = ReadUntilClosed(fd, &closed);
  close(fd);
  EXPECT_TRUE(closed) << "the server kept the connection open";
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 413"));
  EXPECT_THAT(reply, HasSubstr("at most 4096 bytes"));
}

TEST_F(MetricsHttpServerLimitsTest, ChunkedBodyIs413) {
  const int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd,
                      "POST /metrics HTTP/1.1\r\nHost: x\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n10\r\n"));
  bool closed = false;
  const std::string reply = ReadUntilClosed(fd, &closed);
  close(fd);
  EXPECT_TRUE(closed);
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 413"));
}

TEST_F(MetricsHttpServerLimitsTest, SmallBodyIsReadAndAnswered) {
  const int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd,
                      "GET /metrics HTTP/1.1\r\nHost: x\r\n"
                      "Content-Length: 5\r\n\r\nhello"));
  bool closed = false;
  const std::string reply = ReadUntilClosed(fd, &closed);
  close(fd);
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200"));
}

// The reproduction of the finding: streaming a 256 MiB body. The server
// stops reading (the send fails long before the end) and its process does
// not grow by the body's size.
TEST_F(MetricsHttpServerLimitsTest, StreamedHugeBodyDoesNotGrowTheProcess) {
  constexpr int64_t kBody = int64_t{256} << 20;
  const int64_t rss_before = RssBytes();
  ASSERT_GT(rss_before, 0);
  const int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, absl::StrCat("POST /metrics HTTP/1.1\r\nHost: x\r\n"
                                       "Content-Length: ",
                                       kBody, "\r\n\r\n")));
  const std::string chunk(1 << 20, 'x');
  int64_t sent = 0;
  while (sent < kBody && SendAll(fd, chunk)) sent += chunk.size();
  close(fd);
  EXPECT_LT(sent, kBody) << "the server read the whole 256 MiB body";
  const int64_t growth = RssBytes() - rss_before;
  EXPECT_LT(growth, int64_t{32} << 20) << "RSS grew by " << growth;
}

}  // namespace
}  // namespace dserve::server
