// ConfigureDcmtkLogging: sets how much DCMTK itself logs (to stderr, with its own "E: ..." form).
//
// DCMTK warns on many harmless oddities of real-world data (for example escape sequences in the
// first component of a Korean name), once per instance; at ferry's default level only DCMTK's
// errors are shown, and ferry's own log lines say what happened to each image. Call once at
// start-up, before any thread uses DCMTK.
#pragma once

#include <string_view>

namespace ferry::dicom {

// `ferry_level` is ferry's log level name: trace shows DCMTK's debug output, debug its warnings,
// info and warn its errors, error only fatal errors, off nothing.
void ConfigureDcmtkLogging(std::string_view ferry_level);

}  // namespace ferry::dicom
