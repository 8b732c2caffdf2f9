#include "receiver/receiver.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "testing/fake_clock.h"

namespace ferry {
namespace {

struct NetCase {
  const char* network;
  const char* address;
  bool contains;
};

class IpNetworkTest : public ::testing::TestWithParam<NetCase> {};

TEST_P(IpNetworkTest, Contains) {
  auto net = IpNetwork::Parse(GetParam().network);
  ASSERT_TRUE(net.has_value());
  EXPECT_EQ(net->Contains(GetParam().address), GetParam().contains)
      << GetParam().network << " " << GetParam().address;
}

INSTANTIATE_TEST_SUITE_P(Table, IpNetworkTest,
                         ::testing::Values(NetCase{"10.0.0.0/8", "10.1.2.3", true},
                                           NetCase{"10.0.0.0/8", "11.1.2.3", false},
                                           NetCase{"192.168.1.0/24", "192.168.1.255", true},
                                           NetCase{"192.168.1.0/24", "192.168.2.1", false},
                                           NetCase{"192.168.1.128/25", "192.168.1.127", false},
                                           NetCase{"192.168.1.128/25", "192.168.1.200", true},
                                           NetCase{"127.0.0.1", "127.0.0.1", true},
                                           NetCase{"127.0.0.1", "127.0.0.2", false},
                                           NetCase{"0.0.0.0/0", "8.8.8.8", true},
                                           NetCase{"127.0.0.0/8", "::ffff:127.0.0.1", true},
                                           NetCase{"::1", "::1", true},
                                           NetCase{"fd00::/8", "fd12::1", true},
                                           NetCase{"fd00::/8", "fe80::1", false},
                                           NetCase{"fd00::/8", "10.0.0.1", false},
                                           NetCase{"10.0.0.0/8", "not-an-ip", false}));

TEST(IpNetworkTest, RejectsGarbage) {
  EXPECT_FALSE(IpNetwork::Parse("10.0.0.0/40").has_value());
  EXPECT_FALSE(IpNetwork::Parse("ten.0.0.0").has_value());
  EXPECT_FALSE(IpNetwork::Parse("10.0.0.0/x").has_value());
}

class ReceiverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-receiver-XXXXXX";
    dir_ = mkdtemp(tmpl);
    spool_ = std::make_unique<Spool>(dir_, "receiver", DefaultFileSystem());
    ASSERT_TRUE(spool_->Init().ok());
    auto j = Journal::Open(dir_ + "/journal", "receiver", &clock_, DefaultFileSystem());
    ASSERT_TRUE(j.has_value());
    journal_ = std::move(j).value();
  }
  void TearDown() override { DefaultFileSystem()->RemoveTree(dir_); }

  dicom::AssociationDecision Decide(const ReceiverOptions& o, const std::string& calling,
                                    const std::string& called, const std::string& ip) {
    Receiver r(o, spool_.get(), journal_.get(), &clock_);
    std::string reason;
    return r.OnAssociationRequest({"a1", ip, calling, called}, &reason);
  }

  std::string dir_;
  FakeClock clock_;
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<Journal> journal_;
};

TEST_F(ReceiverTest, AcceptsAnyoneByDefault) {
  ReceiverOptions o;
  EXPECT_EQ(Decide(o, "ANY", "WHATEVER", "10.9.8.7"), dicom::AssociationDecision::kAccept);
}

TEST_F(ReceiverTest, CalledAeCheck) {
  ReceiverOptions o;
  o.check_called_ae_title = true;
  EXPECT_EQ(Decide(o, "CT", "FERRY", "127.0.0.1"), dicom::AssociationDecision::kAccept);
  EXPECT_EQ(Decide(o, "CT", "OTHER", "127.0.0.1"), dicom::AssociationDecision::kRejectCalledAe);
}

TEST_F(ReceiverTest, CallingAeAllowList) {
  ReceiverOptions o;
  o.allowed_calling_ae_titles = {"CT1", "MR1"};
  EXPECT_EQ(Decide(o, "MR1", "FERRY", "127.0.0.1"), dicom::AssociationDecision::kAccept);
  EXPECT_EQ(Decide(o, "US1", "FERRY", "127.0.0.1"), dicom::AssociationDecision::kRejectCallingAe);
}

TEST_F(ReceiverTest, NetworkAllowList) {
  ReceiverOptions o;
  o.allowed_networks = {"192.168.0.0/16"};
  EXPECT_EQ(Decide(o, "CT", "FERRY", "192.168.3.4"), dicom::AssociationDecision::kAccept);
  EXPECT_EQ(Decide(o, "CT", "FERRY", "127.0.0.1"), dicom::AssociationDecision::kRejectNoReason);
}

TEST_F(ReceiverTest, RejectionIsJournaled) {
  ReceiverOptions o;
  o.check_called_ae_title = true;
  Decide(o, "CT", "NOPE", "127.0.0.1");
  auto events = ReadJournalFile(journal_->path(), DefaultFileSystem());
  ASSERT_TRUE(events.has_value());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0]["event"], "association.rejected");
  EXPECT_EQ((*events)[0]["details"]["called_ae"], "NOPE");
}

TEST_F(ReceiverTest, UnparseableInstanceIsRejectedAndRemoved) {
  ReceiverOptions o;
  Receiver r(o, spool_.get(), journal_.get(), &clock_);
  std::string path = r.NewStagingPath();
  auto f = DefaultFileSystem()->NewWritableFile(path);
  ASSERT_TRUE(f.has_value());
  ASSERT_TRUE((*f)->Append("this is not DICOM").ok());
  ASSERT_TRUE((*f)->Close().ok());
  std::string comment;
  auto status = r.OnStore({"a1", "127.0.0.1", "CT", "FERRY"}, {path, "1.2", "1.2.3", 17},
                          &comment);
  EXPECT_EQ(status, dicom::StoreStatus::kCannotUnderstand);
  EXPECT_FALSE(DefaultFileSystem()->Exists(path));
  EXPECT_NE(comment.find("cannot be parsed"), std::string::npos);
  auto incoming = DefaultFileSystem()->ListDir(spool_->StagePath(kIncoming));
  ASSERT_TRUE(incoming.has_value());
  EXPECT_TRUE(incoming->empty());
}

}  // namespace
}  // namespace ferry
