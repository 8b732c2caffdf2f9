#include "targets/s3_target.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "targets/fake_http_client.h"
#include "testing/fake_clock.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;

OutgoingInstance Uids(std::string study, std::string series, std::string sop) {
  OutgoingInstance i;
  i.study_instance_uid = std::move(study);
  i.series_instance_uid = std::move(series);
  i.sop_instance_uid = std::move(sop);
  return i;
}

TEST(S3KeyTest, ObjectKeyHasNoLeadingOrDoubleSlash) {
  OutgoingInstance i = Uids("1.2", "1.2.3", "1.2.3.4");
  EXPECT_EQ(s3::ObjectKey("", i), "1.2/1.2.3/1.2.3.4.dcm");
  EXPECT_EQ(s3::ObjectKey("/", i), "1.2/1.2.3/1.2.3.4.dcm");
  EXPECT_EQ(s3::ObjectKey("archive", i), "archive/1.2/1.2.3/1.2.3.4.dcm");
  EXPECT_EQ(s3::ObjectKey("archive/", i), "archive/1.2/1.2.3/1.2.3.4.dcm");
  EXPECT_EQ(s3::ObjectKey("/site a/ct/", i), "site a/ct/1.2/1.2.3/1.2.3.4.dcm");
}

TEST(S3AddressTest, AwsUsesVirtualHostsExceptForDottedBuckets) {
  TargetOptions o;
  o.bucket = "archive";
  o.region = "eu-central-1";
  auto a = s3::AddressOf(o);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->origin, "https://archive.s3.eu-central-1.amazonaws.com");
  EXPECT_EQ(a->host, "archive.s3.eu-central-1.amazonaws.com");
  EXPECT_EQ(a->bucket_path, "");
  EXPECT_EQ(s3::ObjectPath(*a, "p/1.dcm"), "/p/1.dcm");

  o.bucket = "my.archive";
  a = s3::AddressOf(o);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->origin, "https://s3.eu-central-1.amazonaws.com");
  EXPECT_EQ(s3::ObjectPath(*a, "p/1.dcm"), "/my.archive/p/1.dcm");
}

TEST(S3AddressTest, EndpointUsesPathStyle) {
  TargetOptions o;
  o.bucket = "archive";
  o.endpoint_url = "http://127.0.0.1:9000/";
  auto a = s3::AddressOf(o);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->origin, "http://127.0.0.1:9000");
  EXPECT_EQ(a->host, "127.0.0.1:9000");
  EXPECT_EQ(s3::ObjectPath(*a, "x y/1.dcm"), "/archive/x%20y/1.dcm");

  o.endpoint_url = "https://user:pw@storage.example.org/s3";
  a = s3::AddressOf(o);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->origin, "https://storage.example.org");
  EXPECT_EQ(a->bucket_path, "/s3/archive");

  o.endpoint_url = "ftp://storage.example.org";
  EXPECT_EQ(s3::AddressOf(o).error().code(), Status::Code::kInvalidArgument);
}

TEST(S3ErrorTest, ParsesTheErrorDocument) {
  auto e = s3::ParseError(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket</Code>"
      "<Message>The specified bucket does not exist &amp; never did</Message>"
      "<BucketName>x</BucketName></Error>");
  EXPECT_EQ(e.code, "NoSuchBucket");
  EXPECT_EQ(e.message, "The specified bucket does not exist & never did");
  EXPECT_EQ(s3::ParseError("not xml").code, "");
}

HttpResponse Answer(long status, std::string code = "") {
  HttpResponse r;
  r.status = status;
  if (!code.empty()) {
    r.body = "<Error><Code>" + code + "</Code><Message>words</Message></Error>";
  }
  return r;
}

TEST(S3ErrorTest, ClassifiesAnswers) {
  TargetOptions o;
  o.bucket = "archive";
  o.endpoint_url = "http://127.0.0.1:9000";
  auto status = [&](long s, std::string code = "") {
    return s3::StatusOf(Answer(s, code), o, "PUT s3://archive/k");
  };
  EXPECT_TRUE(status(200).ok());
  EXPECT_EQ(status(403, "SignatureDoesNotMatch").code(), Status::Code::kPermissionDenied);
  EXPECT_NE(status(403, "InvalidAccessKeyId").message().find("check access_key_id"),
            std::string::npos);
  EXPECT_NE(status(403, "AccessDenied").message().find("s3:PutObject"), std::string::npos);
  EXPECT_EQ(status(403, "RequestTimeTooSkewed").code(), Status::Code::kFailedPrecondition);
  Status missing = status(404, "NoSuchBucket");
  EXPECT_TRUE(IsPermanent(missing));
  EXPECT_NE(missing.message().find("the bucket \"archive\" does not exist at "
                                   "http://127.0.0.1:9000"),
            std::string::npos);
  EXPECT_TRUE(IsPermanent(status(404)));  // HEAD and friends carry no error document
  EXPECT_TRUE(IsPermanent(status(301, "PermanentRedirect")));
  EXPECT_TRUE(IsPermanent(status(400, "AuthorizationHeaderMalformed")));
  EXPECT_EQ(status(400, "EntityTooLarge").code(), Status::Code::kInvalidArgument);
  for (long s : {500L, 502L, 503L, 429L, 408L}) {
    EXPECT_EQ(status(s).code(), Status::Code::kUnavailable) << s;
  }
  EXPECT_EQ(status(503, "SlowDown").code(), Status::Code::kUnavailable);
  EXPECT_NE(status(503, "SlowDown").message().find("HTTP 503 SlowDown (words)"), std::string::npos);
}

class S3TargetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("ferry-s3-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    options_.name = "archive";
    options_.type = TargetType::kS3;
    options_.bucket = "dicom-archive";
    options_.region = "eu-central-1";
    options_.prefix = "ferry out/";
    options_.endpoint_url = "http://127.0.0.1:9000";
    options_.access_key_id = "AKIAIOSFODNN7EXAMPLE";
    options_.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    target_ = MakeS3Target(options_, FakeHttpFactory(log_), &clock_);
  }
  void TearDown() override { fs::remove_all(root_); }

  OutgoingInstance Instance(const std::string& sop, const std::string& body) {
    OutgoingInstance i = Uids("1.2.3", "4.5.6", sop);
    i.path = (root_ / (sop + ".dcm")).string();
    std::ofstream(i.path, std::ios::binary) << body;
    i.size = body.size();
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

  fs::path root_;
  TargetOptions options_;
  // 2026-11-24T17:30:36Z, the time of the botocore reference signature.
  FakeClock clock_{WallTime(std::chrono::seconds(1795541436))};
  std::shared_ptr<FakeHttpLog> log_ = std::make_shared<FakeHttpLog>();
  std::unique_ptr<Target> target_;
};

TEST_F(S3TargetTest, PutsTheFileSignedAsBotocoreSignsIt) {
  std::string body("DICM example body\x00\x01\x02", 20);
  auto results = Send({Instance("7.8.9", body)});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].detail;
  ASSERT_EQ(log_->requests.size(), 1u);
  const RecordedRequest& r = log_->requests[0];
  EXPECT_EQ(r.request.method, "PUT");
  EXPECT_EQ(r.request.url, "http://127.0.0.1:9000/dicom-archive/ferry%20out/1.2.3/4.5.6/7.8.9.dcm");
  EXPECT_EQ(r.body, body);
  EXPECT_EQ(r.Header("host"), "127.0.0.1:9000");
  EXPECT_EQ(r.Header("content-type"), "application/dicom");
  EXPECT_EQ(r.Header("x-amz-date"), "20261124T173036Z");
  EXPECT_EQ(r.Header("x-amz-content-sha256"),
            "ce045a53e5adca2242fa48328f719bf71dbb6a95955e5b8cb3e372e795d0adfe");
  EXPECT_EQ(r.Header("Authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261124/eu-central-1/s3/"
            "aws4_request,SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date,"
            "Signature=be9fda0f1600b50bd6bdd127bb6c358d703f8e9f8e75d40b329bf676fc9fec9e");
  EXPECT_EQ(log_->clients.at(0).timeout_s, 60);
}

TEST_F(S3TargetTest, CheckListsNoKeysWithTheSameSigning) {
  EXPECT_TRUE(target_->Check().ok());
  ASSERT_EQ(log_->requests.size(), 1u);
  const RecordedRequest& r = log_->requests[0];
  EXPECT_EQ(r.request.method, "GET");
  EXPECT_EQ(r.request.url, "http://127.0.0.1:9000/dicom-archive?list-type=2&max-keys=0");
  EXPECT_NE(r.Header("Authorization")
                .find("Signature=d8d20ff31b95c75f8ad9c3bc9bf0c6ccea5624f43936f0e47ab32d2f1f7cde4a"),
            std::string::npos);

  log_->Answer(404, "<Error><Code>NoSuchBucket</Code></Error>");
  Status missing = target_->Check();
  EXPECT_TRUE(IsPermanent(missing));
  log_->Fail(Status::Unavailable("GET http://127.0.0.1:9000/x: Couldn't connect to server"));
  Status down = target_->Check();
  EXPECT_EQ(down.code(), Status::Code::kUnavailable);
  EXPECT_NE(down.message().find("cannot reach the S3 server"), std::string::npos);
}

TEST_F(S3TargetTest, ServerTroubleStopsTheRestButAnObjectRefusalDoesNot) {
  std::vector<OutgoingInstance> instances = {Instance("1", "a"), Instance("2", "b"),
                                             Instance("3", "c"), Instance("4", "d")};
  log_->Answer(200);
  log_->Answer(400, "<Error><Code>EntityTooLarge</Code></Error>");
  log_->Answer(503, "<Error><Code>SlowDown</Code></Error>");
  auto results = Send(instances);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered);
  EXPECT_EQ(results[1].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[2].outcome, Outcome::kTransient);
  EXPECT_EQ(results[3].outcome, Outcome::kTransient);
  EXPECT_EQ(results[3].detail.rfind("not sent: ", 0), 0u) << results[3].detail;
  EXPECT_EQ(log_->requests.size(), 3u);
}

TEST_F(S3TargetTest, MissingFileFailsOnlyItself) {
  OutgoingInstance gone = Instance("1", "a");
  fs::remove(gone.path);
  auto results = Send({gone, Instance("2", "b")});
  EXPECT_EQ(results[0].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[1].outcome, Outcome::kDelivered);
}

TEST_F(S3TargetTest, StopsWhenCancelled) {
  std::atomic<bool> cancel{true};
  auto results = Send({Instance("1", "a")}, &cancel);
  EXPECT_EQ(results[0].outcome, Outcome::kTransient);
  EXPECT_NE(results[0].detail.find("shutting down"), std::string::npos);
  EXPECT_TRUE(log_->requests.empty());
}

}  // namespace
}  // namespace ferry
