#include "core/status.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <memory>
#include <string>

#include "core/result.h"

namespace ferry {
namespace {

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kOk);
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_TRUE(Status::Ok().ok());
  EXPECT_FALSE(s.retryable());
}

TEST(StatusTest, FactoriesSetCodeAndMessage) {
  Status s = Status::NotFound("no such series");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kNotFound);
  EXPECT_EQ(s.message(), "no such series");
  EXPECT_EQ(s.ToString(), "not found: no such series");
}

struct ErrnoCase {
  int err;
  Status::Code code;
};

class FromErrnoTest : public ::testing::TestWithParam<ErrnoCase> {};

TEST_P(FromErrnoTest, MapsToCode) {
  Status s = Status::FromErrno(GetParam().err, "open /x");
  EXPECT_EQ(s.code(), GetParam().code) << s.ToString();
  EXPECT_EQ(s.message().rfind("open /x: ", 0), 0u) << s.message();
}

INSTANTIATE_TEST_SUITE_P(Table, FromErrnoTest,
                         ::testing::Values(ErrnoCase{ENOENT, Status::Code::kNotFound},
                                           ErrnoCase{EEXIST, Status::Code::kAlreadyExists},
                                           ErrnoCase{EACCES, Status::Code::kPermissionDenied},
                                           ErrnoCase{EPERM, Status::Code::kPermissionDenied},
                                           ErrnoCase{EROFS, Status::Code::kPermissionDenied},
                                           ErrnoCase{ENOSPC, Status::Code::kResourceExhausted},
                                           ErrnoCase{EDQUOT, Status::Code::kResourceExhausted},
                                           ErrnoCase{EMFILE, Status::Code::kResourceExhausted},
                                           ErrnoCase{EINVAL, Status::Code::kInvalidArgument},
                                           ErrnoCase{ENAMETOOLONG, Status::Code::kInvalidArgument},
                                           ErrnoCase{ENOTDIR, Status::Code::kInvalidArgument},
                                           ErrnoCase{EIO, Status::Code::kIoError},
                                           ErrnoCase{EXDEV, Status::Code::kIoError}));

TEST(StatusTest, FromErrnoIncludesOsReason) {
  Status s = Status::FromErrno(ENOENT, "open /data/x");
  EXPECT_EQ(s.message(), "open /data/x: No such file or directory");
}

TEST(StatusTest, Retryable) {
  EXPECT_TRUE(Status::Unavailable("peer down").retryable());
  EXPECT_TRUE(Status::ResourceExhausted("disk full").retryable());
  EXPECT_TRUE(Status::IoError("eio").retryable());
  EXPECT_FALSE(Status::InvalidArgument("bad").retryable());
  EXPECT_FALSE(Status::NotFound("x").retryable());
  EXPECT_FALSE(Status::Corruption("x").retryable());
  EXPECT_FALSE(Status::PermissionDenied("x").retryable());
}

TEST(StatusTest, WithContextPrefixesMessageAndKeepsCode) {
  Status s = Status::IoError("write failed").WithContext("spool");
  EXPECT_EQ(s.code(), Status::Code::kIoError);
  EXPECT_EQ(s.message(), "spool: write failed");
  EXPECT_TRUE(Status::Ok().WithContext("spool").ok());
}

TEST(StatusTest, CodeNames) {
  EXPECT_EQ(CodeName(Status::Code::kOk), "OK");
  EXPECT_EQ(CodeName(Status::Code::kAlreadyExists), "already exists");
  EXPECT_EQ(CodeName(Status::Code::kInternal), "internal error");
}

Status FailIf(bool fail) { return fail ? Status::Internal("boom") : Status::Ok(); }

Status UsesReturnIfError(bool fail, int* reached) {
  FERRY_RETURN_IF_ERROR(FailIf(fail));
  ++*reached;
  return Status::Ok();
}

TEST(StatusTest, ReturnIfError) {
  int reached = 0;
  EXPECT_TRUE(UsesReturnIfError(false, &reached).ok());
  EXPECT_EQ(reached, 1);
  Status s = UsesReturnIfError(true, &reached);
  EXPECT_EQ(s.code(), Status::Code::kInternal);
  EXPECT_EQ(reached, 1);
}

Result<int> Half(int x) {
  if (x % 2 != 0) {
    return Status::InvalidArgument("odd");
  }
  return x / 2;
}

Result<int> Quarter(int x) {
  FERRY_ASSIGN_OR_RETURN(int half, Half(x));
  FERRY_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

TEST(ResultTest, ValueAndError) {
  Result<int> ok = Half(8);
  ASSERT_TRUE(ok.has_value());
  EXPECT_TRUE(static_cast<bool>(ok));
  EXPECT_EQ(*ok, 4);
  EXPECT_EQ(ok.value(), 4);
  EXPECT_TRUE(ok.error().ok());

  Result<int> bad = Half(3);
  EXPECT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "odd");
}

TEST(ResultTest, AssignOrReturn) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).error().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(Quarter(3).error().code(), Status::Code::kInvalidArgument);
}

TEST(ResultTest, MoveOnlyValue) {
  Result<std::unique_ptr<std::string>> r = std::make_unique<std::string>("x");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(**r, "x");
  std::unique_ptr<std::string> taken = std::move(r).value();
  EXPECT_EQ(*taken, "x");
}

}  // namespace
}  // namespace ferry
