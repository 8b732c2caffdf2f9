// Tests for StorageScu against ferry's own StorageScp on a free loopback port, in process: what
// arrives, when the SCU opens a new association, and how statuses, refusals and rejections are
// classified. Instances are written with DCMTK into a temporary directory.
#include "dicom/storage_scu.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <dcmtk/config/osconfig.h>  // DCMTK wants its configuration first.
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <gtest/gtest.h>

#include "dicom/storage_scp.h"

namespace ferry::dicom {
namespace {

namespace fs = std::filesystem;

constexpr char kCt[] = UID_CTImageStorage;
constexpr char kMr[] = UID_MRImageStorage;
constexpr char kExplicit[] = UID_LittleEndianExplicitTransferSyntax;
constexpr char kImplicit[] = UID_LittleEndianImplicitTransferSyntax;
constexpr char kDeflated[] = UID_DeflatedExplicitVRLittleEndianTransferSyntax;

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Records what the SCU delivers and answers with the status chosen per SOP Instance UID.
class Peer : public StoreHandler {
 public:
  explicit Peer(std::string dir) : dir_(std::move(dir)) {}

  AssociationDecision OnAssociationRequest(const AssociationInfo& info, std::string*) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++associations_;
    calling_ae_ = info.calling_ae;
    return decision_;
  }
  std::string NewStagingPath() override {
    std::lock_guard<std::mutex> lock(mu_);
    return dir_ + "/received-" + std::to_string(++files_);
  }
  bool HasRoom(const AssociationInfo&) override { return true; }
  StoreStatus OnStore(const AssociationInfo&, const StoreRequest& request,
                      std::string* comment) override {
    std::lock_guard<std::mutex> lock(mu_);
    received_[request.sop_instance_uid] = request.file_path;
    auto it = answers_.find(request.sop_instance_uid);
    if (it == answers_.end()) {
      return StoreStatus::kSuccess;
    }
    *comment = "test says no";
    return static_cast<StoreStatus>(it->second);
  }
  void OnStoreAborted(const AssociationInfo&, const std::string&) override {}
  void OnAssociationEnd(const AssociationInfo&, const AssociationSummary&) override {}

  void Answer(const std::string& sop_instance_uid, uint16_t status) {
    std::lock_guard<std::mutex> lock(mu_);
    answers_[sop_instance_uid] = status;
  }
  void Decide(AssociationDecision d) {
    std::lock_guard<std::mutex> lock(mu_);
    decision_ = d;
  }
  int associations() {
    std::lock_guard<std::mutex> lock(mu_);
    return associations_;
  }
  std::string calling_ae() {
    std::lock_guard<std::mutex> lock(mu_);
    return calling_ae_;
  }
  std::string Received(const std::string& sop_instance_uid) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = received_.find(sop_instance_uid);
    return it == received_.end() ? "" : it->second;
  }

 private:
  std::string dir_;
  std::mutex mu_;
  AssociationDecision decision_ = AssociationDecision::kAccept;
  int associations_ = 0;
  int files_ = 0;
  std::string calling_ae_;
  std::map<std::string, std::string> received_;
  std::map<std::string, uint16_t> answers_;
};

class StorageScuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "storage_scu_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    peer_ = std::make_unique<Peer>(dir_);
  }

  void TearDown() override {
    if (scp_ != nullptr) {
      scp_->Stop();
      thread_.join();
      scp_->WaitIdle(std::chrono::seconds(5));
      scp_.reset();
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void StartPeer(int dimse_timeout_s = 60) {
    ScpOptions o;
    o.port = FreePort();
    o.max_associations = 2;
    o.dimse_timeout_s = dimse_timeout_s;
    port_ = o.port;
    scp_ = std::make_unique<StorageScp>(o, peer_.get());
    ASSERT_TRUE(scp_->Start().ok());
    thread_ = std::thread([this] { scp_->Run(); });
  }

  ScuOptions Options() const {
    ScuOptions o;
    o.host = "127.0.0.1";
    o.port = port_;
    o.called_ae = "FERRY";
    o.calling_ae = "SCUTEST";
    o.timeout_s = 10;
    return o;
  }

  // Writes an instance of `sop_class` in `xfer` with 16 KiB of pixel data; returns its path.
  std::string Write(const std::string& sop_class, const std::string& sop_instance,
                    E_TransferSyntax xfer = EXS_LittleEndianExplicit) {
    DcmFileFormat file;
    DcmDataset* ds = file.getDataset();
    ds->putAndInsertString(DCM_SOPClassUID, sop_class.c_str());
    ds->putAndInsertString(DCM_SOPInstanceUID, sop_instance.c_str());
    ds->putAndInsertString(DCM_PatientName, "Doe^Jane");
    ds->putAndInsertUint16(DCM_Rows, 64);
    ds->putAndInsertUint16(DCM_Columns, 128);
    ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
    ds->putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
    ds->putAndInsertUint16(DCM_BitsAllocated, 16);
    ds->putAndInsertUint16(DCM_BitsStored, 12);
    ds->putAndInsertUint16(DCM_HighBit, 11);
    ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
    std::vector<Uint16> pixels(64 * 128);
    for (size_t i = 0; i < pixels.size(); ++i) {
      pixels[i] = static_cast<Uint16>((i * 37) % 4096);
    }
    ds->putAndInsertUint16Array(DCM_PixelData, pixels.data(), pixels.size());
    std::string path = dir_ + "/" + sop_instance + ".dcm";
    EXPECT_TRUE(file.saveFile(OFFilename(path.c_str()), xfer).good());
    return path;
  }

  // The bytes of a Part-10 file after its meta information, which DCMTK and ferry's SCP both
  // open with the group length: preamble, "DICM", (0002,0000) UL 4 <length>.
  static std::string Dataset(const std::string& path) {
    std::string bytes = ReadAll(path);
    EXPECT_GE(bytes.size(), 144u);
    EXPECT_EQ(bytes.substr(128, 6), std::string("DICM\x02\x00", 6));
    auto byte = [&](size_t i) {
      return static_cast<uint32_t>(static_cast<unsigned char>(bytes[i]));
    };
    uint32_t meta_length = byte(140) | byte(141) << 8 | byte(142) << 16 | byte(143) << 24;
    return bytes.substr(144 + meta_length);
  }

  std::string dir_;
  std::unique_ptr<Peer> peer_;
  std::unique_ptr<StorageScp> scp_;
  std::thread thread_;
  int port_ = 0;
};

TEST_F(StorageScuTest, SendsDatasetBytesUnchanged) {
  StartPeer();
  std::vector<std::pair<std::string, E_TransferSyntax>> cases = {
      {"1.2.3.1", EXS_LittleEndianExplicit},
      {"1.2.3.2", EXS_LittleEndianImplicit},
      {"1.2.3.3", EXS_DeflatedLittleEndianExplicit}};
  StorageScu scu(Options());
  ASSERT_TRUE(scu.Open({{kCt, kExplicit}, {kCt, kImplicit}, {kCt, kDeflated}}).ok());
  for (const auto& [uid, xfer] : cases) {
    std::string path = Write(kCt, uid, xfer);
    StoreResult r = scu.Store(path, {kCt, DcmXfer(xfer).getXferID()}, uid);
    EXPECT_EQ(r.outcome, StoreOutcome::kDelivered) << r.detail;
    EXPECT_FALSE(r.converted);
    std::string received = peer_->Received(uid);
    ASSERT_FALSE(received.empty()) << uid;
    std::string sent = Dataset(path);
    std::string got = Dataset(received);
    // A deflated stream of odd length travels with one pad byte, as DCMTK sends it.
    EXPECT_EQ(got.substr(0, sent.size()), sent) << uid;
    EXPECT_LE(got.size(), sent.size() + 1);
  }
  EXPECT_EQ(peer_->associations(), 1);
  EXPECT_EQ(peer_->calling_ae(), "SCUTEST");
}

TEST_F(StorageScuTest, OpensANewAssociationOnlyForContextsNotProposed) {
  StartPeer();
  StorageScu scu(Options());
  ASSERT_TRUE(scu.Open({{kCt, kExplicit}}).ok());
  EXPECT_TRUE(scu.Usable({kCt, kExplicit}));
  EXPECT_FALSE(scu.Usable({kMr, kExplicit}));
  EXPECT_EQ(scu.Store(Write(kCt, "1.2.4.1"), {kCt, kExplicit}, "1.2.4.1").outcome,
            StoreOutcome::kDelivered);
  ASSERT_TRUE(scu.Open({{kMr, kExplicit}}).ok());
  // The new association proposes the earlier needs too, so CT and MR may alternate.
  EXPECT_TRUE(scu.Usable({kMr, kExplicit}));
  EXPECT_TRUE(scu.Usable({kCt, kExplicit}));
  EXPECT_EQ(scu.Store(Write(kMr, "1.2.4.2"), {kMr, kExplicit}, "1.2.4.2").outcome,
            StoreOutcome::kDelivered);
  EXPECT_EQ(scu.Store(Write(kCt, "1.2.4.3"), {kCt, kExplicit}, "1.2.4.3").outcome,
            StoreOutcome::kDelivered);
  EXPECT_EQ(peer_->associations(), 2);
  scu.Release();
  EXPECT_FALSE(scu.is_open());
  EXPECT_FALSE(scu.Usable({kCt, kExplicit}));
}

TEST_F(StorageScuTest, NoticesThatThePeerEndedAnIdleAssociation) {
  StartPeer(/*dimse_timeout_s=*/1);  // the peer aborts associations idle for over a second
  StorageScu scu(Options());
  ASSERT_TRUE(scu.Open({{kCt, kExplicit}}).ok());
  EXPECT_EQ(scu.Store(Write(kCt, "1.2.7.1"), {kCt, kExplicit}, "1.2.7.1").outcome,
            StoreOutcome::kDelivered);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (scu.Usable({kCt, kExplicit}) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_FALSE(scu.Usable({kCt, kExplicit}));
  EXPECT_FALSE(scu.is_open());
  ASSERT_TRUE(scu.Open({{kCt, kExplicit}}).ok());
  EXPECT_EQ(scu.Store(Write(kCt, "1.2.7.2"), {kCt, kExplicit}, "1.2.7.2").outcome,
            StoreOutcome::kDelivered);
  EXPECT_EQ(peer_->associations(), 2);
}

TEST_F(StorageScuTest, ClassifiesResponseStatuses) {
  StartPeer();
  struct Case {
    uint16_t status;
    StoreOutcome outcome;
    const char* text;
  };
  std::vector<Case> cases = {
      {0xB000, StoreOutcome::kDelivered, "0xB000"}, {0xB007, StoreOutcome::kDelivered, "0xB007"},
      {0xA700, StoreOutcome::kTransient, "0xA700"}, {0xA701, StoreOutcome::kTransient, "0xA701"},
      {0x0122, StoreOutcome::kPermanent, "0x0122"}, {0xA900, StoreOutcome::kPermanent, "0xA900"},
      {0xC000, StoreOutcome::kPermanent, "0xC000"}, {0xC123, StoreOutcome::kPermanent, "0xC123"},
  };
  StorageScu scu(Options());
  ASSERT_TRUE(scu.Open({{kCt, kExplicit}}).ok());
  int n = 0;
  for (const Case& c : cases) {
    std::string uid = "1.2.5." + std::to_string(++n);
    peer_->Answer(uid, c.status);
    StoreResult r = scu.Store(Write(kCt, uid), {kCt, kExplicit}, uid);
    EXPECT_EQ(r.outcome, c.outcome) << c.text << ": " << r.detail;
    EXPECT_NE(r.detail.find(c.text), std::string::npos) << r.detail;
    EXPECT_NE(r.detail.find("test says no"), std::string::npos) << r.detail;
  }
  EXPECT_TRUE(scu.is_open());
  EXPECT_EQ(peer_->associations(), 1);
}

TEST_F(StorageScuTest, RefusedSopClassIsPermanent) {
  StartPeer();  // accepts storage SOP classes only
  const std::string kPrivateClass = "1.2.826.0.1.3680043.8.498.999";
  StorageScu scu(Options());
  ASSERT_TRUE(scu.Open({{kPrivateClass, kExplicit}, {kCt, kExplicit}}).ok());
  StoreResult r = scu.Store(Write(kPrivateClass, "1.2.6.1"), {kPrivateClass, kExplicit}, "1.2.6.1");
  EXPECT_EQ(r.outcome, StoreOutcome::kPermanent);
  EXPECT_NE(r.detail.find("destination refused SOP class " + kPrivateClass), std::string::npos)
      << r.detail;
  // The association stays usable for what the peer accepted.
  EXPECT_EQ(scu.Store(Write(kCt, "1.2.6.2"), {kCt, kExplicit}, "1.2.6.2").outcome,
            StoreOutcome::kDelivered);
}

TEST_F(StorageScuTest, PermanentRejectionIsPermissionDenied) {
  StartPeer();
  peer_->Decide(AssociationDecision::kRejectCalledAe);
  StorageScu scu(Options());
  Status s = scu.Open({{kCt, kExplicit}});
  EXPECT_EQ(s.code(), Status::Code::kPermissionDenied) << s.ToString();
  EXPECT_NE(s.message().find("called AE title \"FERRY\" not recognised"), std::string::npos)
      << s.message();
  EXPECT_FALSE(scu.is_open());
  peer_->Decide(AssociationDecision::kRejectCallingAe);
  s = scu.Echo();
  EXPECT_EQ(s.code(), Status::Code::kPermissionDenied) << s.ToString();
  EXPECT_NE(s.message().find("calling AE title \"SCUTEST\""), std::string::npos) << s.message();
}

TEST_F(StorageScuTest, EchoAndConnectionRefused) {
  StartPeer();
  StorageScu scu(Options());
  EXPECT_TRUE(scu.Echo().ok());
  ScuOptions nobody = Options();
  nobody.port = FreePort();
  StorageScu lonely(nobody);
  Status s = lonely.Echo();
  EXPECT_EQ(s.code(), Status::Code::kUnavailable);
  EXPECT_EQ(s.message(), "connection refused at 127.0.0.1:" + std::to_string(nobody.port) +
                             " — is the destination running?");
}

TEST(StorageScuNames, SopClassAndTransferSyntaxNames) {
  EXPECT_EQ(SopClassName(UID_CTImageStorage), "CT Image Storage");
  EXPECT_EQ(SopClassName(UID_SecondaryCaptureImageStorage), "Secondary Capture Image Storage");
  EXPECT_EQ(SopClassName("1.2.3.4.5"), "1.2.3.4.5");
  EXPECT_EQ(TransferSyntaxName(UID_JPEG2000LosslessOnlyTransferSyntax),
            "JPEG 2000 (Lossless only)");
}

}  // namespace
}  // namespace ferry::dicom
