#include "web/first_password.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/file_system.h"
#include "spool/control.h"

namespace ferry::web {
namespace {
constexpr const char* kMarker = "generated-password";
}  // namespace

std::string GeneratedPasswordMarker(const std::string& data_folder) {
  return JoinPath(JoinPath(data_folder, kRunDir), kMarker);
}

Status MarkGeneratedPassword(const std::string& data_folder, const std::string& user) {
  FERRY_RETURN_IF_ERROR(DefaultFileSystem()->CreateDirs(JoinPath(data_folder, kRunDir)));
  std::string marker = GeneratedPasswordMarker(data_folder);
  std::string tmp = marker + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << user << "\n";
    if (!out.flush()) {
      return Status::IoError("cannot write " + tmp);
    }
  }
  return DefaultFileSystem()->Rename(tmp, marker);
}

bool MustChangePassword(const std::string& data_folder, const std::string& user) {
  auto text = DefaultFileSystem()->ReadFile(GeneratedPasswordMarker(data_folder));
  return text && *text == user + "\n";
}

void ClearGeneratedPassword(const std::string& data_folder, const std::string& user) {
  if (MustChangePassword(data_folder, user)) {
    (void)DefaultFileSystem()->RemoveFile(GeneratedPasswordMarker(data_folder));
  }
}

}  // namespace ferry::web
