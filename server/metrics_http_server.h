#ifndef DSERVE_SERVER_METRICS_HTTP_SERVER_H_
#define DSERVE_SERVER_METRICS_HTTP_SERVER_H_

// MetricsHttpServer: answers GET /metrics with a MetricsRegistry rendered in
// the Prometheus text format (content type text/plain; version=0.0.4), on
// its own port, over plain HTTP (cpp-httplib). Any other path is 404.
//
// Hostile clients: a scrape needs no body, so a request declaring a body
// over kMaxMetricsBodyBytes (or any chunked body) gets 413 before a byte of
// it is read, and every connection closes after one response, so the
// unread bytes are never parsed as a next request (issue 16, finding 6: a
// 256 MiB POST once grew the server by 262 MB). Bind it to loopback unless
// a scraper elsewhere needs it (dserve_server --metrics_host).
//
// Ownership: owns the HTTP server and its listening thread; borrows the
// registry (must outlive this object). Thread-safe: scrapes run on
// cpp-httplib's worker threads. Start binds before returning; the
// destructor stops listening and joins the thread (blocks until in-flight
// scrapes finish).

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/metrics.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace dserve::server {

// Largest request body the metrics port reads.
inline constexpr size_t kMaxMetricsBodyBytes = 4096;

class MetricsHttpServer {
 public:
  // Binds `host`:`port` (port 0 = any free port) and starts serving.
  // UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& host, int port, const MetricsRegistry* registry);

  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // The bound port.
  int port() const { return port_; }

 private:
  MetricsHttpServer(std::unique_ptr<httplib::Server> http, int port);

  std::unique_ptr<httplib::Server> http_;
  const int port_;
  std::thread listener_;
};

}  // namespace dserve::server

#endif  // DSERVE_SERVER_METRICS_HTTP_SERVER_H_
