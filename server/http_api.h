#ifndef DSERVE_SERVER_HTTP_API_H_
#define DSERVE_SERVER_HTTP_API_H_

// HttpApi: the OpenAI-compatible HTTP API (--http_port), in the same process
// as the gRPC API and on the same queue and job table: every new job goes
// through DiffusionService::Admit (the gRPC path's validator, idempotency,
// queue, drain and metrics), reads go to the same JobTable, cancels through
// the same Scheduler. Routes:
//   POST   /v1/images/generations  blocks until the images are ready
//   GET    /v1/models
//   POST   /v1/videos              (JSON or multipart form) -> video job
//   GET    /v1/videos, /v1/videos/{id}, /v1/videos/{id}/content (MP4)
//   DELETE /v1/videos/{id}         cancels the job
//   GET    /health (200 while the process answers), /ready (200 when a
//          replica is serving and the server is not draining, else 503)
// Errors: OpenAI's {"error": {...}} body, HTTP status from the gRPC code
// (openai_json.h HttpErrorFor). /v1/* need "Authorization: Bearer <token>"
// when a token is configured (scheme case-insensitive); /health and /ready
// never do. Bodies over max_body_bytes get 413.
//
// Owns its cpp-httplib server and listener thread; borrows the service, job
// table and scheduler (they must outlive it). Thread-safe: httplib calls the
// handlers from its worker threads. Handlers block only in
// /v1/images/generations, up to image_timeout.

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "scheduler/job_table.h"
#include "scheduler/scheduler.h"
#include "server/diffusion_service.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace dserve::server {

struct HttpApiOptions {
  std::string host = "0.0.0.0";
  // 0 = any free port (see HttpApi::port()).
  int port = 0;
  // Empty = no token needed.
  std::string auth_token;
  // Largest request body accepted.
  size_t max_body_bytes = 1 << 20;
  // Longest a POST /v1/images/generations waits for its images before the
  // jobs are cancelled and 504 returned.
  absl::Duration image_timeout = absl::Minutes(30);
  // True when a replica can take work (the gRPC health's readiness).
  std::function<bool()> ready;
};

class HttpApi {
 public:
  // Binds and starts serving. UNAVAILABLE naming --http_port when the
  // address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpApi>> Start(
      HttpApiOptions options, DiffusionService* service,
      scheduler::JobTable* jobs, scheduler::Scheduler* scheduler);

  // Stops accepting and joins the listener (in-flight handlers finish).
  ~HttpApi();
  HttpApi(const HttpApi&) = delete;
  HttpApi& operator=(const HttpApi&) = delete;

  int port() const { return port_; }

 private:
  HttpApi(HttpApiOptions options, DiffusionService* service,
          scheduler::JobTable* jobs, scheduler::Scheduler* scheduler);
  void Route();
  // OK, or UNAUTHENTICATED saying what was missing or wrong.
  absl::Status Authorize(const httplib::Request& request) const;
  void ImageGenerations(const httplib::Request& req, httplib::Response& res);
  void Models(const httplib::Request& req, httplib::Response& res);
  void CreateVideo(const httplib::Request& req, httplib::Response& res);
  void GetVideo(const httplib::Request& req, httplib::Response& res);
  void VideoContent(const httplib::Request& req, httplib::Response& res);
  void ListVideos(const httplib::Request& req, httplib::Response& res);
  void DeleteVideo(const httplib::Request& req, httplib::Response& res);

  const HttpApiOptions options_;
  DiffusionService* const service_;
  scheduler::JobTable* const jobs_;
  scheduler::Scheduler* const scheduler_;
  std::unique_ptr<httplib::Server> http_;
  int port_ = 0;
  std::thread listener_;
};

}  // namespace dserve::server

#endif  // DSERVE_SERVER_HTTP_API_H_
