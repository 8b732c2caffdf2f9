#include "dicom/dcmtk_logging.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/oflog/oflog.h>

namespace ferry::dicom {

void ConfigureDcmtkLogging(std::string_view ferry_level) {
  OFLogger::LogLevel level = OFLogger::ERROR_LOG_LEVEL;
  if (ferry_level == "trace") {
    level = OFLogger::DEBUG_LOG_LEVEL;
  } else if (ferry_level == "debug") {
    level = OFLogger::WARN_LOG_LEVEL;
  } else if (ferry_level == "error") {
    level = OFLogger::FATAL_LOG_LEVEL;
  } else if (ferry_level == "off") {
    level = OFLogger::OFF_LOG_LEVEL;
  }
  OFLog::configure(level);
}

}  // namespace ferry::dicom
