#include "processor/docker_api.h"

#include <cstdlib>

#include <gtest/gtest.h>

#include "processor/runtimes.h"

namespace ferry {
namespace {

using Json = nlohmann::json;

TEST(DockerApiTest, DemultiplexesLogFrames) {
  std::string raw;
  auto frame = [&](char stream, const std::string& text) {
    raw += std::string{stream, 0, 0, 0, 0, 0, 0, static_cast<char>(text.size())} + text;
  };
  frame(1, "out line\n");
  frame(2, "err line\n");
  EXPECT_EQ(DemultiplexLogs(raw), "out line\nerr line\n");
  EXPECT_EQ(DemultiplexLogs("plain tty text\n"), "plain tty text\n");
  EXPECT_EQ(DemultiplexLogs(""), "");
}

std::string TarOf(const std::string& name, const std::string& data) {
  std::string header(512, '\0');
  name.copy(header.data(), name.size());
  std::string size = std::to_string(0);
  char octal[12];
  snprintf(octal, sizeof(octal), "%011o", static_cast<unsigned>(data.size()));
  std::copy(octal, octal + 11, header.begin() + 124);
  header[156] = '0';
  std::string body = data + std::string((512 - data.size() % 512) % 512, '\0');
  return header + body + std::string(1024, '\0');
}

TEST(DockerApiTest, ReadsOneFileFromATarArchive) {
  std::string tar = TarOf("app.json", R"({"command": "python3 app.py"})");
  EXPECT_EQ(FileFromTar(tar, "app.json"), R"({"command": "python3 app.py"})");
  EXPECT_FALSE(FileFromTar(tar, "other.json").has_value());
  EXPECT_FALSE(FileFromTar("short", "app.json").has_value());
}

TEST(DockerApiTest, FindsTheSocketAsDockerClientsDo) {
  unsetenv("DOCKER_HOST");
  EXPECT_EQ(DockerSocketPath(""), "/var/run/docker.sock");
  EXPECT_EQ(DockerSocketPath("unix:///run/podman.sock"), "/run/podman.sock");
  setenv("DOCKER_HOST", "unix:///tmp/d.sock", 1);
  EXPECT_EQ(DockerSocketPath(""), "/tmp/d.sock");
  EXPECT_EQ(DockerSocketPath("/x.sock"), "/x.sock");
  setenv("DOCKER_HOST", "tcp://10.0.0.1:2375", 1);
  EXPECT_EQ(DockerSocketPath(""), "/var/run/docker.sock");
  unsetenv("DOCKER_HOST");
}

TEST(DockerApiTest, AnEngineThatIsNotThereIsUnavailable) {
  DockerApi api(::testing::TempDir() + "/no-such-engine.sock");
  auto v = api.Version();
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().code(), Status::Code::kUnavailable);
  EXPECT_NE(v.error().message().find("podman system service"), std::string::npos);
}

TEST(ContainerBodyTest, MercuresContractWithFerrysRestrictions) {
  ModuleOptions m;
  m.name = "ai";
  m.environment_json = R"({"MODEL": "v2", "MERCURE_IN_DIR": "/elsewhere"})";
  m.docker_arguments_json =
      R"({"mem_limit": "512m", "nano_cpus": 1000000000, "shm_size": "1g", "pids_limit": 64,
          "labels": {"site": "x", "ferry.task": "spoofed"}, "read_only": true})";
  m.additional_volumes_json = R"({"/srv/models": {"bind": "/models", "mode": "ro"}})";
  ProcessorOptions p;
  ContainerPlan plan{&m, &p, "img:1", "t1", "/data", "/d/in", "/d/out", "", {}, "", false, 990, 991};
  auto body = ContainerBody(plan);
  ASSERT_TRUE(body.has_value()) << body.error().ToString();
  const Json& b = *body;
  EXPECT_EQ(b["User"], "990:991");
  EXPECT_EQ(b["Labels"]["ferry.task"], "t1");
  EXPECT_EQ(b["Labels"]["site"], "x");
  const auto& env = b["Env"];
  auto has = [&](const std::string& kv) {
    return std::find(env.begin(), env.end(), kv) != env.end();
  };
  EXPECT_TRUE(has("MERCURE_IN_DIR=/tmp/data"));
  EXPECT_TRUE(has("MERCURE_OUT_DIR=/tmp/output"));
  EXPECT_TRUE(has("MONAI_OUTPUTPATH=/tmp/output"));
  EXPECT_TRUE(has("HOLOSCAN_INPUT_PATH=/tmp/data"));
  EXPECT_TRUE(has("MODEL=v2"));
  EXPECT_FALSE(has("MERCURE_IN_DIR=/elsewhere"));
  const Json& h = b["HostConfig"];
  EXPECT_EQ(h["NetworkMode"], "none");
  EXPECT_EQ(h["CapDrop"], Json({"ALL"}));
  EXPECT_EQ(h["Memory"], 512 * 1024 * 1024);
  EXPECT_EQ(h["NanoCpus"], 1000000000);
  EXPECT_EQ(h["ShmSize"], int64_t{1} << 30);
  EXPECT_EQ(h["PidsLimit"], 64);
  EXPECT_EQ(h["ReadonlyRootfs"], true);
  EXPECT_EQ(h["Binds"], Json({"/d/in:/tmp/data:rw", "/d/out:/tmp/output:rw",
                              "/srv/models:/models:ro"}));

  m.network_enabled = true;
  m.requires_root = true;
  m.requires_persistence = true;
  m.docker_arguments_json = R"({"mem_limit": "lots"})";
  plan.as_root = true;
  plan.persistence_dir = "/data/persistence/ai";
  EXPECT_FALSE(ContainerBody(plan).has_value());
  m.docker_arguments_json = "{}";
  body = ContainerBody(plan);
  ASSERT_TRUE(body.has_value());
  EXPECT_FALSE(body->contains("User"));
  EXPECT_EQ((*body)["HostConfig"]["NetworkMode"], "bridge");
  EXPECT_EQ((*body)["HostConfig"]["Binds"][2], "/data/persistence/ai:/tmp/persistence:rw");
}

TEST(SplitCommandTest, WordsAndQuotes) {
  EXPECT_EQ(SplitCommand("python3 -u /opt/monai/app/app.py"),
            (std::vector<std::string>{"python3", "-u", "/opt/monai/app/app.py"}));
  EXPECT_EQ(SplitCommand("sh -c 'echo a b'"), (std::vector<std::string>{"sh", "-c", "echo a b"}));
  EXPECT_TRUE(SplitCommand("  ").empty());
}

}  // namespace
}  // namespace ferry
