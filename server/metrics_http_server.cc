#include "server/metrics_http_server.h"

#include <sys/socket.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "httplib.h"

namespace dserve::server {

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& host, int port, const MetricsRegistry* registry) {
  auto http = std::make_unique<httplib::Server>();
  // cpp-httplib's default adds SO_REUSEPORT, which would let a second
  // server bind the same port silently; keep only SO_REUSEADDR (restarts
  // while old connections linger in TIME_WAIT).
  http->set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  // One request per connection: a refused request's body is left unread
  // on the socket, and must not be read as the next request line (the line
  // reader would buffer all of it).
  http->set_keep_alive_max_count(1);
  http->set_payload_max_length(kMaxMetricsBodyBytes);
  http->set_pre_routing_handler([](const httplib::Request& request,
                                   httplib::Response& response) {
    const bool chunked = request.has_header("Transfer-Encoding");
    const uint64_t declared = request.get_header_value<uint64_t>("Content-Length");
    if (!chunked && declared <= kMaxMetricsBodyBytes) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    response.status = 413;
    response.set_header("Connection", "close");
    response.set_content(
        absl::StrCat("request body refused: the metrics port reads at most ",
                     kMaxMetricsBodyBytes, " bytes (and no chunked bodies)\n"),
        "text/plain; charset=utf-8");
    return httplib::Server::HandlerResponse::Handled;
  });
  http->Get("/metrics", [registry](const httplib::Request&,
                                   httplib::Response& response) {
    response.set_content(registry->RenderText(),
                         "text/plain; version=0.0.4; charset=utf-8");
  });
  int bound = port;
  if (port == 0) {
    bound = http->bind_to_any_port(host);
    if (bound < 0) bound = 0;
  } else if (!http->bind_to_port(host, port)) {
    bound = 0;
  }
  if (bound <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "--metrics_port: cannot listen on ", host, ":", port,
        " (port in use or bad --host)"));
  }
  return std::unique_ptr<MetricsHttpServer>(
      new MetricsHttpServer(std::move(http), bound));
}

MetricsHttpServer::MetricsHttpServer(std::unique_ptr<httplib::Server> http,
                                     int port)
    : http_(std::move(http)), port_(port) {
  listener_ = std::thread([this] { http_->listen_after_bind(); });
  // stop() is a no-op until the accept loop runs, so a server destroyed
  // right after Start would never stop: wait for the loop (it starts at
  // once; the bound keeps a broken socket from hanging the caller).
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  while (!http_->is_running() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
}

MetricsHttpServer::~MetricsHttpServer() {
  http_->stop();
  if (listener_.joinable()) listener_.join();
}

}  // namespace dserve::server
