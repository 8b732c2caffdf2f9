// FakeHttpClient: an HttpClient for the unit tests of the HTTP targets. It records every
// request (with its body read to the end, as libcurl would send it) and answers with scripted
// responses or errors, in order; when the script runs out it answers 200 with an empty body.
// Thread-safety: none; one test thread.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "targets/http_client.h"

namespace ferry {

struct RecordedRequest {
  HttpRequest request;  // body pointer cleared
  std::string body;

  bool HasHeader(const std::string& line) const {
    for (const auto& h : request.headers) {
      if (h == line) {
        return true;
      }
    }
    return false;
  }
  // The value of header `name` (exact case) or "".
  std::string Header(const std::string& name) const {
    for (const auto& h : request.headers) {
      if (h.rfind(name + ": ", 0) == 0) {
        return h.substr(name.size() + 2);
      }
    }
    return "";
  }
};

// What a FakeHttpClient has seen, shared with the test after the target took the client.
struct FakeHttpLog {
  std::vector<RecordedRequest> requests;
  std::deque<Result<HttpResponse>> script;
  std::vector<HttpClientOptions> clients;  // the options of every client created

  void Answer(long status, std::string body = "", std::string reason = "") {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    r.reason = std::move(reason);
    script.push_back(std::move(r));
  }
  void Fail(Status error) { script.push_back(std::move(error)); }
};

class FakeHttpClient : public HttpClient {
 public:
  explicit FakeHttpClient(std::shared_ptr<FakeHttpLog> log) : log_(std::move(log)) {}

  Result<HttpResponse> Perform(const HttpRequest& request) override {
    RecordedRequest r;
    r.request = request;
    r.request.body = nullptr;
    if (request.body != nullptr) {
      request.body->Rewind();
      char buffer[7];  // small, so that reads cross the pieces of the body
      for (;;) {
        auto n = request.body->Read(buffer, sizeof(buffer));
        if (!n) {
          return n.error();
        }
        if (*n == 0) {
          break;
        }
        r.body.append(buffer, *n);
      }
    }
    log_->requests.push_back(std::move(r));
    if (log_->script.empty()) {
      HttpResponse ok;
      ok.status = 200;
      return ok;
    }
    Result<HttpResponse> next = std::move(log_->script.front());
    log_->script.pop_front();
    return next;
  }

 private:
  std::shared_ptr<FakeHttpLog> log_;
};

// A factory for the targets' constructors that hands out FakeHttpClients writing to `log`.
inline HttpClientFactory FakeHttpFactory(std::shared_ptr<FakeHttpLog> log) {
  return [log](const HttpClientOptions& options) -> Result<std::unique_ptr<HttpClient>> {
    log->clients.push_back(options);
    return std::unique_ptr<HttpClient>(std::make_unique<FakeHttpClient>(log));
  };
}

}  // namespace ferry
