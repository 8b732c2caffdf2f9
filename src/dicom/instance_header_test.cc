// Tests for ReadInstanceHeader. Files are written with DCMTK into a temporary directory, with raw
// bytes in the character set under test and in several transfer syntaxes; pydicom's sample
// files (Debian python3-pydicom) are read too when they are installed.
#include "dicom/instance_header.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <dcmtk/config/osconfig.h>  // DCMTK wants its configuration first.
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace ferry::dicom {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kSopClassUid[] = "1.2.840.10008.5.1.4.1.1.7";  // Secondary Capture
constexpr char kSopInstanceUid[] = "1.2.826.0.1.3680043.8.498.11";
constexpr char kSeriesInstanceUid[] = "1.2.826.0.1.3680043.8.498.12";
constexpr char kStudyInstanceUid[] = "1.2.826.0.1.3680043.8.498.13";
constexpr char kPydicomData[] = "/usr/lib/python3/dist-packages/pydicom/data";
constexpr char kUnconvertibleKey[] = "ferry_unconvertible";

// One element to write, its value in raw bytes (already in the dataset's character set; for
// binary VRs the DCMTK string form such as "0\\256").
struct RawElement {
  DcmTagKey tag;
  DcmEVR vr;
  std::string bytes;
};

struct InstanceSpec {
  std::string charset;  // SpecificCharacterSet; empty: the element is left out
  std::vector<RawElement> elements;
  bool with_sop_instance_uid = true;
  bool with_pixel_data = false;
  bool with_sequence = false;
  E_TransferSyntax xfer = EXS_LittleEndianExplicit;
};

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "instance_header_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Writes a Part-10 file described by `spec` and returns its path.
  std::string Write(const InstanceSpec& spec, const std::string& name = "instance.dcm") {
    DcmFileFormat file;
    DcmDataset* ds = file.getDataset();
    if (!spec.charset.empty()) {
      EXPECT_TRUE(ds->putAndInsertString(DCM_SpecificCharacterSet, spec.charset.c_str()).good());
    }
    EXPECT_TRUE(ds->putAndInsertString(DCM_SOPClassUID, kSopClassUid).good());
    if (spec.with_sop_instance_uid) {
      EXPECT_TRUE(ds->putAndInsertString(DCM_SOPInstanceUID, kSopInstanceUid).good());
    }
    EXPECT_TRUE(ds->putAndInsertString(DCM_SeriesInstanceUID, kSeriesInstanceUid).good());
    EXPECT_TRUE(ds->putAndInsertString(DCM_StudyInstanceUID, kStudyInstanceUid).good());
    EXPECT_TRUE(ds->putAndInsertString(DCM_Modality, "OT").good());
    for (const RawElement& e : spec.elements) {
      const DcmTag tag(e.tag, DcmVR(e.vr));
      const OFCondition put =
          e.vr == EVR_OB
              ? ds->putAndInsertUint8Array(tag, reinterpret_cast<const Uint8*>(e.bytes.data()),
                                           static_cast<unsigned long>(e.bytes.size()))
              : ds->putAndInsertString(tag, e.bytes.data(), static_cast<Uint32>(e.bytes.size()));
      EXPECT_TRUE(put.good()) << e.tag.toString() << ": " << put.text();
    }
    if (spec.with_sequence) {
      DcmItem* item = nullptr;
      EXPECT_TRUE(ds->findOrCreateSequenceItem(DCM_ReferencedImageSequence, item, -2).good());
      item->putAndInsertString(DCM_ReferencedSOPClassUID, kSopClassUid);
      item->putAndInsertString(DCM_ReferencedSOPInstanceUID, "1.2.3.4");
    }
    if (spec.with_pixel_data) {
      constexpr Uint16 kSide = 64;  // 8 KiB of pixels: more than ReadInstanceHeader loads
      std::vector<Uint16> pixels(kSide * kSide, 0x0102);
      ds->putAndInsertUint16(DCM_Rows, kSide);
      ds->putAndInsertUint16(DCM_Columns, kSide);
      ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
      ds->putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
      ds->putAndInsertUint16(DCM_BitsAllocated, 16);
      ds->putAndInsertUint16(DCM_BitsStored, 16);
      ds->putAndInsertUint16(DCM_HighBit, 15);
      ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
      EXPECT_TRUE(ds->putAndInsertUint16Array(DCM_PixelData, pixels.data(), pixels.size()).good());
    }
    const std::string path = dir_ + "/" + name;
    const OFCondition saved =
        file.saveFile(OFFilename(path.c_str()), spec.xfer, EET_ExplicitLength, EGL_withGL);
    EXPECT_TRUE(saved.good()) << saved.text();
    return path;
  }

  std::string WriteBytes(const std::string& bytes, const std::string& name) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  std::string dir_;
};

// Reads `path` (the read must succeed) and returns the parsed tags; *header gets the rest.
json ReadTags(const std::string& path, InstanceHeader* header = nullptr,
              const TransferContext& ctx = {}) {
  Result<InstanceHeader> result = ReadInstanceHeader(path, ctx);
  EXPECT_TRUE(result.has_value()) << result.error().ToString();
  if (!result.has_value()) {
    return json::object();
  }
  json tags = json::parse(result->tags_json);  // throws (failing the test) if not valid JSON
  if (header != nullptr) {
    *header = std::move(result).value();
  }
  return tags;
}

// The value of `key`, or "<missing>" (json's const operator[] must not see a missing key).
json Get(const json& tags, const std::string& key) {
  const auto it = tags.find(key);
  return it == tags.end() ? json("<missing>") : *it;
}

// --- Transfer syntaxes -------------------------------------------------------------------------

class TransferSyntaxTest : public TempDirTest,
                           public ::testing::WithParamInterface<E_TransferSyntax> {};

TEST_P(TransferSyntaxTest, ReadsUidsTagsAndLatin1InEveryTransferSyntax) {
  InstanceSpec spec;
  spec.xfer = GetParam();
  spec.charset = "ISO_IR 100";
  spec.with_pixel_data = true;
  spec.elements = {{DCM_PatientName, EVR_PN, "M\xFCller^Hans"},
                   {DCM_ImageType, EVR_CS, "ORIGINAL\\PRIMARY\\AXIAL"}};
  const std::string path = Write(spec);

  InstanceHeader header;
  const json tags = ReadTags(path, &header);
  EXPECT_EQ(header.sop_class_uid, kSopClassUid);
  EXPECT_EQ(header.sop_instance_uid, kSopInstanceUid);
  EXPECT_EQ(header.series_instance_uid, kSeriesInstanceUid);
  EXPECT_EQ(header.study_instance_uid, kStudyInstanceUid);
  EXPECT_EQ(header.transfer_syntax_uid, DcmXfer(GetParam()).getXferID());
  EXPECT_TRUE(header.unconvertible.empty());
  EXPECT_EQ(Get(tags, "PatientName"), "Müller^Hans");
  EXPECT_EQ(Get(tags, "ImageType"), "ORIGINAL\\PRIMARY\\AXIAL");
  EXPECT_EQ(Get(tags, "Rows"), "64");
  EXPECT_EQ(Get(tags, "SOPInstanceUID"), kSopInstanceUid);
  EXPECT_EQ(Get(tags, "MediaStorageSOPClassUID"), kSopClassUid);
  EXPECT_FALSE(tags.contains("PixelData"));
  EXPECT_FALSE(tags.contains(kUnconvertibleKey));
}

INSTANTIATE_TEST_SUITE_P(AllSyntaxes, TransferSyntaxTest,
                         ::testing::Values(EXS_LittleEndianImplicit, EXS_LittleEndianExplicit,
                                           EXS_BigEndianExplicit, EXS_DeflatedLittleEndianExplicit),
                         [](const ::testing::TestParamInfo<E_TransferSyntax>& info) {
                           switch (info.param) {
                             case EXS_LittleEndianImplicit:
                               return std::string("ImplicitLittle");
                             case EXS_LittleEndianExplicit:
                               return std::string("ExplicitLittle");
                             case EXS_BigEndianExplicit:
                               return std::string("ExplicitBig");
                             default:
                               return std::string("Deflated");
                           }
                         });

// --- Character sets ----------------------------------------------------------------------------

struct CharsetCase {
  const char* name;
  const char* charset;
  RawElement element;
  const char* key;
  std::string expected;  // UTF-8
};

class CharsetTest : public TempDirTest, public ::testing::WithParamInterface<CharsetCase> {};

TEST_P(CharsetTest, ConvertsToUtf8) {
  const CharsetCase& c = GetParam();
  InstanceSpec spec;
  spec.charset = c.charset;
  spec.elements = {c.element};
  InstanceHeader header;
  const json tags = ReadTags(Write(spec), &header);
  EXPECT_EQ(Get(tags, c.key), c.expected);
  EXPECT_TRUE(header.unconvertible.empty());
  EXPECT_FALSE(tags.contains(kUnconvertibleKey));
  EXPECT_EQ(Get(tags, "SpecificCharacterSet"), c.charset);
}

// Raw byte strings are split where a hex escape would otherwise swallow the next character.
const CharsetCase kCharsetCases[] = {
    {"Latin1",
     "ISO_IR 100",
     {DCM_PatientName, EVR_PN, "M\xFCller^G\xFCnther"},
     "PatientName",
     "Müller^Günther"},
    {"Latin1MultiValuedRetiredKeyword",
     "ISO_IR 100",
     {DCM_RETIRED_OtherPatientIDs, EVR_LO,
      "M\xFCller\\Stra\xDF"
      "e"},
     "OtherPatientIDs",
     "Müller\\Straße"},
    {"Latin1MultiValuedPersonNames",
     "ISO_IR 100",
     {DCM_OtherPatientNames, EVR_PN, "Buc^J\xE9r\xF4me\\Buc^J\xE9r\xF4me"},
     "OtherPatientNames",
     "Buc^Jérôme\\Buc^Jérôme"},
    {"Latin1LoneIso2022Term",
     "ISO 2022 IR 100",
     {DCM_PatientName, EVR_PN, "M\xFCller"},
     "PatientName",
     "Müller"},
    {"Greek",
     "ISO_IR 126",
     {DCM_PatientName, EVR_PN, "\xC4\xE9\xEF\xED\xF5\xF3\xE9\xEF\xF2"},
     "PatientName",
     "Διονυσιος"},
    {"Cyrillic",
     "ISO_IR 144",
     {DCM_StudyDescription, EVR_LO,
      "\xBB\xEE\xDA"
      "ce\xDC\xD1yp\xD3"},
     "StudyDescription",
     "Люкceмбypг"},
    // DICOM PS3.5 H.3.1: ISO 2022 IR 87 with escape sequences (DCMTK cannot open ISO-IR-87).
    {"JapaneseKanjiHiragana",
     "\\ISO 2022 IR 87",
     {DCM_PatientName, EVR_PN,
      "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"},
     "PatientName",
     "Yamada^Tarou=山田^太郎=やまだ^たろう"},
    // DICOM PS3.5 H.3.2: half-width katakana (ISO 2022 IR 13) as the default set.
    {"JapaneseKatakanaDefault",
     "ISO 2022 IR 13\\ISO 2022 IR 87",
     {DCM_PatientName, EVR_PN,
      "\xD4\xCF\xC0\xDE^\xC0\xDB\xB3=\x1b$B;3ED\x1b(J^\x1b$BB@O:\x1b(J=\x1b$B$d$^$@\x1b(J^"
      "\x1b$B$?$m$&\x1b(J"},
     "PatientName",
     "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"},
    {"JapaneseExplicitIr6",
     "ISO 2022 IR 6\\ISO 2022 IR 87",
     {DCM_PatientName, EVR_PN, "\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"},
     "PatientName",
     "やまだ^たろう"},
    {"JapaneseSupplementaryKanji",
     "\\ISO 2022 IR 87\\ISO 2022 IR 159",
     {DCM_StudyDescription, EVR_LO,
      "A\x1b$(D"
      "0!\x1b(B"
      "B"},
     "StudyDescription",
     "A丂B"},
    {"JapaneseKatakanaMultiValuedKeepsBackslash",
     "ISO_IR 13",
     {DCM_RETIRED_OtherPatientIDs, EVR_LO, "\xB1\\\xB2"},
     "OtherPatientIDs",
     "ｱ\\ｲ"},
    // DICOM PS3.5 I.2: Korean, KS X 1001 in G1.
    {"Korean",
     "\\ISO 2022 IR 149",
     {DCM_PatientName, EVR_PN,
      "Hong^Gildong=\x1b$)C\xFB\xF3^\x1b$)C\xD1\xCE\xD4\xD7=\x1b$)C\xC8\xAB^\x1b$)"
      "C\xB1\xE6\xB5\xBF"},
     "PatientName",
     "Hong^Gildong=洪^吉洞=홍^길동"},
    // DICOM PS3.5 J.1 and J.2; DCMTK keeps the empty trailing component group.
    {"Utf8",
     "ISO_IR 192",
     {DCM_PatientName, EVR_PN, "Wang^XiaoDong=\xE7\x8E\x8B^\xE5\xB0\x8F\xE6\x9D\xB1="},
     "PatientName",
     "Wang^XiaoDong=王^小東="},
    {"Gb18030",
     "GB18030",
     {DCM_PatientName, EVR_PN, "Wang^XiaoDong=\xCD\xF5^\xD0\xA1\xB6\xAB="},
     "PatientName",
     "Wang^XiaoDong=王^小东="},
    // getdcmtags' value formatting: CR -> ';', LF -> ' ', '"' -> '\''.
    {"MercureLineBreaksAndQuotes",
     "ISO_IR 100",
     {DCM_ImageComments, EVR_LT,
      "line1\r\nsaid \"gr\xFC\xDF"
      "e\""},
     "ImageComments",
     "line1; said 'grüße'"},
};

INSTANTIATE_TEST_SUITE_P(Table, CharsetTest, ::testing::ValuesIn(kCharsetCases),
                         [](const ::testing::TestParamInfo<CharsetCase>& info) {
                           return std::string(info.param.name);
                         });

struct UnconvertibleCase {
  const char* name;
  const char* charset;  // "" leaves SpecificCharacterSet out
  std::string raw;
  std::string expected;  // the escaped form kept in the tags
};

class UnconvertibleTest : public TempDirTest,
                          public ::testing::WithParamInterface<UnconvertibleCase> {};

TEST_P(UnconvertibleTest, KeepsEscapedValueAndFlagsIt) {
  const UnconvertibleCase& c = GetParam();
  InstanceSpec spec;
  spec.charset = c.charset;
  spec.elements = {{DCM_PatientName, EVR_PN, c.raw},
                   {DCM_StudyDescription, EVR_LO, "Head \"CT\""},
                   {DCM_InstitutionName, EVR_LO, c.raw}};
  InstanceHeader header;
  const json tags = ReadTags(Write(spec), &header);
  EXPECT_EQ(Get(tags, "PatientName"), c.expected);
  EXPECT_EQ(Get(tags, "InstitutionName"), c.expected);
  EXPECT_EQ(Get(tags, "StudyDescription"), "Head 'CT'");  // pure ASCII is never affected
  EXPECT_EQ(header.unconvertible, (std::vector<std::string>{"InstitutionName", "PatientName"}));
  EXPECT_EQ(Get(tags, kUnconvertibleKey), "InstitutionName\\PatientName");
  EXPECT_EQ(header.sop_instance_uid, kSopInstanceUid);
}

const UnconvertibleCase kUnconvertibleCases[] = {
    {"InvalidUtf8", "ISO_IR 192", "Caf\xC3(^Bob", "Caf\\xC3(^Bob"},
    {"OverlongUtf8", "ISO_IR 192",
     "a\xC0\xAF"
     "b",
     "a\\xC0\\xAFb"},
    {"UnknownCharset", "ISO_IR 999", "M\xFCller", "M\\xFCller"},
    {"NoCharsetButLatin1", "", "M\xFCller", "M\\xFCller"},
    {"NonExtensionTermInList", "ISO_IR 100\\ISO 2022 IR 87", "\x1b$B;3ED\x1b(B",
     "\\x1B$B;3ED\\x1B(B"},
    {"UnknownEscapeInJapanese", "\\ISO 2022 IR 87", "\x1b$A;3\x1b(B", "\\x1B$A;3\\x1B(B"},
    {"OddKanjiBytes", "\\ISO 2022 IR 87", "\x1b$B;3E\x1b(B", "\\x1B$B;3E\\x1B(B"},
    {"KoreanUndeclared", "ISO_IR 192", "\x1b$)C\xFB\xF3", "\\x1B$)C\\xFB\\xF3"},
};

INSTANTIATE_TEST_SUITE_P(Table, UnconvertibleTest, ::testing::ValuesIn(kUnconvertibleCases),
                         [](const ::testing::TestParamInfo<UnconvertibleCase>& info) {
                           return std::string(info.param.name);
                         });

// --- Keys and values ---------------------------------------------------------------------------

using ReadInstanceHeaderTest = TempDirTest;

TEST_F(ReadInstanceHeaderTest, KeysPrivateUnknownAndRepeatingTagsByNumber) {
  InstanceSpec spec;
  spec.elements = {{DcmTagKey(0x0009, 0x0010), EVR_LO, "ACME 1.0"},
                   {DcmTagKey(0x0009, 0x1001), EVR_LO, "private value"},
                   {DcmTagKey(0x0018, 0xFFF0), EVR_LO, "unknown public"},
                   {DcmTagKey(0x6000, 0x0010), EVR_US, "1"},
                   {DcmTagKey(0x6002, 0x0010), EVR_US, "2"},
                   {DCM_RETIRED_RecognitionCode, EVR_SH, "ACR-NEMA 2.0"}};
  const json tags = ReadTags(Write(spec));
  EXPECT_EQ(Get(tags, "0009,0010"), "ACME 1.0");
  EXPECT_EQ(Get(tags, "0009,1001"), "private value");
  EXPECT_EQ(Get(tags, "0018,fff0"), "unknown public");
  EXPECT_EQ(Get(tags, "OverlayRows"), "1");
  EXPECT_EQ(Get(tags, "6002,0010"), "2");
  EXPECT_EQ(Get(tags, "RecognitionCode"), "ACR-NEMA 2.0");
  EXPECT_FALSE(tags.contains("PrivateCreator"));
}

// Without explicit VRs a private element that no dictionary knows reads back as UN, which is
// skipped; private creators are always LO.
TEST_F(ReadInstanceHeaderTest, ImplicitVrKeepsPrivateCreatorsOnly) {
  InstanceSpec spec;
  spec.xfer = EXS_LittleEndianImplicit;
  spec.elements = {{DcmTagKey(0x0009, 0x0010), EVR_LO, "ACME 1.0"},
                   {DcmTagKey(0x0009, 0x1001), EVR_LO, "private value"}};
  const json tags = ReadTags(Write(spec));
  EXPECT_EQ(Get(tags, "0009,0010"), "ACME 1.0");
  EXPECT_FALSE(tags.contains("0009,1001"));
}

TEST_F(ReadInstanceHeaderTest, RendersBinaryNumbersAndSkipsBinaryBlobs) {
  InstanceSpec spec;
  spec.with_pixel_data = true;
  spec.with_sequence = true;
  std::string long_matrix = "1";
  for (int i = 0; i < 2999; ++i) {
    long_matrix += "\\1";  // 3000 US values: 6000 bytes, left on disk
  }
  spec.elements = {{DCM_AcquisitionMatrix, EVR_US, "0\\256\\256\\0"},
                   {DCM_DiffusionBValue, EVR_FD, "1000"},
                   {DCM_FrameIncrementPointer, EVR_AT, "(0018,1063)"},
                   {DcmTagKey(0x0019, 0x1001), EVR_SL, "-5"},
                   {DcmTagKey(0x0019, 0x1002), EVR_US, long_matrix},
                   {DcmTagKey(0x0019, 0x1003), EVR_OB, "\x01\x02"}};
  const json tags = ReadTags(Write(spec));
  EXPECT_EQ(Get(tags, "AcquisitionMatrix"), "0\\256\\256\\0");
  EXPECT_EQ(Get(tags, "DiffusionBValue"), "1000");
  EXPECT_EQ(Get(tags, "FrameIncrementPointer"), "(0018,1063)");
  EXPECT_EQ(Get(tags, "0019,1001"), "-5");
  EXPECT_EQ(Get(tags, "BitsAllocated"), "16");
  EXPECT_FALSE(tags.contains("0019,1002"));
  EXPECT_FALSE(tags.contains("0019,1003"));
  EXPECT_FALSE(tags.contains("PixelData"));
  EXPECT_FALSE(tags.contains("ReferencedImageSequence"));
  EXPECT_FALSE(tags.contains("ReferencedSOPInstanceUID"));
  // Written with group lengths; they are encoding, not content.
  EXPECT_FALSE(tags.contains("0008,0000"));
  EXPECT_FALSE(tags.contains("GenericGroupLength"));
  for (const auto& [key, value] : tags.items()) {
    EXPECT_TRUE(value.is_string()) << key;
  }
}

TEST_F(ReadInstanceHeaderTest, ValuesOfOnlyDelimitersAreEmptyAsInMercure) {
  InstanceSpec spec;
  spec.elements = {{DCM_ReferringPhysicianName, EVR_PN, "^^^^"},
                   {DCM_ImageType, EVR_CS, "\\"},
                   {DCM_OperatorsName, EVR_PN, "^Jane"}};
  const json tags = ReadTags(Write(spec));
  EXPECT_EQ(Get(tags, "ReferringPhysicianName"), "");
  EXPECT_EQ(Get(tags, "ImageType"), "");
  EXPECT_EQ(Get(tags, "OperatorsName"), "^Jane");
}

TEST_F(ReadInstanceHeaderTest, LoadsLongStringsOnDemand) {
  InstanceSpec spec;
  spec.charset = "ISO_IR 100";
  const std::string long_text = std::string(6000, 'x') + "\xE9";
  spec.elements = {{DCM_ImageComments, EVR_LT, long_text}};
  const json tags = ReadTags(Write(spec));
  EXPECT_EQ(Get(tags, "ImageComments"), std::string(6000, 'x') + "é");
}

TEST_F(ReadInstanceHeaderTest, AddsMercureFieldsAndTransferContext) {
  InstanceSpec spec;
  spec.elements = {{DCM_StudyDescription, EVR_LO, "Brain"}};
  const std::string path = Write(spec, "1.2.3.dcm");
  const TransferContext ctx{"192.0.2.7", "MODALITY", "FERRY"};
  const json tags = ReadTags(path, nullptr, ctx);
  EXPECT_EQ(Get(tags, "SenderAddress"), "192.0.2.7");
  EXPECT_EQ(Get(tags, "SenderAET"), "MODALITY");
  EXPECT_EQ(Get(tags, "ReceiverAET"), "FERRY");
  EXPECT_EQ(Get(tags, "Filename"), "1.2.3.dcm");
  EXPECT_EQ(Get(tags, "StudyDescription"), "Brain");
  // getdcmtags always writes its fixed keys, empty when the element is absent.
  for (const char* key : {"BodyPartExamined", "ProtocolName", "PatientName", "CodeMeaning",
                          "SpecificCharacterSet", "AcquisitionType", "ImageType"}) {
    ASSERT_TRUE(tags.contains(key)) << key;
    EXPECT_EQ(Get(tags, key), "") << key;
  }
  EXPECT_EQ(Get(tags, "MediaStorageSOPClassUID"), kSopClassUid);
}

TEST_F(ReadInstanceHeaderTest, EscapesContextThatIsNotUtf8) {
  InstanceSpec spec;
  const TransferContext ctx{"192.0.2.7", "AE\xFF", "FERRY"};
  const json tags = ReadTags(Write(spec), nullptr, ctx);
  EXPECT_EQ(Get(tags, "SenderAET"), "AE\\xFF");
  EXPECT_FALSE(tags.contains(kUnconvertibleKey));
}

TEST_F(ReadInstanceHeaderTest, MissingSopInstanceUidIsEmpty) {
  InstanceSpec spec;
  spec.with_sop_instance_uid = false;
  InstanceHeader header;
  const json tags = ReadTags(Write(spec), &header);
  EXPECT_EQ(header.sop_instance_uid, "");
  EXPECT_EQ(header.series_instance_uid, kSeriesInstanceUid);
  EXPECT_EQ(Get(tags, "SOPInstanceUID"), "");
}

TEST_F(ReadInstanceHeaderTest, IsReentrant) {
  InstanceSpec latin1;
  latin1.charset = "ISO_IR 100";
  latin1.elements = {{DCM_PatientName, EVR_PN, "M\xFCller"}};
  InstanceSpec japanese;
  japanese.charset = "\\ISO 2022 IR 87";
  japanese.elements = {{DCM_PatientName, EVR_PN, "\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"}};
  InstanceSpec korean;
  korean.charset = "\\ISO 2022 IR 149";
  korean.elements = {{DCM_PatientName, EVR_PN, "Hong=\x1b$)C\xFB\xF3"}};
  const std::vector<std::string> paths = {Write(latin1, "a.dcm"), Write(japanese, "b.dcm"),
                                          Write(korean, "c.dcm")};
  std::vector<std::string> expected;
  for (const std::string& path : paths) {
    expected.push_back(ReadInstanceHeader(path, {}).value().tags_json);
  }
  std::vector<int> mismatches(8, 0);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < mismatches.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 60; ++i) {
        const size_t k = (t + i) % paths.size();
        const Result<InstanceHeader> result = ReadInstanceHeader(paths[k], {});
        if (!result.has_value() || result->tags_json != expected[k]) {
          ++mismatches[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  for (size_t t = 0; t < mismatches.size(); ++t) {
    EXPECT_EQ(mismatches[t], 0) << "thread " << t;
  }
}

// --- Files that are not (whole) DICOM ----------------------------------------------------------

TEST_F(ReadInstanceHeaderTest, NotDicomIsCorruption) {
  const std::string path =
      WriteBytes("This is a plain text file, certainly not a DICOM data set.\n", "text.dcm");
  const Result<InstanceHeader> result = ReadInstanceHeader(path, {});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code(), Status::Code::kCorruption);
  EXPECT_NE(result.error().message().find(path), std::string::npos);
}

TEST_F(ReadInstanceHeaderTest, EmptyFileIsCorruption) {
  const Result<InstanceHeader> result = ReadInstanceHeader(WriteBytes("", "empty.dcm"), {});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code(), Status::Code::kCorruption);
}

TEST_F(ReadInstanceHeaderTest, MissingFileIsNotFound) {
  const Result<InstanceHeader> result = ReadInstanceHeader(dir_ + "/absent.dcm", {});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code(), Status::Code::kNotFound) << result.error().ToString();
}

TEST_F(ReadInstanceHeaderTest, StandardInputIsNotAPath) {
  for (const std::string path : {"", "-"}) {
    const Result<InstanceHeader> result = ReadInstanceHeader(path, {});
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().code(), Status::Code::kInvalidArgument);
  }
}

TEST_F(ReadInstanceHeaderTest, TruncatedFilesAreCorruption) {
  InstanceSpec spec;
  spec.with_pixel_data = true;
  spec.elements = {{DCM_StudyDescription, EVR_LO, "Brain"}};
  const std::string path = Write(spec);
  const auto size = fs::file_size(path);
  // Cut in the pixel data, in the middle of the data set, and inside the file meta header.
  for (const std::uintmax_t keep :
       {size - 100, size / 2, std::uintmax_t{400}, std::uintmax_t{140}}) {
    SCOPED_TRACE(keep);
    const std::string cut = dir_ + "/cut.dcm";
    fs::copy_file(path, cut, fs::copy_options::overwrite_existing);
    fs::resize_file(cut, keep);
    const Result<InstanceHeader> result = ReadInstanceHeader(cut, {});
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().code(), Status::Code::kCorruption);
  }
}

// --- pydicom's sample files --------------------------------------------------------------------

struct SampleCase {
  const char* file;  // relative to kPydicomData
  const char* key;
  std::string expected;  // UTF-8, as pydicom decodes it (DCMTK keeps trailing empty PN groups)
};

class PydicomSampleTest : public ::testing::TestWithParam<SampleCase> {};

TEST_P(PydicomSampleTest, MatchesPydicom) {
  const SampleCase& c = GetParam();
  const std::string path = std::string(kPydicomData) + "/" + c.file;
  if (!fs::exists(path)) {
    GTEST_SKIP() << path << " is not installed (Debian package python3-pydicom)";
  }
  InstanceHeader header;
  const json tags = ReadTags(path, &header);
  EXPECT_EQ(Get(tags, c.key), c.expected);
  EXPECT_TRUE(header.unconvertible.empty()) << Get(tags, kUnconvertibleKey);
}

const SampleCase kSampleCases[] = {
    {"charset_files/chrArab.dcm", "PatientName", "قباني^لنزار"},
    {"charset_files/chrFren.dcm", "PatientName", "Buc^Jérôme"},
    {"charset_files/chrFrenMulti.dcm", "OtherPatientNames", "Buc^Jérôme\\Buc^Jérôme"},
    {"charset_files/chrFrenMulti.dcm", "OtherPatientIDs", "eggs\\spam"},
    {"charset_files/chrGerm.dcm", "PatientName", "Äneas^Rüdiger"},
    {"charset_files/chrGreek.dcm", "PatientName", "Διονυσιος"},
    {"charset_files/chrH31.dcm", "PatientName", "Yamada^Tarou=山田^太郎=やまだ^たろう"},
    {"charset_files/chrH32.dcm", "PatientName", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"},
    {"charset_files/chrHbrw.dcm", "PatientName", "שרון^דבורה"},
    {"charset_files/chrI2.dcm", "PatientName", "Hong^Gildong=洪^吉洞=홍^길동"},
    {"charset_files/chrJapMulti.dcm", "OtherPatientNames", "やまだ^たろう\\やまだ^たろう"},
    {"charset_files/chrJapMulti.dcm", "AdditionalPatientHistory", "たろう"},
    {"charset_files/chrJapMultiExplicitIR6.dcm", "PatientName", "やまだ^たろう"},
    {"charset_files/chrKoreanMulti.dcm", "OperatorsName", "김희중"},
    {"charset_files/chrKoreanMulti.dcm", "OtherPatientNames", "김희중\\김희중"},
    {"charset_files/chrKoreanMulti.dcm", "0019,0010", "AGFA"},
    {"charset_files/chrRuss.dcm", "PatientName", "Люкceмбypг"},
    {"charset_files/chrSQEncoding.dcm", "RequestingPhysician", "Doctor^Who^^MD"},
    {"charset_files/chrSQEncoding1.dcm", "RequestingPhysician", "Doctor^Who^^MD"},
    {"charset_files/chrX1.dcm", "PatientName", "Wang^XiaoDong=王^小東="},
    {"charset_files/chrX2.dcm", "PatientName", "Wang^XiaoDong=王^小东="},
    {"test_files/MR_small_bigendian.dcm", "PatientName", "CompressedSamples^MR1"},
    {"test_files/MR_small_bigendian.dcm", "SliceThickness", "0.8000"},  // as stored
    {"test_files/image_dfl.dcm", "SOPInstanceUID", "1.3.6.1.4.1.5962.1.1.0.0.0.977067309.6001.0"},
    {"test_files/ExplVR_BigEndNoMeta.dcm", "Modality", "RTPLAN"},
    {"test_files/ExplVR_LitEndNoMeta.dcm", "Modality", "RTPLAN"},
};

INSTANTIATE_TEST_SUITE_P(Table, PydicomSampleTest, ::testing::ValuesIn(kSampleCases),
                         [](const ::testing::TestParamInfo<PydicomSampleTest::ParamType>& info) {
                           std::string name = fs::path(info.param.file).stem().string() + "_" +
                                              info.param.key + "_" + std::to_string(info.index);
                           for (char& ch : name) {
                             if (!isalnum(static_cast<unsigned char>(ch))) {
                               ch = '_';
                             }
                           }
                           return name;
                         });

TEST(PydicomSamples, BigEndianAndDeflatedReadLikeTheirLittleEndianOriginals) {
  const std::string dir = std::string(kPydicomData) + "/test_files/";
  if (!fs::exists(dir + "MR_small.dcm") || !fs::exists(dir + "MR_small_bigendian.dcm")) {
    GTEST_SKIP() << "pydicom's test files are not installed";
  }
  InstanceHeader little_header;
  InstanceHeader big_header;
  json little = ReadTags(dir + "MR_small.dcm", &little_header);
  json big = ReadTags(dir + "MR_small_bigendian.dcm", &big_header);
  EXPECT_EQ(big_header.transfer_syntax_uid, "1.2.840.10008.1.2.2");
  EXPECT_EQ(little_header.sop_instance_uid, big_header.sop_instance_uid);
  little.erase("Filename");
  big.erase("Filename");
  EXPECT_EQ(little, big);
}

// Every sample pydicom ships, good or broken, is read without a crash: either valid tags or
// Corruption.
TEST(PydicomSamples, EverySampleReadsOrIsCorruption) {
  int files = 0;
  for (const char* sub : {"test_files", "charset_files"}) {
    const fs::path dir = fs::path(kPydicomData) / sub;
    if (!fs::is_directory(dir)) {
      continue;
    }
    for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
      if (entry.path().extension() != ".dcm") {
        continue;
      }
      ++files;
      SCOPED_TRACE(entry.path().string());
      const Result<InstanceHeader> result = ReadInstanceHeader(entry.path().string(), {});
      if (!result.has_value()) {
        EXPECT_EQ(result.error().code(), Status::Code::kCorruption) << result.error().ToString();
        continue;
      }
      const json tags = json::parse(result->tags_json);
      EXPECT_TRUE(tags.is_object());
    }
  }
  if (files == 0) {
    GTEST_SKIP() << "pydicom's sample files are not installed";
  }
}

}  // namespace
}  // namespace ferry::dicom
