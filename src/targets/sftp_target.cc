// SFTP target: uploads each task's instances over SSH into <folder>/<task id>/ on a server and
// writes an empty `.complete` file there when the task is fully delivered, as the folder target
// does locally (mercure's sftp target, plus ferry's host key check).
// Each file is written under a hidden temporary name, flushed to the server's disk where the
// server offers fsync@openssh.com, and renamed, so a program watching the folder never reads a
// partial file; `.complete` tells it the set is whole.
//
// A session holds one SSH connection with one SFTP channel for all batches of its task; if the
// connection breaks, the batch stops with a transient failure and the next Send() or Finish()
// connects again. The SSH details (host keys, login, error classification) live in SftpClient.
#include <unistd.h>

#include <atomic>

#include <fmt/format.h>

#include "targets/sftp_client.h"
#include "targets/target.h"

namespace ferry {
namespace {

constexpr const char* kCompleteMarker = ".complete";

class SftpSession : public TargetSession {
 public:
  SftpSession(const TargetOptions& options, std::unique_ptr<SftpClient> client,
              const TaskContext& task)
      : options_(options),
        client_(std::move(client)),
        dir_(JoinRemotePath(options.folder, task.task_id)),
        cancel_(task.cancel) {}

  void Send(const std::vector<OutgoingInstance>& instances,
            std::vector<InstanceResult>* results) override {
    results->assign(instances.size(), InstanceResult{});
    // A failure that makes the rest of the batch pointless: no connection, the task's folder
    // cannot be created, ferry shuts down. A file the server refuses fails alone.
    Status stop;
    for (size_t i = 0; i < instances.size(); ++i) {
      InstanceResult& r = (*results)[i];
      if (stop.ok() && cancel_ != nullptr && cancel_->load()) {
        stop = Status::Unavailable("cancelled: ferry is shutting down");
      }
      if (!stop.ok()) {
        r = FailedResult(stop);
        continue;
      }
      std::string name = BaseName(instances[i].path);
      if (!PassesFileFilter(options_.file_filter, name)) {
        r = {Outcome::kDelivered, "skipped by file_filter"};
        continue;
      }
      Status ready = Ready();
      if (!ready.ok()) {
        stop = ready;
        r = FailedResult(stop);
        continue;
      }
      Status s = client_->Upload(instances[i].path, dir_, name, cancel_);
      if (s.ok()) {
        r = {Outcome::kDelivered, ""};
        continue;
      }
      r = FailedResult(s);
      if (!client_->connected() || (cancel_ != nullptr && cancel_->load())) {
        stop = s;
      }
    }
  }

  Status Finish() override {
    FERRY_RETURN_IF_ERROR(Ready());
    return client_->WriteEmptyFile(JoinRemotePath(dir_, kCompleteMarker));
  }

 private:
  // Connects again if the connection broke, and creates the task's folder once.
  Status Ready() {
    if (client_ == nullptr || !client_->connected()) {
      client_.reset();
      auto client = SftpClient::Connect(options_);
      if (!client) {
        return client.error();
      }
      client_ = std::move(client).value();
    }
    if (!dir_ready_) {
      FERRY_RETURN_IF_ERROR(client_->MakeFolder(dir_));
      dir_ready_ = true;
    }
    return Status::Ok();
  }

  const TargetOptions options_;
  std::unique_ptr<SftpClient> client_;
  std::string dir_;
  const std::atomic<bool>* cancel_;
  bool dir_ready_ = false;
};

class SftpTarget : public Target {
 public:
  explicit SftpTarget(const TargetOptions& o) : Target(o) {}

  Result<std::unique_ptr<TargetSession>> Open(const TaskContext& task) override {
    if (!IsSafeTaskFolderName(task.task_id)) {
      return Status::InvalidArgument("task id '" + task.task_id + "' is not a safe folder name");
    }
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<SftpClient> client, SftpClient::Connect(options()));
    FERRY_RETURN_IF_ERROR(client->CheckFolder(options().folder));
    return std::unique_ptr<TargetSession>(
        std::make_unique<SftpSession>(options(), std::move(client), task));
  }

  Status Check() override {
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<SftpClient> client, SftpClient::Connect(options()));
    FERRY_RETURN_IF_ERROR(client->CheckFolder(options().folder));
    static std::atomic<int> probes{0};
    std::string probe =
        JoinRemotePath(options().folder, fmt::format(".ferry-check-{}-{}", ::getpid(), ++probes));
    FERRY_RETURN_IF_ERROR(client->WriteEmptyFile(probe));
    return client->RemoveFile(probe);
  }
};

}  // namespace

std::unique_ptr<Target> MakeSftpTarget(const TargetOptions& options) {
  return std::make_unique<SftpTarget>(options);
}

}  // namespace ferry
