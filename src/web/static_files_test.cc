#include "web/static_files.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace ferry::web {
namespace {
namespace fs = std::filesystem;

class StaticFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() /
            ("ferry_static_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(base_);
    root_ = base_ / "dist";
    fs::create_directories(root_ / "assets");
    Write(root_ / "index.html", "<!doctype html><title>ferry</title>");
    Write(root_ / "assets" / "index-abc123.js", "console.log(1)");
    Write(root_ / "favicon.svg", "<svg/>");
    Write(base_ / "secret.txt", "do not serve");
  }
  void TearDown() override { fs::remove_all(base_); }

  static void Write(const fs::path& p, const std::string& text) {
    std::ofstream(p, std::ios::binary) << text;
  }

  fs::path base_;
  fs::path root_;
};

TEST_F(StaticFilesTest, ServesFilesWithTypesAndCacheHeaders) {
  StaticFiles files(root_);
  Response index = files.Serve("/");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(index.body, "<!doctype html><title>ferry</title>");
  EXPECT_EQ(index.headers["Cache-Control"], "no-cache");
  EXPECT_NE(index.headers["Content-Security-Policy"].find("default-src 'self'"), std::string::npos);

  Response js = files.Serve("/assets/index-abc123.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(js.body, "console.log(1)");
  EXPECT_EQ(js.headers["Cache-Control"], "public, max-age=31536000, immutable");

  Response svg = files.Serve("/favicon.svg");
  EXPECT_EQ(svg.content_type, "image/svg+xml");
  EXPECT_EQ(svg.headers["Cache-Control"], "no-cache");
}

TEST_F(StaticFilesTest, AppRoutesFallBackToIndex) {
  StaticFiles files(root_);
  for (std::string path : {"/queue", "/trace/abc-123", "/archive/"}) {
    Response r = files.Serve(path);
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.body, "<!doctype html><title>ferry</title>") << path;
    EXPECT_EQ(r.headers["Cache-Control"], "no-cache") << path;
  }
  // A missing file is a 404, not the page: a stale script must not be answered with HTML.
  EXPECT_EQ(files.Serve("/assets/gone-000.js").status, 404);
  // The server's own paths never get the page.
  Response api = files.Serve("/api/v1/nothing");
  EXPECT_EQ(api.status, 404);
  EXPECT_NE(api.body.find("no endpoint GET /api/v1/nothing"), std::string::npos) << api.body;
  EXPECT_EQ(files.Serve("/metricsx").status, 404);
}

TEST_F(StaticFilesTest, RefusesPathTraversal) {
  StaticFiles files(root_);
  for (const std::string& path :
       std::vector<std::string>{"/../secret.txt", "/assets/../../secret.txt", "/./index.html",
                                "/assets//index-abc123.js", "/..", "/assets/..", "/..\\secret.txt",
                                std::string("/index.html\0x", 13), "relative.txt", ""}) {
    EXPECT_EQ(files.Resolve(path), std::nullopt) << path;
    Response r = files.Serve(path);
    EXPECT_EQ(r.body.find("do not serve"), std::string::npos) << path;
    EXPECT_NE(r.body, "<!doctype html><title>ferry</title>") << path;
  }
  // A symbolic link out of the folder is not followed.
  fs::create_symlink(base_ / "secret.txt", root_ / "link.txt");
  fs::create_directory_symlink(base_, root_ / "up");
  EXPECT_EQ(files.Resolve("/link.txt"), std::nullopt);
  EXPECT_EQ(files.Resolve("/up/secret.txt"), std::nullopt);
  EXPECT_EQ(files.Serve("/up/secret.txt").status, 404);
  // Folders are not files.
  EXPECT_EQ(files.Resolve("/assets"), std::nullopt);
}

TEST_F(StaticFilesTest, UnbuiltUiSaysHowToBuildIt) {
  StaticFiles files(base_ / "missing");
  Response r = files.Serve("/");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("make build"), std::string::npos) << r.body;
}

}  // namespace
}  // namespace ferry::web
