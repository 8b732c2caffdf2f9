// ReadInstanceHeader: one DCMTK parse of the file, one pass over the top-level elements.
//
// Character sets are selected lazily: most instances are pure ASCII and never open an iconv
// converter. See instance_header.h for the exact form of the tags object.
#include "dicom/instance_header.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <dcmtk/config/osconfig.h>  // DCMTK wants its configuration first.
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcdicent.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcspchrs.h>
#include <dcmtk/dcmdata/dcvr.h>
#include <dcmtk/ofstd/ofchrenc.h>
#include <nlohmann/json.hpp>

namespace ferry::dicom {
namespace {

// Values are moved out of DCMTK without a copy; Debian's DCMTK is built with HAVE_STL_STRING.
static_assert(std::is_same_v<OFString, std::string>, "ferry expects DCMTK built with STL strings");

// Values longer than this stay on disk (pixel data, large arrays); long strings are loaded on
// demand, which is rare. The same limit as getdcmtags.
constexpr Uint32 kMaxReadLength = 4096;

constexpr char kUnconvertibleKey[] = "ferry_unconvertible";

// The OFCondition code DcmFileProducer uses when it cannot open (or seek in) the file.
constexpr unsigned short kDcmtkCannotOpenFile = 18;

// getdcmtags always writes these keys, with "" when the element is absent. Rules written for
// mercure may rely on their presence.
// clang-format off
constexpr std::array<const char*, 44> kMercureKeys = {
    "SpecificCharacterSet", "SeriesInstanceUID", "SOPInstanceUID", "Modality",
    "BodyPartExamined", "ProtocolName", "RetrieveAETitle", "StationAETitle", "Manufacturer",
    "ManufacturerModelName", "StudyDescription", "CodeValue", "CodeMeaning", "SeriesDescription",
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
    "ReferringPhysicianName", "StudyID", "SeriesNumber", "StudyInstanceUID", "SeriesDate",
    "SeriesTime", "AcquisitionDate", "AcquisitionTime", "SequenceName", "ScanningSequence",
    "SequenceVariant", "MagneticFieldStrength", "StationName", "DeviceSerialNumber", "DeviceUID",
    "SoftwareVersions", "ContrastBolusAgent", "ImageComments", "SliceThickness", "InstanceNumber",
    "AcquisitionNumber", "InstitutionName", "AcquisitionType", "ImageType",
    "MediaStorageSOPClassUID"};
// clang-format on

enum class ValueKind { kSkip, kString, kNumber };

// Classifies by the class DCMTK chose for the element (ident()), which is what
// getOFStringArray renders.
ValueKind KindOf(DcmEVR evr) {
  switch (evr) {
    case EVR_AE:
    case EVR_AS:
    case EVR_CS:
    case EVR_DA:
    case EVR_DS:
    case EVR_DT:
    case EVR_IS:
    case EVR_LO:
    case EVR_LT:
    case EVR_PN:
    case EVR_SH:
    case EVR_ST:
    case EVR_TM:
    case EVR_UC:
    case EVR_UI:
    case EVR_UR:
    case EVR_UT:
      return ValueKind::kString;
    case EVR_US:
    case EVR_SS:
    case EVR_UL:
    case EVR_SL:
    case EVR_FL:
    case EVR_FD:
    case EVR_SV:
    case EVR_UV:
    case EVR_AT:
      return ValueKind::kNumber;
    default:
      return ValueKind::kSkip;
  }
}

// True if the bytes may mean something other than ASCII: any byte >= 0x80, or ESC, which
// starts an ISO 2022 escape sequence (ISO 2022 IR 87 text is 7-bit after its ESC).
bool NeedsConversion(std::string_view s) {
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x80 || b == 0x1B) {
      return true;
    }
  }
  return false;
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
      cp = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      cp = b0 & 0x0F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      cp = b0 & 0x07;
    } else {
      return false;
    }
    if (n - i < len) {
      return false;
    }
    for (size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (b & 0x3F);
    }
    // Overlong forms, surrogates and values above U+10FFFF.
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

// Every byte outside printable ASCII becomes "\xNN"; the result is ASCII.
std::string EscapeBytes(std::string_view raw) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(raw.size() + 16);
  for (const char c : raw) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b <= 0x7E) {
      out.push_back(c);
    } else {
      out.append("\\x");
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0x0F]);
    }
  }
  return out;
}

// getdcmtags' readTag: CR -> ';', LF -> ' ', '"' -> '\''. Applied to UTF-8 text, where these
// bytes are always the ASCII characters.
void MapLikeMercure(std::string* s) {
  for (char& c : *s) {
    if (c == '\r') {
      c = ';';
    } else if (c == '\n') {
      c = ' ';
    } else if (c == '"') {
      c = '\'';
    }
  }
}

// Splits a SpecificCharacterSet value into its terms (already trimmed by DCMTK's normalization).
std::vector<std::string_view> SplitTerms(std::string_view charset) {
  std::vector<std::string_view> terms;
  size_t start = 0;
  while (true) {
    const size_t pos = charset.find('\\', start);
    terms.push_back(charset.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos) {
      break;
    }
    start = pos + 1;
  }
  return terms;
}

// Decodes the Japanese character sets that DCMTK 3.6.7 cannot convert with glibc iconv (which
// has no "ISO-IR-87"): ISO 2022 IR 87 (JIS X 0208), IR 159 (JIS X 0212) and IR 13 (JIS X 0201),
// with or without code extensions. The value is re-encoded as EUC-JP, which holds all three
// (0208 with the high bit set, 0212 behind SS3 0x8F, 0201 katakana behind SS2 0x8E), and EUC-JP
// is converted to UTF-8 by iconv. As in DCMTK, the default sets return after each delimiter
// and after HT, LF, FF and CR. JIS X 0201 Roman (ESC ( J) is read as ASCII, so that 0x5C stays
// the value delimiter (pydicom does the same).
class JapaneseDecoder {
 public:
  // True if `terms` are a Japanese SpecificCharacterSet this class decodes. A lone
  // "ISO 2022 IR 87" (an encoder mistake for "\ISO 2022 IR 87") is accepted too.
  static bool Handles(const std::vector<std::string_view>& terms) {
    if (terms.size() == 1 && terms[0] == "ISO_IR 13") {
      return true;
    }
    bool japanese = false;
    for (const std::string_view t : terms) {
      if (t.empty() || t == "ISO 2022 IR 6") {
        continue;
      }
      if (t == "ISO 2022 IR 13" || t == "ISO 2022 IR 87" || t == "ISO 2022 IR 159") {
        japanese = true;
        continue;
      }
      return false;
    }
    return japanese;
  }

  bool Select(const std::vector<std::string_view>& terms) {
    katakana_by_default_ = terms[0] == "ISO_IR 13" || terms[0] == "ISO 2022 IR 13";
    return euc_jp_.selectEncoding("EUC-JP", "UTF-8").good();
  }

  bool ToUtf8(std::string* value, const OFString& delimiters) {
    enum class G0 { kAscii, kJisX0208, kJisX0212 };
    const std::string& in = *value;
    const size_t n = in.size();
    std::string euc;
    euc.reserve(n + n / 2);
    G0 g0 = G0::kAscii;
    bool katakana = katakana_by_default_;
    size_t i = 0;
    while (i < n) {
      const auto c = static_cast<unsigned char>(in[i]);
      if (c == 0x1B) {
        const std::string_view rest = std::string_view(in).substr(i + 1);
        if (rest.starts_with("(B") || rest.starts_with("(J")) {
          g0 = G0::kAscii;
          i += 3;
        } else if (rest.starts_with(")I")) {
          katakana = true;
          i += 3;
        } else if (rest.starts_with("$B") || rest.starts_with("$@")) {
          g0 = G0::kJisX0208;
          i += 3;
        } else if (rest.starts_with("$(D")) {
          g0 = G0::kJisX0212;
          i += 4;
        } else {
          return false;  // not a Japanese escape sequence
        }
        continue;
      }
      if (g0 != G0::kAscii && c >= 0x21 && c <= 0x7E) {
        if (i + 1 >= n) {
          return false;
        }
        const auto d = static_cast<unsigned char>(in[i + 1]);
        if (d < 0x21 || d > 0x7E) {
          return false;
        }
        if (g0 == G0::kJisX0212) {
          euc.push_back('\x8F');
        }
        euc.push_back(static_cast<char>(c | 0x80));
        euc.push_back(static_cast<char>(d | 0x80));
        i += 2;
        continue;
      }
      if (c >= 0x80) {
        if (!katakana || c < 0xA1 || c > 0xDF) {
          return false;
        }
        euc.push_back('\x8E');
        euc.push_back(static_cast<char>(c));
        ++i;
        continue;
      }
      euc.push_back(static_cast<char>(c));
      if (c == '\t' || c == '\n' || c == '\f' || c == '\r' ||
          delimiters.find(static_cast<char>(c)) != OFString_npos) {
        g0 = G0::kAscii;
        katakana = katakana_by_default_;
      }
      ++i;
    }
    OFString out;
    if (euc_jp_.convertString(euc.data(), euc.size(), out, OFTrue).bad()) {
      return false;
    }
    *value = std::move(out);
    return true;
  }

 private:
  bool katakana_by_default_ = false;
  OFCharacterEncoding euc_jp_;
};

// Converts values to UTF-8 from one dataset's SpecificCharacterSet. The converter is chosen on
// the first value that needs one.
class Utf8Converter {
 public:
  explicit Utf8Converter(std::string charset) : charset_(std::move(charset)) {}

  // Replaces *value (raw bytes that NeedsConversion) with its UTF-8 form and returns true, or
  // returns false and leaves *value unchanged.
  bool ToUtf8(std::string* value, const OFString& delimiters) {
    if (mode_ == Mode::kUnselected) {
      Select();
    }
    switch (mode_) {
      case Mode::kUtf8:
        return IsValidUtf8(*value);
      case Mode::kJapanese:
        return japanese_.ToUtf8(value, delimiters) && IsValidUtf8(*value);
      case Mode::kDcmtk: {
        OFString out;
        if (dcmtk_.convertString(*value, out, delimiters).bad() || !IsValidUtf8(out)) {
          return false;
        }
        *value = std::move(out);
        return true;
      }
      case Mode::kUnselected:
      case Mode::kUnsupported:
        break;
    }
    return false;
  }

 private:
  enum class Mode { kUnselected, kUtf8, kJapanese, kDcmtk, kUnsupported };

  void Select() {
    mode_ = Mode::kUnsupported;
    if (charset_ == "ISO_IR 192") {
      mode_ = Mode::kUtf8;
      return;
    }
    const std::vector<std::string_view> terms = SplitTerms(charset_);
    if (JapaneseDecoder::Handles(terms)) {
      if (japanese_.Select(terms)) {
        mode_ = Mode::kJapanese;
      }
      return;
    }
    if (dcmtk_.selectCharacterSet(charset_).good()) {
      mode_ = Mode::kDcmtk;
      return;
    }
    // A lone ISO 2022 term (an encoder mistake; DCMTK refuses it) means that set without code
    // extensions: make it the default set and declare ASCII beside it. Sets that may not be the
    // default (Korean, Chinese) are read as "\\<term>", as getdcmtags does.
    if (terms.size() == 1 && terms[0].starts_with("ISO 2022 ")) {
      const std::string as_default =
          terms[0] == "ISO 2022 IR 6" ? std::string() : charset_ + "\\ISO 2022 IR 6";
      if (dcmtk_.selectCharacterSet(as_default).good() ||
          dcmtk_.selectCharacterSet("\\" + charset_).good()) {
        mode_ = Mode::kDcmtk;
      }
    }
  }

  std::string charset_;
  Mode mode_ = Mode::kUnselected;
  JapaneseDecoder japanese_;
  DcmSpecificCharacterSet dcmtk_;
};

// "gggg,eeee", lowercase hex.
std::string HexKey(const DcmTagKey& key) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(9, ',');
  const uint16_t g = key.getGroup();
  const uint16_t e = key.getElement();
  for (int k = 0; k < 4; ++k) {
    out[k] = kHex[(g >> (12 - 4 * k)) & 0x0F];
    out[5 + k] = kHex[(e >> (12 - 4 * k)) & 0x0F];
  }
  return out;
}

// The DICOM keyword of a public tag, or "" if the dictionary does not know it.
std::string Keyword(const DcmTagKey& key) {
  std::string name;
  const DcmDataDictionary& dict = dcmDataDict.rdlock();
  const DcmDictEntry* entry = dict.findEntry(key, nullptr);
  if (entry != nullptr && entry->getTagName() != nullptr) {
    name = entry->getTagName();
  }
  dcmDataDict.rdunlock();
  constexpr std::string_view kRetired = "RETIRED_";
  if (std::string_view(name).starts_with(kRetired)) {
    name.erase(0, kRetired.size());
  }
  return name;
}

// Context strings come from the network; keep them as they are unless they are not UTF-8.
std::string Sanitized(const std::string& s) { return IsValidUtf8(s) ? s : EscapeBytes(s); }

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

Result<InstanceHeader> ReadInstanceHeader(
    const std::string& path, const TransferContext& ctx,
    const std::function<bool(const std::string& series_uid)>& need_tags) {
  // DCMTK reads standard input for "-".
  if (path.empty() || path == "-") {
    return Status::InvalidArgument("not a DICOM file path: '" + path + "'");
  }
  DcmFileFormat file;
  const OFCondition loaded = file.loadFile(OFFilename(path.c_str()), EXS_Unknown, EGL_noChange,
                                           kMaxReadLength, ERM_autoDetect);
  if (loaded.bad()) {
    if (loaded.module() == OFM_dcmdata && loaded.code() == kDcmtkCannotOpenFile) {
      // Not a parse error: classify it by the errno of opening the file again.
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        return Status::FromErrno(errno, "open " + path);
      }
      ::close(fd);
      return Status::IoError("cannot read " + path + ": " + loaded.text());
    }
    return Status::Corruption("cannot read DICOM file " + path + ": " + loaded.text());
  }
  DcmDataset* dataset = file.getDataset();
  DcmMetaInfo* meta = file.getMetaInfo();

  InstanceHeader header;
  OFString text;
  if (meta != nullptr && meta->findAndGetOFString(DCM_TransferSyntaxUID, text).good()) {
    header.transfer_syntax_uid = std::move(text);
  }
  OFString media_sop_class;
  if (meta != nullptr) {
    meta->findAndGetOFString(DCM_MediaStorageSOPClassUID, media_sop_class);
  }
  if (need_tags) {
    OFString uid;
    if (dataset->findAndGetOFString(DCM_SeriesInstanceUID, uid).good() && !need_tags(uid)) {
      header.series_instance_uid = std::move(uid);
      if (dataset->findAndGetOFString(DCM_SOPInstanceUID, uid).good()) {
        header.sop_instance_uid = std::move(uid);
      }
      if (dataset->findAndGetOFString(DCM_SOPClassUID, uid).good()) {
        header.sop_class_uid = std::move(uid);
      }
      if (dataset->findAndGetOFString(DCM_StudyInstanceUID, uid).good()) {
        header.study_instance_uid = std::move(uid);
      }
      return header;
    }
  }
  OFString charset;
  dataset->findAndGetOFStringArray(DCM_SpecificCharacterSet, charset);
  Utf8Converter converter(std::move(charset));

  nlohmann::json tags = nlohmann::json::object();
  for (DcmObject* obj = dataset->nextInContainer(nullptr); obj != nullptr;
       obj = dataset->nextInContainer(obj)) {
    const DcmEVR evr = obj->ident();
    const ValueKind kind = KindOf(evr);
    const DcmTagKey key = obj->getTag();
    if (kind == ValueKind::kSkip || key.getElement() == 0x0000) {
      continue;
    }
    auto* element = static_cast<DcmElement*>(obj);
    // Leave large binary arrays (LUTs and the like) on disk.
    if (kind == ValueKind::kNumber && element->getLength() > kMaxReadLength) {
      continue;
    }

    std::string name;
    if (!key.isPrivate()) {
      name = Keyword(key);
    }
    if (name.empty() || tags.contains(name)) {
      name = HexKey(key);
    }

    // As getdcmtags (tagExistsWithValue): a value of only padding and delimiters, such as a PN
    // "^^^^", is empty.
    std::string value;
    if (!element->isEmpty()) {
      const OFCondition got = element->getOFStringArray(value, OFTrue);
      if (got.bad()) {
        return Status::Corruption("cannot read " + name + " " + key.toString() + " in " + path +
                                  ": " + got.text());
      }
    }
    if (!NeedsConversion(value) || converter.ToUtf8(&value, DcmVR(evr).getDelimiterChars())) {
      MapLikeMercure(&value);
    } else {
      value = EscapeBytes(value);
      header.unconvertible.push_back(name);
    }

    if (key == DCM_SOPClassUID) {
      header.sop_class_uid = value;
    } else if (key == DCM_SOPInstanceUID) {
      header.sop_instance_uid = value;
    } else if (key == DCM_SeriesInstanceUID) {
      header.series_instance_uid = value;
    } else if (key == DCM_StudyInstanceUID) {
      header.study_instance_uid = value;
    }
    tags[std::move(name)] = std::move(value);
  }

  tags["MediaStorageSOPClassUID"] = Sanitized(media_sop_class);
  for (const char* mercure_key : kMercureKeys) {
    if (!tags.contains(mercure_key)) {
      tags[mercure_key] = "";
    }
  }
  tags["SenderAddress"] = Sanitized(ctx.sender_address);
  tags["SenderAET"] = Sanitized(ctx.sender_aet);
  tags["ReceiverAET"] = Sanitized(ctx.receiver_aet);
  tags["Filename"] = Sanitized(BaseName(path));
  if (!header.unconvertible.empty()) {
    std::string joined;
    for (const std::string& name : header.unconvertible) {
      if (!joined.empty()) {
        joined.push_back('\\');
      }
      joined.append(name);
    }
    tags[kUnconvertibleKey] = std::move(joined);
  }

  try {
    // Every string is valid UTF-8 by construction; `replace` only guards against a mistake.
    header.tags_json = tags.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const nlohmann::json::exception& e) {
    return Status::Internal(std::string("cannot serialize the tags of ") + path + ": " + e.what());
  }
  return header;
}

}  // namespace ferry::dicom
