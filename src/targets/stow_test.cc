#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "targets/dicomweb_target.h"
#include "targets/fake_http_client.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(HttpBody* body) {
  std::string out;
  char buffer[5];
  for (;;) {
    auto n = body->Read(buffer, sizeof(buffer));
    EXPECT_TRUE(n.has_value()) << n.error().ToString();
    if (!n || *n == 0) {
      return out;
    }
    out.append(buffer, *n);
  }
}

class StowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("ferry-stow-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    options_.name = "pacs";
    options_.type = TargetType::kDicomweb;
    options_.url = "http://127.0.0.1:8042/dicom-web/";
    options_.batch_size = 2;
    target_ = MakeDicomwebTarget(options_, FakeHttpFactory(log_));
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string File(const std::string& name, const std::string& body) {
    std::string path = (root_ / name).string();
    std::ofstream(path, std::ios::binary) << body;
    return path;
  }

  OutgoingInstance Instance(const std::string& sop) {
    OutgoingInstance i;
    i.path = File(sop + ".dcm", "DICM:" + sop);
    i.sop_instance_uid = sop;
    i.size = 5 + sop.size();
    return i;
  }

  std::vector<InstanceResult> Send(const std::vector<OutgoingInstance>& instances,
                                   const std::atomic<bool>* cancel = nullptr) {
    TaskContext task;
    task.task_id = "t1";
    task.cancel = cancel;
    auto session = target_->Open(task);
    EXPECT_TRUE(session.has_value());
    std::vector<InstanceResult> results;
    (*session)->Send(instances, &results);
    return results;
  }

  void Remake() { target_ = MakeDicomwebTarget(options_, FakeHttpFactory(log_)); }

  fs::path root_;
  TargetOptions options_;
  std::shared_ptr<FakeHttpLog> log_ = std::make_shared<FakeHttpLog>();
  std::unique_ptr<Target> target_;
};

TEST_F(StowTest, BuildsTheMultipartBody) {
  std::string a = File("a.dcm", std::string("DICM\0\1", 6));
  std::string b = File("b.dcm", "second file");
  HttpBody body;
  stow::BuildBody({{a, 6}, {b, 11}}, "XyZ", &body);
  std::string expected = std::string("--XyZ\r\nContent-Type: application/dicom\r\n\r\n") +
                         std::string("DICM\0\1", 6) +
                         "\r\n--XyZ\r\nContent-Type: application/dicom\r\n\r\nsecond file\r\n"
                         "--XyZ--\r\n";
  EXPECT_EQ(body.size(), expected.size());
  EXPECT_EQ(ReadAll(&body), expected);
  body.Rewind();
  EXPECT_EQ(ReadAll(&body), expected);  // libcurl may rewind and resend
  EXPECT_EQ(stow::ContentType("XyZ"),
            "multipart/related; type=\"application/dicom\"; boundary=XyZ");
}

TEST_F(StowTest, BodyNoticesAFileThatChanged) {
  std::string a = File("a.dcm", "12345");
  HttpBody shorter;
  shorter.AddFile(a, 9);
  char buffer[64];
  EXPECT_FALSE(shorter.Read(buffer, sizeof(buffer)).has_value());
  HttpBody longer;
  longer.AddFile(a, 3);
  EXPECT_FALSE(longer.Read(buffer, sizeof(buffer)).has_value());
  HttpBody missing;
  missing.AddFile((root_ / "nope").string(), 3);
  EXPECT_EQ(missing.Read(buffer, sizeof(buffer)).error().code(), Status::Code::kNotFound);
}

TEST(StowBoundaryTest, IsFreshEachTime) {
  std::string a = stow::NewBoundary();
  EXPECT_EQ(a.size(), 6u + 32u);
  EXPECT_EQ(a.rfind("ferry-", 0), 0u);
  EXPECT_NE(a, stow::NewBoundary());
}

// An answer in the shape Orthanc's DICOMweb plugin gives: FailureReason as a number, or (older
// versions) as its decimal text.
constexpr const char* kPartialAnswer = R"({
  "00081190": {"vr": "UR", "Value": ["http://127.0.0.1:8042/dicom-web/studies/1.2"]},
  "00081198": {"vr": "SQ", "Value": [
    {"00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
     "00081155": {"vr": "UI", "Value": ["3"]},
     "00081197": {"vr": "US", "Value": [49152]}},
    {"00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
     "00081155": {"vr": "UI", "Value": ["4"]},
     "00081197": {"vr": "US", "Value": ["42752"]}}]},
  "00081199": {"vr": "SQ", "Value": [
    {"00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
     "00081155": {"vr": "UI", "Value": ["1"]}},
    {"00081155": {"vr": "UI", "Value": ["2"]},
     "00081196": {"vr": "US", "Value": [45056]}}]}
})";

TEST(StowAnswerTest, ParsesStoredAndFailedInstances) {
  auto answer = stow::ParseAnswer(kPartialAnswer);
  ASSERT_TRUE(answer.has_value());
  ASSERT_EQ(answer->stored.size(), 2u);
  EXPECT_EQ(answer->stored.at("1").reason, -1);
  EXPECT_EQ(answer->stored.at("2").reason, 0xB000);
  ASSERT_EQ(answer->failed.size(), 2u);
  EXPECT_EQ(answer->failed.at("3").reason, 0xC000);
  EXPECT_EQ(answer->failed.at("4").reason, 0xA700);

  auto empty = stow::ParseAnswer(R"({"00081198": {"vr": "SQ"}, "00081199": {"vr": "SQ",
                                    "Value": [{"00081150": {"vr": "UI"}}, 7]}})");
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->stored.empty());
  EXPECT_TRUE(empty->failed.empty());

  EXPECT_FALSE(stow::ParseAnswer("<NativeDicomModel/>").has_value());
  EXPECT_FALSE(stow::ParseAnswer("").has_value());
  EXPECT_FALSE(stow::ParseAnswer("[1]").has_value());
}

TEST(StowAnswerTest, ReasonsInWords) {
  EXPECT_EQ(stow::ReasonText(0xA700), "0xA700 (out of resources)");
  EXPECT_EQ(stow::ReasonText(0xC000), "0xC000 (cannot understand)");
  EXPECT_EQ(stow::ReasonText(0x0110), "0x0110 (processing failure)");
  EXPECT_EQ(stow::ReasonText(0x1234), "0x1234");
  EXPECT_TRUE(stow::IsTransientReason(0xA700));
  EXPECT_TRUE(stow::IsTransientReason(0x0110));
  EXPECT_FALSE(stow::IsTransientReason(0xC000));
  EXPECT_FALSE(stow::IsTransientReason(0x0122));
}

HttpResponse Answer(long status, std::string body = "", std::string reason = "") {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.reason = std::move(reason);
  return r;
}

std::vector<Outcome> Outcomes(const std::vector<InstanceResult>& results) {
  std::vector<Outcome> out;
  for (const auto& r : results) {
    out.push_back(r.outcome);
  }
  return out;
}

constexpr Outcome kOk = Outcome::kDelivered;
constexpr Outcome kRetry = Outcome::kTransient;
constexpr Outcome kNever = Outcome::kPermanent;
const std::vector<std::string> kUids = {"1", "2", "3", "4", "5"};

TEST(StowClassifyTest, Ok200DeliversAllButTheFailed) {
  EXPECT_EQ(Outcomes(stow::Classify(Answer(200), kUids)),
            (std::vector<Outcome>{kOk, kOk, kOk, kOk, kOk}));
  auto results = stow::Classify(Answer(200, kPartialAnswer), kUids);
  EXPECT_EQ(Outcomes(results), (std::vector<Outcome>{kOk, kOk, kNever, kRetry, kOk}));
  EXPECT_EQ(results[1].detail, "stored with warning 0xB000 (coercion of data elements)");
  EXPECT_EQ(results[2].detail,
            "HTTP 200: the server refused the instance: FailureReason 0xC000 (cannot "
            "understand)");
}

TEST(StowClassifyTest, Accepted202DeliversOnlyTheListed) {
  auto results = stow::Classify(Answer(202, kPartialAnswer, "Accepted"), kUids);
  EXPECT_EQ(Outcomes(results), (std::vector<Outcome>{kOk, kOk, kNever, kRetry, kRetry}));
  EXPECT_NE(results[4].detail.find("HTTP 202 Accepted"), std::string::npos);
  EXPECT_EQ(Outcomes(stow::Classify(Answer(202, "garbage"), {"1"})),
            (std::vector<Outcome>{kRetry}));
}

TEST(StowClassifyTest, ConflictAndBadRequestArePerInstance) {
  for (long status : {409L, 400L}) {
    EXPECT_EQ(Outcomes(stow::Classify(Answer(status, kPartialAnswer), kUids)),
              (std::vector<Outcome>{kOk, kOk, kNever, kRetry, kNever}))
        << status;
  }
}

TEST(StowClassifyTest, RequestLevelStatuses) {
  const std::vector<std::string> two = {"1", "2"};
  auto auth = stow::Classify(Answer(401, "", "Unauthorized"), two);
  EXPECT_EQ(Outcomes(auth), (std::vector<Outcome>{kNever, kNever}));
  EXPECT_EQ(auth[0].detail,
            "HTTP 401 Unauthorized — authentication failed — check access_token/http_user and "
            "http_password");
  EXPECT_EQ(Outcomes(stow::Classify(Answer(403), two)), (std::vector<Outcome>{kNever, kNever}));
  for (long status : {400L, 404L, 413L, 415L}) {
    EXPECT_EQ(Outcomes(stow::Classify(Answer(status), two)), (std::vector<Outcome>{kNever, kNever}))
        << status;
  }
  for (long status : {429L, 500L, 502L, 503L, 504L}) {
    EXPECT_EQ(Outcomes(stow::Classify(Answer(status), two)), (std::vector<Outcome>{kRetry, kRetry}))
        << status;
  }
  EXPECT_EQ(Outcomes(stow::Classify(Answer(301), two)), (std::vector<Outcome>{kNever, kNever}));
}

TEST(StowClassifyTest, DetailCarriesTheServersReason) {
  // Orthanc's error document.
  auto r = Answer(404,
                  R"({"HttpError": "Not Found", "HttpStatus": 404, "Message": "Unknown resource",
                      "Method": "POST", "Uri": "/dicom-web/studies"})",
                  "Not Found");
  EXPECT_EQ(stow::DescribeStatus(r), "HTTP 404 Not Found: Unknown resource");
  EXPECT_EQ(stow::DescribeStatus(Answer(502, "<html><title>Bad Gateway</title></html>")),
            "HTTP 502: Bad Gateway");
  EXPECT_EQ(stow::DescribeStatus(Answer(503, "  busy,\n try later ")), "HTTP 503: busy, try later");
}

TEST_F(StowTest, SendsInBatchesWithBearerToken) {
  options_.access_token = "s3cr3t";
  Remake();
  std::vector<OutgoingInstance> instances;
  for (const char* uid : {"1", "2", "3", "4", "5"}) {
    instances.push_back(Instance(uid));
  }
  auto results = Send(instances);
  EXPECT_EQ(Outcomes(results), (std::vector<Outcome>{kOk, kOk, kOk, kOk, kOk}));
  ASSERT_EQ(log_->requests.size(), 3u);
  for (const auto& r : log_->requests) {
    EXPECT_EQ(r.request.method, "POST");
    EXPECT_EQ(r.request.url, "http://127.0.0.1:8042/dicom-web/studies");
    EXPECT_TRUE(r.HasHeader("Authorization: Bearer s3cr3t"));
    EXPECT_TRUE(r.HasHeader("Accept: application/dicom+json"));
    EXPECT_TRUE(r.request.user.empty());
  }
  std::string type = log_->requests[0].Header("Content-Type");
  std::string boundary = type.substr(type.find("boundary=") + 9);
  EXPECT_EQ(log_->requests[0].body,
            "--" + boundary + "\r\nContent-Type: application/dicom\r\n\r\nDICM:1\r\n--" + boundary +
                "\r\nContent-Type: application/dicom\r\n\r\nDICM:2\r\n--" + boundary + "--\r\n");
  EXPECT_NE(log_->requests[2].body.find("DICM:5"), std::string::npos);
  EXPECT_EQ(log_->requests[2].body.find("DICM:4"), std::string::npos);
}

TEST_F(StowTest, StowPrefixAndBasicAuth) {
  options_.url = "https://pacs.example.org";
  options_.stow_url_prefix = "/stow/";
  options_.http_user = "ferry";
  options_.http_password = "pw";
  options_.timeout_s = 7;
  options_.tls.ca_file = "/etc/ferry/ca.pem";
  Remake();
  Send({Instance("1")});
  ASSERT_EQ(log_->requests.size(), 1u);
  EXPECT_EQ(log_->requests[0].request.url, "https://pacs.example.org/stow/studies");
  EXPECT_EQ(log_->requests[0].request.user, "ferry");
  EXPECT_EQ(log_->requests[0].request.password, "pw");
  EXPECT_EQ(log_->clients.at(0).timeout_s, 7);
  EXPECT_EQ(log_->clients.at(0).ca_file, "/etc/ferry/ca.pem");
  EXPECT_TRUE(log_->clients.at(0).verify_peer);
}

TEST_F(StowTest, AuthFailureStopsAllBatches) {
  log_->Answer(401, "", "Unauthorized");
  auto results = Send({Instance("1"), Instance("2"), Instance("3")});
  EXPECT_EQ(Outcomes(results), (std::vector<Outcome>{kNever, kNever, kNever}));
  EXPECT_EQ(log_->requests.size(), 1u);
  EXPECT_NE(results[2].detail.find("authentication failed"), std::string::npos);
  EXPECT_EQ(results[2].detail.rfind("not sent: ", 0), 0u);
}

TEST_F(StowTest, UnreachableServerIsTransientForAll) {
  log_->Fail(
      Status::Unavailable("POST http://127.0.0.1:8042/dicom-web/studies: Couldn't "
                          "connect to server"));
  auto results = Send({Instance("1"), Instance("2"), Instance("3")});
  EXPECT_EQ(Outcomes(results), (std::vector<Outcome>{kRetry, kRetry, kRetry}));
  EXPECT_EQ(log_->requests.size(), 1u);
  EXPECT_NE(results[0].detail.find("Couldn't connect"), std::string::npos);
}

TEST_F(StowTest, UnreadableFileFailsOnlyItsBatch) {
  log_->Fail(Status::Corruption("/spool/1.dcm changed while it was being sent"));
  auto results = Send({Instance("1"), Instance("2"), Instance("3")});
  EXPECT_EQ(Outcomes(results), (std::vector<Outcome>{kRetry, kRetry, kOk}));
  EXPECT_EQ(log_->requests.size(), 2u);
}

TEST_F(StowTest, PerInstanceRefusalDoesNotStopTheNextBatch) {
  log_->Answer(200, R"({"00081198": {"vr": "SQ", "Value": [
      {"00081155": {"vr": "UI", "Value": ["2"]}, "00081197": {"vr": "US", "Value": [290]}}]}})");
  auto results = Send({Instance("1"), Instance("2"), Instance("3")});
  EXPECT_EQ(Outcomes(results), (std::vector<Outcome>{kOk, kNever, kOk}));
  EXPECT_NE(results[1].detail.find("0x0122 (SOP class not supported)"), std::string::npos);
  EXPECT_EQ(log_->requests.size(), 2u);
}

TEST_F(StowTest, MissingFileIsPermanentAndSkipped) {
  OutgoingInstance gone = Instance("1");
  fs::remove(gone.path);
  auto results = Send({gone, Instance("2")});
  EXPECT_EQ(Outcomes(results), (std::vector<Outcome>{kNever, kOk}));
  ASSERT_EQ(log_->requests.size(), 1u);
  EXPECT_EQ(log_->requests[0].body.find("DICM:1"), std::string::npos);
}

TEST_F(StowTest, CancelStopsBeforeTheNextRequest) {
  std::atomic<bool> cancel{true};
  auto results = Send({Instance("1"), Instance("2"), Instance("3")}, &cancel);
  EXPECT_EQ(Outcomes(results), (std::vector<Outcome>{kRetry, kRetry, kRetry}));
  EXPECT_TRUE(log_->requests.empty());
  EXPECT_NE(results[0].detail.find("shutting down"), std::string::npos);
}

TEST_F(StowTest, CheckSearchesOneStudy) {
  options_.http_user = "ferry";
  options_.http_password = "wrong";
  Remake();
  EXPECT_TRUE(target_->Check().ok());
  ASSERT_EQ(log_->requests.size(), 1u);
  EXPECT_EQ(log_->requests[0].request.method, "GET");
  EXPECT_EQ(log_->requests[0].request.url, "http://127.0.0.1:8042/dicom-web/studies?limit=1");
  EXPECT_EQ(log_->requests[0].request.user, "ferry");

  log_->Answer(401, "", "Unauthorized");
  Status auth = target_->Check();
  EXPECT_EQ(auth.code(), Status::Code::kPermissionDenied);
  EXPECT_NE(auth.message().find("authentication failed — check access_token/http_user"),
            std::string::npos);
  log_->Answer(404, "", "Not Found");
  EXPECT_EQ(target_->Check().code(), Status::Code::kFailedPrecondition);
  log_->Answer(405);
  EXPECT_TRUE(target_->Check().ok());
  log_->Answer(503);
  EXPECT_EQ(target_->Check().code(), Status::Code::kUnavailable);
  log_->Fail(Status::Unavailable("GET x: Couldn't connect to server"));
  Status down = target_->Check();
  EXPECT_EQ(down.code(), Status::Code::kUnavailable);
  EXPECT_NE(down.message().find("cannot reach the DICOMweb server"), std::string::npos);
}

TEST(HttpUrlTest, JoinAndRedact) {
  EXPECT_EQ(JoinUrl("http://h/dicom-web/", "/studies"), "http://h/dicom-web/studies");
  EXPECT_EQ(JoinUrl("http://h/dicom-web", "studies"), "http://h/dicom-web/studies");
  EXPECT_EQ(JoinUrl("http://h/dicom-web/", ""), "http://h/dicom-web");
  EXPECT_EQ(RedactUrl("https://u:p@h:1/x@y"), "https://h:1/x@y");
  EXPECT_EQ(RedactUrl("https://h/x"), "https://h/x");
}

}  // namespace
}  // namespace ferry
