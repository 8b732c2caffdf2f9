// The signer against AWS's published Signature Version 4 examples (Amazon S3 API Reference,
// "Signature Calculations for the Authorization Header: Transferring Payload in a Single
// Chunk"; IAM User Guide, signing key derivation), and against signatures computed
// independently with botocore 1.43 (S3SigV4Auth) for requests shaped like ferry's.
#include "targets/s3_signer.h"

#include <gtest/gtest.h>

namespace ferry::s3 {
namespace {

const Credentials kAwsExample{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"};
constexpr const char* kExampleHost = "examplebucket.s3.amazonaws.com";

SignedRequest AwsExample(std::string method, std::string path) {
  SignedRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.amz_date = "20130524T000000Z";
  r.region = "us-east-1";
  r.payload_sha256 = std::string(kEmptySha256);
  r.headers = {{"Host", kExampleHost},
               {"x-amz-date", r.amz_date},
               {"x-amz-content-sha256", r.payload_sha256}};
  return r;
}

std::string SignatureOf(const std::string& authorization) {
  return authorization.substr(authorization.rfind('=') + 1);
}

TEST(S3SignerTest, HashesAndHmac) {
  EXPECT_EQ(Sha256Hex(""), kEmptySha256);
  EXPECT_EQ(Sha256Hex("Welcome to Amazon S3."),
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  // RFC 4231, test case 2.
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(S3SignerTest, DerivesTheDocumentedSigningKey) {
  EXPECT_EQ(HexEncode(SigningKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215",
                                 "us-east-1", "iam")),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

TEST(S3SignerTest, GetObjectExample) {
  SignedRequest r = AwsExample("GET", "/test.txt");
  r.headers.emplace_back("Range", "bytes=0-9");
  EXPECT_EQ(CanonicalRequest(r),
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            "\nx-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(StringToSign(r),
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(Sign(r, kAwsExample),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(S3SignerTest, PutObjectExample) {
  SignedRequest r = AwsExample("PUT", "/" + UriEncode("test$file.text", true));
  r.payload_sha256 = Sha256Hex("Welcome to Amazon S3.");
  r.headers = {{"Host", kExampleHost},
               {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
               {"x-amz-date", r.amz_date},
               {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
               {"x-amz-content-sha256", r.payload_sha256}};
  EXPECT_EQ(CanonicalRequest(r).substr(0, 22), "PUT\n/test%24file.text\n");
  EXPECT_EQ(StringToSign(r),
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
  EXPECT_EQ(SignedHeaderNames(r), "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class");
  EXPECT_EQ(SignatureOf(Sign(r, kAwsExample)),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(S3SignerTest, GetBucketLifecycleExample) {
  SignedRequest r = AwsExample("GET", "/");
  r.query = {{"lifecycle", ""}};
  EXPECT_EQ(SignatureOf(Sign(r, kAwsExample)),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(S3SignerTest, ListObjectsExampleSortsTheQuery) {
  SignedRequest r = AwsExample("GET", "/");
  r.query = {{"prefix", "J"}, {"max-keys", "2"}};
  EXPECT_EQ(SignatureOf(Sign(r, kAwsExample)),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

// ferry's own request shapes, signed independently with botocore: a path-style PUT to an
// S3-compatible endpoint on a non-default port with a signed Content-Type and an encoded
// prefix, and the bucket check.
TEST(S3SignerTest, PathStylePutMatchesBotocore) {
  SignedRequest r;
  r.method = "PUT";
  r.path = "/dicom-archive/" + UriEncode("ferry out/1.2.3/4.5.6/7.8.9.dcm", true);
  r.amz_date = "20261124T173036Z";
  r.region = "eu-central-1";
  r.payload_sha256 = Sha256Hex(std::string("DICM example body\x00\x01\x02", 20));
  EXPECT_EQ(r.payload_sha256, "ce045a53e5adca2242fa48328f719bf71dbb6a95955e5b8cb3e372e795d0adfe");
  r.headers = {{"host", "127.0.0.1:9000"},
               {"x-amz-content-sha256", r.payload_sha256},
               {"x-amz-date", r.amz_date},
               {"content-type", "application/dicom"}};
  EXPECT_EQ(Sign(r, kAwsExample),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261124/eu-central-1/s3/"
            "aws4_request,SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date,"
            "Signature=be9fda0f1600b50bd6bdd127bb6c358d703f8e9f8e75d40b329bf676fc9fec9e");
}

TEST(S3SignerTest, BucketListingMatchesBotocore) {
  SignedRequest r;
  r.method = "GET";
  r.path = "/dicom-archive";
  r.query = {{"list-type", "2"}, {"max-keys", "0"}};
  r.amz_date = "20261124T173036Z";
  r.region = "eu-central-1";
  r.payload_sha256 = std::string(kEmptySha256);
  r.headers = {{"host", "127.0.0.1:9000"},
               {"x-amz-content-sha256", r.payload_sha256},
               {"x-amz-date", r.amz_date}};
  EXPECT_EQ(SignatureOf(Sign(r, kAwsExample)),
            "d8d20ff31b95c75f8ad9c3bc9bf0c6ccea5624f43936f0e47ab32d2f1f7cde4a");
}

TEST(S3SignerTest, CanonicalHeaderValuesAreTrimmed) {
  SignedRequest a = AwsExample("GET", "/k");
  SignedRequest b = a;
  a.headers.emplace_back("X-Amz-Meta-Note", "  two   words ");
  b.headers.emplace_back("x-amz-meta-note", "two words");
  EXPECT_EQ(CanonicalRequest(a), CanonicalRequest(b));
}

TEST(S3SignerTest, UriEncode) {
  EXPECT_EQ(UriEncode("A-z_0.9~", false), "A-z_0.9~");
  EXPECT_EQ(UriEncode("a b+c", false), "a%20b%2Bc");
  EXPECT_EQ(UriEncode("a/b", false), "a%2Fb");
  EXPECT_EQ(UriEncode("a/b", true), "a/b");
  EXPECT_EQ(UriEncode("=&?#%*", true), "%3D%26%3F%23%25%2A");
  EXPECT_EQ(UriEncode("\xc3\xa9", true), "%C3%A9");
}

}  // namespace
}  // namespace ferry::s3
