#include "server/http_api.h"

#include <sys/socket.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "server/openai_json.h"
#include "spdlog/spdlog.h"

namespace dserve::server {
namespace {

using json = nlohmann::json;

int64_t NowSeconds() { return absl::ToUnixSeconds(absl::Now()); }

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void SendError(httplib::Response& res, const absl::Status& status) {
  SendJson(res, HttpErrorFor(status.code()).http_status, ErrorJson(status));
}

// Token comparison that does not stop at the first differing byte.
bool SameToken(absl::string_view a, absl::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i % std::max<size_t>(1, b.size())]);
  }
  return diff == 0;
}

// The job's result (succeeded) or the status it ended with.
absl::StatusOr<dserve::v1::Result> ResultOf(const scheduler::Job& job) {
  dserve::v1::Job proto = job.ToProto(/*include_result=*/true);
  if (proto.state() == dserve::v1::JOB_STATE_SUCCEEDED) {
    return std::move(*proto.mutable_result());
  }
  return absl::Status(static_cast<absl::StatusCode>(proto.status_code()),
                      proto.status_message());
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpApi>> HttpApi::Start(
    HttpApiOptions options, DiffusionService* service,
    scheduler::JobTable* jobs, scheduler::Scheduler* scheduler) {
  std::unique_ptr<HttpApi> api(
      new HttpApi(std::move(options), service, jobs, scheduler));
  api->http_->set_socket_options([](int sock) {
    int yes = 1;  // No SO_REUSEPORT: a second server must not share the port.
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  api->Route();
  const HttpApiOptions& o = api->options_;
  int bound = o.port;
  if (o.port == 0) {
    bound = api->http_->bind_to_any_port(o.host);
  } else if (!api->http_->bind_to_port(o.host, o.port)) {
    bound = -1;
  }
  if (bound <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "--http_port: cannot listen on ", o.host, ":", o.port,
        " (port in use or bad --host)"));
  }
  api->port_ = bound;
  HttpApi* raw = api.get();
  api->listener_ = std::thread([raw] { raw->http_->listen_after_bind(); });
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  while (!raw->http_->is_running() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  return api;
}

HttpApi::HttpApi(HttpApiOptions options, DiffusionService* service,
                 scheduler::JobTable* jobs, scheduler::Scheduler* scheduler)
    : options_(std::move(options)),
      service_(service),
      jobs_(jobs),
      scheduler_(scheduler),
      http_(std::make_unique<httplib::Server>()) {}

HttpApi::~HttpApi() {
  http_->stop();
  if (listener_.joinable()) listener_.join();
}

absl::Status HttpApi::Authorize(const httplib::Request& request) const {
  if (options_.auth_token.empty()) return absl::OkStatus();
  if (!request.has_header("Authorization")) {
    return absl::UnauthenticatedError(
        "missing \"Authorization: Bearer <token>\" header");
  }
  const std::string value = request.get_header_value("Authorization");
  absl::string_view v = absl::StripAsciiWhitespace(value);
  const size_t space = v.find(' ');
  if (space == absl::string_view::npos ||
      !absl::EqualsIgnoreCase(v.substr(0, space), "bearer")) {
    return absl::UnauthenticatedError(
        "the Authorization header is not \"Bearer <token>\"");
  }
  if (!SameToken(absl::StripAsciiWhitespace(v.substr(space + 1)),
                 options_.auth_token)) {
    return absl::UnauthenticatedError("the bearer token is not valid");
  }
  return absl::OkStatus();
}

void HttpApi::Route() {
  httplib::Server& h = *http_;
  h.set_payload_max_length(options_.max_body_bytes);
  // cpp-httplib 0.11 applies the payload limit to Content-Length bodies
  // only: a chunked body of any size reached the handlers (a 64 MiB one
  // did). Refuse chunked bodies, and bodies declared over the limit, before
  // a byte is read; and close every connection after one reply, so unread
  // bytes are never parsed as a next request (issue 16, finding 6).
  h.set_keep_alive_max_count(1);
  h.set_pre_routing_handler([this](const httplib::Request& req,
                                   httplib::Response& res) {
    if (req.has_header("Transfer-Encoding")) {
      SendJson(res, 411, ErrorJson(absl::InvalidArgumentError(
                             "chunked request bodies are not accepted; send "
                             "a Content-Length")));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.get_header_value<uint64_t>("Content-Length") >
        options_.max_body_bytes) {
      SendJson(res, 413, ErrorJson(absl::InvalidArgumentError(absl::StrCat(
                             "request body larger than ",
                             options_.max_body_bytes, " bytes"))));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  h.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
    // Only errors httplib produced itself (no handler wrote a body).
    if (!res.body.empty()) return;
    if (res.status == 413) {
      SendJson(res, 413, ErrorJson(absl::InvalidArgumentError(absl::StrCat(
                              "request body larger than ",
                              options_.max_body_bytes, " bytes"))));
      res.status = 413;
    } else if (res.status == 404) {
      SendError(res, absl::NotFoundError(
                         "no such route; dserve serves /v1/images/generations, "
                         "/v1/models, /v1/videos, /health, /ready"));
    }
  });
  h.set_exception_handler([](const httplib::Request&, httplib::Response& res,
                             std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    SendError(res, absl::InternalError(what));
  });
  // Every /v1 route checks the token first.
  auto guarded = [this](void (HttpApi::*handler)(const httplib::Request&,
                                                 httplib::Response&)) {
    return [this, handler](const httplib::Request& req,
                           httplib::Response& res) {
      if (absl::Status auth = Authorize(req); !auth.ok()) {
        SendError(res, auth);
        return;
      }
      (this->*handler)(req, res);
    };
  };
  h.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, {{"status", "ok"}});
  });
  h.Get("/ready", [this](const httplib::Request&, httplib::Response& res) {
    const bool ready =
        !service_->draining() && (options_.ready ? options_.ready() : true);
    SendJson(res, ready ? 200 : 503,
             {{"status", ready ? "ready" : "not_ready"},
              {"draining", service_->draining()}});
  });
  h.Post("/v1/images/generations", guarded(&HttpApi::ImageGenerations));
  h.Get("/v1/models", guarded(&HttpApi::Models));
  h.Post("/v1/videos", guarded(&HttpApi::CreateVideo));
  h.Get("/v1/videos", guarded(&HttpApi::ListVideos));
  h.Get(R"(/v1/videos/([^/]+)/content)", guarded(&HttpApi::VideoContent));
  h.Get(R"(/v1/videos/([^/]+))", guarded(&HttpApi::GetVideo));
  h.Delete(R"(/v1/videos/([^/]+))", guarded(&HttpApi::DeleteVideo));
}

void HttpApi::ImageGenerations(const httplib::Request& req,
                               httplib::Response& res) {
  absl::StatusOr<ImageGenerationRequest> parsed =
      ParseImageGenerationRequest(req.body);
  if (!parsed.ok()) return SendError(res, parsed.status());
  const absl::Time deadline = absl::Now() + options_.image_timeout;
  std::vector<std::shared_ptr<scheduler::Job>> jobs;
  auto cancel_all = [&](const absl::Status& why) {
    for (const auto& job : jobs) {
      if (!job->is_terminal()) scheduler_->Cancel(job, why);
    }
  };
  for (int k = 0; k < parsed->n; ++k) {
    dserve::v1::GenerateRequest request = parsed->request;
    if (request.has_seed()) request.set_seed(request.seed() + k);
    absl::StatusOr<std::shared_ptr<scheduler::Job>> job =
        service_->Admit(request, deadline);
    if (!job.ok()) {
      cancel_all(absl::CancelledError(absl::StrCat(
          "image ", k, " of this request was refused: ",
          job.status().message())));
      return SendError(res, job.status());
    }
    jobs.push_back(*std::move(job));
  }
  std::vector<dserve::v1::Result> results;
  for (const auto& job : jobs) {
    absl::Notification done;
    const int id = job->AddListener([&done](const scheduler::JobEvent& e) {
      if (e.terminal && !done.HasBeenNotified()) done.Notify();
    });
    const bool finished = done.WaitForNotificationWithDeadline(deadline);
    job->RemoveListener(id);
    if (!finished) {
      const absl::Status timeout = absl::DeadlineExceededError(absl::StrCat(
          "the images were not ready within ",
          absl::FormatDuration(options_.image_timeout)));
      cancel_all(timeout);
      return SendError(res, timeout);
    }
    absl::StatusOr<dserve::v1::Result> result = ResultOf(*job);
    if (!result.ok()) {
      cancel_all(absl::CancelledError("another image of this request failed"));
      return SendError(res, result.status());
    }
    results.push_back(*std::move(result));
  }
  SendJson(res, 200, ImagesResponseJson(results, NowSeconds()));
}

void HttpApi::Models(const httplib::Request&, httplib::Response& res) {
  const std::vector<dserve::v1::ModelInfo> models = scheduler_->Models();
  if (models.empty()) {
    return SendError(res, absl::UnavailableError(
                              "no replica has loaded its model yet; retry "
                              "when /ready answers 200"));
  }
  SendJson(res, 200, ModelsJson(models, NowSeconds()));
}

void HttpApi::CreateVideo(const httplib::Request& req, httplib::Response& res) {
  json fields = json::object();
  if (req.is_multipart_form_data()) {
    for (const auto& [name, part] : req.files) {
      if (!part.filename.empty()) {
        return SendError(res, WithParam(absl::InvalidArgumentError(absl::StrCat(
                                            name, ": file uploads (\"",
                                            part.filename,
                                            "\") are not supported")),
                                        name));
      }
      fields[name] = part.content;
    }
  } else {
    fields = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (fields.is_discarded()) {
      return SendError(res, absl::InvalidArgumentError(
                                "the request body is not valid JSON or a "
                                "multipart form"));
    }
  }
  absl::StatusOr<dserve::v1::GenerateRequest> request =
      ParseVideoRequest(fields, scheduler_->Models());
  if (!request.ok()) return SendError(res, request.status());
  absl::StatusOr<std::shared_ptr<scheduler::Job>> job =
      service_->Admit(*request, std::nullopt);
  if (!job.ok()) return SendError(res, job.status());
  SendJson(res, 200, VideoJson((*job)->ToProto(/*include_result=*/false)));
}

void HttpApi::GetVideo(const httplib::Request& req, httplib::Response& res) {
  absl::StatusOr<std::shared_ptr<scheduler::Job>> job =
      jobs_->Find(req.matches[1]);
  if (!job.ok()) return SendError(res, job.status());
  SendJson(res, 200, VideoJson((*job)->ToProto(/*include_result=*/false)));
}

void HttpApi::VideoContent(const httplib::Request& req,
                           httplib::Response& res) {
  const std::string variant =
      req.has_param("variant") ? req.get_param_value("variant") : "video";
  if (variant != "video") {
    return SendError(res, WithParam(absl::InvalidArgumentError(absl::StrCat(
                                        "variant: \"", variant,
                                        "\" is not supported; use \"video\"")),
                                    "variant"));
  }
  absl::StatusOr<std::shared_ptr<scheduler::Job>> job =
      jobs_->Find(req.matches[1]);
  if (!job.ok()) return SendError(res, job.status());
  const dserve::v1::Job proto = (*job)->ToProto(/*include_result=*/true);
  if (proto.state() != dserve::v1::JOB_STATE_SUCCEEDED) {
    return SendError(
        res, absl::FailedPreconditionError(absl::StrCat(
                 "video ", proto.job_id(), " is ",
                 VideoJson(proto)["status"].get<std::string>(),
                 "; its content is available once its status is completed")));
  }
  const auto& media = proto.result().media();
  if (media.empty() || media[0].mime_type() != "video/mp4" ||
      media[0].data().empty()) {
    return SendError(
        res, absl::FailedPreconditionError(absl::StrCat(
                 "job ", proto.job_id(), " produced ",
                 media.empty() ? std::string("no media")
                               : media[0].mime_type(),
                 ", not an MP4 video (this server's workers cannot encode "
                 "MP4, or the job was not created by POST /v1/videos)")));
  }
  res.status = 200;
  res.set_content(media[0].data(), "video/mp4");
}

void HttpApi::ListVideos(const httplib::Request& req, httplib::Response& res) {
  int limit = 20;
  if (req.has_param("limit") &&
      (!absl::SimpleAtoi(req.get_param_value("limit"), &limit) || limit < 1 ||
       limit > 100)) {
    return SendError(res, WithParam(absl::InvalidArgumentError(absl::StrCat(
                                        "limit: \"",
                                        req.get_param_value("limit"),
                                        "\" is not an integer 1 to 100")),
                                    "limit"));
  }
  const std::string after =
      req.has_param("after") ? req.get_param_value("after") : "";
  const bool ascending =
      req.has_param("order") && req.get_param_value("order") == "asc";
  absl::StatusOr<scheduler::JobPage> page = jobs_->List({}, 1000, "");
  if (!page.ok()) return SendError(res, page.status());
  std::vector<dserve::v1::Job> videos;
  for (const auto& job : page->jobs) {
    if (job->request().output_format() == dserve::v1::OUTPUT_FORMAT_MP4) {
      videos.push_back(job->ToProto(/*include_result=*/false));
    }
  }
  if (ascending) std::reverse(videos.begin(), videos.end());
  size_t start = 0;
  if (!after.empty()) {
    while (start < videos.size() && videos[start].job_id() != after) ++start;
    start = start < videos.size() ? start + 1 : videos.size();
  }
  json data = json::array();
  for (size_t i = start; i < videos.size() && data.size() < size_t(limit); ++i) {
    data.push_back(VideoJson(videos[i]));
  }
  const bool has_more = start + data.size() < videos.size();
  SendJson(res, 200,
           {{"object", "list"},
            {"data", data},
            {"first_id", data.empty() ? json(nullptr) : data.front()["id"]},
            {"last_id", data.empty() ? json(nullptr) : data.back()["id"]},
            {"has_more", has_more}});
}

void HttpApi::DeleteVideo(const httplib::Request& req,
                          httplib::Response& res) {
  absl::StatusOr<std::shared_ptr<scheduler::Job>> job =
      jobs_->Find(req.matches[1]);
  if (!job.ok()) return SendError(res, job.status());
  if (!(*job)->is_terminal()) {
    spdlog::info("[server] [job {}] cancelled by DELETE /v1/videos", (*job)->id());
    scheduler_->Cancel(*job, absl::CancelledError(absl::StrCat(
                                 "job ", (*job)->id(),
                                 " cancelled by DELETE /v1/videos")));
  }
  SendJson(res, 200,
           {{"id", (*job)->id()}, {"object", "video.deleted"}, {"deleted", true}});
}

}  // namespace dserve::server
