#include "web/first_password.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace ferry::web {
namespace {

TEST(FirstPassword, MarkerNamesOneUserUntilTheirPasswordIsSet) {
  auto dir = std::filesystem::temp_directory_path() /
             ("ferry_first_password_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::string data = dir.string();
  EXPECT_FALSE(MustChangePassword(data, "admin"));  // no data folder yet
  ASSERT_TRUE(MarkGeneratedPassword(data, "admin").ok());
  EXPECT_TRUE(std::filesystem::exists(GeneratedPasswordMarker(data)));
  EXPECT_TRUE(MustChangePassword(data, "admin"));
  EXPECT_FALSE(MustChangePassword(data, "admi"));
  EXPECT_FALSE(MustChangePassword(data, "olga"));
  ClearGeneratedPassword(data, "olga");  // someone else's password: the marker stays
  EXPECT_TRUE(MustChangePassword(data, "admin"));
  ClearGeneratedPassword(data, "admin");
  EXPECT_FALSE(MustChangePassword(data, "admin"));
  EXPECT_FALSE(std::filesystem::exists(GeneratedPasswordMarker(data)));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ferry::web
