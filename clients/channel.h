#ifndef DSERVE_CLIENTS_CHANNEL_H_
#define DSERVE_CLIENTS_CHANNEL_H_

// The channel every dserve C++ client opens (CLI, loadgen): gRPC with the
// published retry policy, clients/retry_service_config.json, compiled in.
// Behind a load balancer a draining or starting pod answers UNAVAILABLE
// before it admits anything; gRPC then retries the call (with back-off,
// at most 5 attempts) on a fresh pick, which the GOAWAY the draining pod
// sent steers to another pod. Only calls that are idempotent are listed:
// reads, cancels, and Generate/SubmitJob, which the clients always send with
// a client_request_id (the server returns the existing job for a repeat).
// gRPC retries a call only until its first response arrives, so a job that
// already streamed events is never submitted twice.
//
// Thread-safe (a grpc::Channel is); never blocks.

#include <memory>
#include <string>

#include "grpcpp/grpcpp.h"

namespace dserve::clients {

// The service config JSON (the file's text).
const char* RetryServiceConfigJson();

// A channel to `target` ("host:port", "dns:///svc:50051") with `credentials`
// and the retry policy.
std::shared_ptr<grpc::Channel> CreateDserveChannel(
    const std::string& target,
    std::shared_ptr<grpc::ChannelCredentials> credentials);

// A fresh idempotency key for one Generate/SubmitJob ("cli-" + 16 hex
// digits), so the retry policy may repeat the call safely.
std::string NewClientRequestId();

}  // namespace dserve::clients

#endif  // DSERVE_CLIENTS_CHANNEL_H_
