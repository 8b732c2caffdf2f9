// InstanceHeader: what ferry reads from a received DICOM file before pixel data, in one pass.
//
// ReadInstanceHeader parses a Part-10 file just written by the storage SCP (values longer than a
// few KiB, such as pixel data, are not loaded) and returns the identifying UIDs plus the tags of
// the instance in mercure's .tags JSON form: one object, every top-level element with a string
// value keyed by its DICOM keyword (private and unknown elements as "gggg,eeee"), all values
// strings, multi-values joined with a backslash, converted to UTF-8 from SpecificCharacterSet
// (including ISO 2022 code extensions). A value that cannot be converted never fails the read:
// it is kept with its raw bytes escaped and listed in `unconvertible`. The router reads these
// tags (series.tags) to evaluate rules.
//
// The tags object, in detail (mercure's getdcmtags is the reference):
//  - Elements: top-level only (no sequence contents). String VRs (AE AS CS DA DS DT IS LO LT PN
//    SH ST TM UC UI UR UT) and, as DCMTK renders them, the binary numbers US SS UL SL FL FD SV
//    UV AT (mercure renders any tag it is asked for this way); a binary number array longer than
//    4 KiB is left out. Skipped: SQ, OB OW OF OD OL OV UN, pixel data, group lengths (gggg,0000).
//  - Keys: the DCMTK dictionary keyword without DCMTK's "RETIRED_" prefix; elements in odd
//    (private) groups and tags unknown to the dictionary as lowercase "gggg,eeee". If a keyword
//    repeats (repeating groups such as overlays 60xx) the first element keeps it and later ones
//    are keyed "gggg,eeee".
//  - Values: DCMTK's getOFStringArray (padding trimmed, values joined by "\"), then as
//    getdcmtags does: CR becomes ';', LF becomes ' ' and '"' becomes '\''; a value of only
//    padding and delimiters (DCMTK's isEmpty(), e.g. a PN "^^^^") is "".
//  - mercure's fixed keys are always present ("" when the element is absent): SeriesInstanceUID,
//    SOPInstanceUID, SpecificCharacterSet, Modality, PatientName, ... (getdcmtags' main list),
//    MediaStorageSOPClassUID (from the file meta information), SenderAddress, SenderAET,
//    ReceiverAET (from TransferContext) and Filename (the last component of `path`).
//  - Character sets: ISO_IR 192 is only validated; the Japanese ISO 2022 sets (IR 13, 87, 159)
//    and ISO_IR 13 are decoded by ferry (DCMTK on glibc iconv cannot open ISO-IR-87; JIS X 0201
//    Roman is read as ASCII); every other set goes through DCMTK's DcmSpecificCharacterSet
//    (a lone "ISO 2022 IR n" is read as that set without code extensions).
//  - Unconvertible values (invalid bytes, an undeclared escape sequence, an unknown or
//    unsupported SpecificCharacterSet, non-ASCII without one): the raw bytes are kept, every
//    byte outside 0x20..0x7E written as "\xNN" (two uppercase hex digits), no other mapping.
//    Their keys are listed, in tag order, in `unconvertible` and in the extra key
//    "ferry_unconvertible" (keys joined by "\"; present only when there is at least one).
//    Pure ASCII values are never affected by the character set.
// Thread-safety: ReadInstanceHeader is reentrant; call it from any number of threads.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/result.h"

namespace ferry::dicom {

// Facts about the transfer that mercure adds to the tags (SenderAddress, SenderAET, ReceiverAET).
struct TransferContext {
  std::string sender_address;  // IP of the peer
  std::string sender_aet;      // calling AE title
  std::string receiver_aet;    // called AE title
};

struct InstanceHeader {
  std::string sop_class_uid;
  std::string sop_instance_uid;
  std::string series_instance_uid;
  std::string study_instance_uid;
  std::string transfer_syntax_uid;  // from the file meta information
  std::string tags_json;            // mercure .tags form, UTF-8
  // Keywords of elements whose value could not be converted to UTF-8 (kept escaped).
  std::vector<std::string> unconvertible;
};

// Reads `path`. Corruption if DCMTK cannot parse the file (not DICOM, truncated, malformed);
// the message gives DCMTK's reason. If the file cannot be opened, the error of open(2) as
// Status::FromErrno classifies it (NotFound, PermissionDenied, ResourceExhausted, ...);
// InvalidArgument for an empty path or "-" (which DCMTK would take for standard input).
// Missing UIDs are returned as empty strings: the caller decides whether that is acceptable.
//
// `need_tags`, when given, is asked with the Series Instance UID once the file is parsed; when
// it answers false, only the UIDs are filled in and the tags are not built (the receiver needs
// them only for the first instance of a series).
Result<InstanceHeader> ReadInstanceHeader(
    const std::string& path, const TransferContext& ctx,
    const std::function<bool(const std::string& series_uid)>& need_tags = nullptr);

}  // namespace ferry::dicom
