// TLS, mutual TLS and bearer-token auth through the real server: the test
// makes a CA, a server certificate (localhost / 127.0.0.1) and client
// certificates with `openssl` at run time, starts the server with
// --tls_cert/--tls_key/--tls_client_ca/--auth_token_file, and checks which
// connections and calls are accepted.

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/rpc_status.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/dserve/v1/diffusion_service.grpc.pb.h"
#include "tests/testing/rpc_helpers.h"
#include "tests/testing/server_process.h"

namespace dserve::tests {
namespace {

constexpr char kToken[] = "e2e-token-5f2a";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

struct Certs {
  std::string dir;
  std::string ca_pem;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string rogue_cert_pem;  // Signed by another CA.
  std::string rogue_key_pem;
};

// Runs the openssl commands; returns false (and logs) on failure.
bool MakeCerts(Certs* certs) {
  certs->dir = std::string(std::getenv("TEST_TMPDIR")) + "/certs";
  const std::string d = certs->dir;
  const std::string script = absl::StrCat(
      "set -e; mkdir -p ", d, "; cd ", d, "\n",
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt "
      "-days 1 -subj '/CN=dserve test CA' 2>/dev/null\n",
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout rogue_ca.key "
      "-out rogue_ca.crt -days 1 -subj '/CN=rogue CA' 2>/dev/null\n",
      "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > server.ext\n",
      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
      "-subj '/CN=localhost' 2>/dev/null\n",
      "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key "
      "-CAcreateserial -out server.crt -days 1 -extfile server.ext "
      "2>/dev/null\n",
      "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr "
      "-subj '/CN=client' 2>/dev/null\n",
      "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key "
      "-CAcreateserial -out client.crt -days 1 2>/dev/null\n",
      "openssl req -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.csr "
      "-subj '/CN=rogue' 2>/dev/null\n",
      "openssl x509 -req -in rogue.csr -CA rogue_ca.crt -CAkey rogue_ca.key "
      "-CAcreateserial -out rogue.crt -days 1 2>/dev/null\n",
      "printf '", kToken, "\\n' > token\n");
  const std::string script_path = d + ".sh";
  std::ofstream(script_path) << script;
  if (std::system(absl::StrCat("bash ", script_path).c_str()) != 0) {
    return false;
  }
  certs->ca_pem = ReadFile(d + "/ca.crt");
  certs->client_cert_pem = ReadFile(d + "/client.crt");
  certs->client_key_pem = ReadFile(d + "/client.key");
  certs->rogue_cert_pem = ReadFile(d + "/rogue.crt");
  certs->rogue_key_pem = ReadFile(d + "/rogue.key");
  return !certs->ca_pem.empty() && !certs->client_cert_pem.empty();
}

class SecurityE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new Certs;
    ASSERT_TRUE(MakeCerts(certs_)) << "openssl failed";
    ServerProcess::Options options;
    options.replicas = 1;
    options.wait_until_serving = false;  // Its probe speaks plaintext.
    options.extra_flags = {
        absl::StrCat("--tls_cert=", certs_->dir, "/server.crt"),
        absl::StrCat("--tls_key=", certs_->dir, "/server.key"),
        absl::StrCat("--tls_client_ca=", certs_->dir, "/ca.crt"),
        absl::StrCat("--auth_token_file=", certs_->dir, "/token")};
    auto server = ServerProcess::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }

  static void TearDownTestSuite() {
    if (server_ != nullptr) {
      absl::StatusOr<int> code = server_->Stop();
      EXPECT_TRUE(code.ok()) << code.status();
      if (code.ok()) {
        EXPECT_EQ(*code, 0);
      }
      delete server_;
      server_ = nullptr;
    }
    delete certs_;
    certs_ = nullptr;
  }

  // A TLS channel trusting the test CA, presenting `cert`/`key` if given.
  static std::shared_ptr<grpc::Channel> TlsChannel(const std::string& cert,
                                                   const std::string& key) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = certs_->ca_pem;
    ssl.pem_cert_chain = cert;
    ssl.pem_private_key = key;
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    return grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", server_->port()),
        grpc::SslCredentials(ssl), args);
  }

  static std::shared_ptr<grpc::Channel> GoodChannel() {
    return TlsChannel(certs_->client_cert_pem, certs_->client_key_pem);
  }

  // GetServerInfo with `token` (empty = no authorization metadata).
  static grpc::Status Info(const std::shared_ptr<grpc::Channel>& channel,
                           const std::string& token,
                           dserve::v1::ServerInfo* info = nullptr) {
    auto stub = dserve::v1::DiffusionService::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    if (!token.empty()) {
      context.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    }
    dserve::v1::ServerInfo unused;
    return stub->GetServerInfo(&context, dserve::v1::GetServerInfoRequest(),
                               info != nullptr ? info : &unused);
  }

  static grpc::Status Health(const std::shared_ptr<grpc::Channel>& channel,
                             grpc::health::v1::HealthCheckResponse* response) {
    auto stub = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    return stub->Check(&context, grpc::health::v1::HealthCheckRequest(),
                       response);
  }

  static Certs* certs_;
  static ServerProcess* server_;
};

Certs* SecurityE2eTest::certs_ = nullptr;
ServerProcess* SecurityE2eTest::server_ = nullptr;

TEST_F(SecurityE2eTest, HealthIsOpenOverMutualTlsWithoutToken) {
  grpc::health::v1::HealthCheckResponse response;
  absl::Status last;
  // Wait for the replica (readiness) over the secure channel.
  for (int i = 0; i < 600; ++i) {
    grpc::Status status = Health(GoodChannel(), &response);
    last = common::FromGrpcStatus(status);
    if (status.ok() && response.status() ==
                           grpc::health::v1::HealthCheckResponse::SERVING) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING)
      << last;
}

TEST_F(SecurityE2eTest, RightCertAndTokenAreAccepted) {
  dserve::v1::ServerInfo info;
  const grpc::Status status = Info(GoodChannel(), kToken, &info);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(info.replicas_size(), 1);
}

TEST_F(SecurityE2eTest, MissingOrWrongTokenIsUnauthenticated) {
  // The server is up and accepts a proper client, so a failure below is
  // the rejection and not a server that is not listening.
  ASSERT_TRUE(Info(GoodChannel(), kToken).ok());
  grpc::Status status = Info(GoodChannel(), "");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(status.error_message().find("authorization"), std::string::npos)
      << status.error_message();
  status = Info(GoodChannel(), "not-the-token");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

// The dserve CLI's --tls_ca/--tls_cert/--tls_key/--auth_token reach the
// server; without the token it reports UNAUTHENTICATED.
TEST_F(SecurityE2eTest, CliConnectsWithTlsFlagsAndToken) {
  const std::string cli =
      std::string(std::getenv("TEST_SRCDIR")) + "/dserve/clients/dserve";
  const std::string common = absl::StrCat(
      cli, " --server=localhost:", server_->port(), " --tls_ca=", certs_->dir,
      "/ca.crt --tls_cert=", certs_->dir, "/client.crt --tls_key=",
      certs_->dir, "/client.key --timeout_s=10");
  const std::string out = std::string(std::getenv("TEST_TMPDIR")) + "/cli.out";
  EXPECT_EQ(std::system(absl::StrCat(common, " --auth_token=", kToken,
                                     " info > ", out, " 2>&1")
                            .c_str()),
            0)
      << ReadFile(out);
  EXPECT_NE(std::system(absl::StrCat(common, " info > ", out, " 2>&1").c_str()),
            0);
  EXPECT_NE(ReadFile(out).find("UNAUTHENTICATED"), std::string::npos)
      << ReadFile(out);
}

TEST_F(SecurityE2eTest, PlaintextClientIsRejected) {
  // The server is up and accepts a proper client, so a failure below is
  // the rejection and not a server that is not listening.
  ASSERT_TRUE(Info(GoodChannel(), kToken).ok());
  auto channel = grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", server_->port()),
      grpc::InsecureChannelCredentials());
  const grpc::Status status = Info(channel, kToken);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
}

TEST_F(SecurityE2eTest, ClientWithoutCertificateIsRejected) {
  // The server is up and accepts a proper client, so a failure below is
  // the rejection and not a server that is not listening.
  ASSERT_TRUE(Info(GoodChannel(), kToken).ok());
  const grpc::Status status = Info(TlsChannel("", ""), kToken);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
}

TEST_F(SecurityE2eTest, ClientCertificateFromAnotherCaIsRejected) {
  // The server is up and accepts a proper client, so a failure below is
  // the rejection and not a server that is not listening.
  ASSERT_TRUE(Info(GoodChannel(), kToken).ok());
  const grpc::Status status =
      Info(TlsChannel(certs_->rogue_cert_pem, certs_->rogue_key_pem), kToken);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
}

}  // namespace
}  // namespace dserve::tests
