// SftpClient: ferry's adapter at the libssh boundary. One SSH connection with one SFTP channel to
// the server of an sftp target: it connects, checks the server's host key against known_hosts,
// logs in, and offers the few file operations the sftp target needs, every failure turned into
// a classified Status whose message names the server, the user and what to fix. No libssh type
// leaves this file's implementation.
//
// Classification: a refused or timed-out connection, a dropped connection and a generic server
// failure (a full disk) are kUnavailable (retry later); a refused login, an unknown or changed
// host key, an unusable key file and a server without SFTP are kPermissionDenied or
// kFailedPrecondition (an operator must act); a refused file operation is kPermissionDenied.
//
// Threads: one SftpClient is used by one thread at a time (libssh sessions are not shared).
// Different clients may live on different threads; the known_hosts file is read and appended
// under a process-wide lock.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/result.h"

struct ssh_session_struct;
struct sftp_session_struct;

namespace ferry {

class SftpClient {
 public:
  // Connects to options.host:options.port within options.timeout_s, verifies the host key
  // (an unknown key is refused unless options.accept_new_host_key, which records it in the
  // known_hosts file; a changed key is always refused), logs in as options.user with
  // options.key_file and/or options.password (neither: the default keys in ~/.ssh and an SSH
  // agent), and opens the SFTP channel. Errors as described above.
  static Result<std::unique_ptr<SftpClient>> Connect(const TargetOptions& options);

  ~SftpClient();
  SftpClient(const SftpClient&) = delete;
  SftpClient& operator=(const SftpClient&) = delete;

  // False once the connection broke; the client is then useless and should be replaced.
  bool connected() const;

  // "user@host:port", for messages.
  const std::string& where() const { return where_; }

  // OK when `path` is a folder. kUnavailable when it does not exist, kFailedPrecondition when
  // it is something else, kPermissionDenied when the server refuses to look.
  Status CheckFolder(const std::string& path);

  // Creates the folder `path` (mode 0755) unless it exists already.
  Status MakeFolder(const std::string& path);

  // Copies the local file `from` to `dir`/`name`: written as the hidden `dir`/.`name`.tmp,
  // flushed to the server's disk when the server supports fsync@openssh.com, then renamed (a
  // file of that name is replaced), so that no reader sees a partial file. Stops with
  // kUnavailable when *cancel becomes true. A failed upload leaves no temporary file behind
  // if the connection still works.
  Status Upload(const std::string& from, const std::string& dir, const std::string& name,
                const std::atomic<bool>* cancel);

  // Creates (or truncates) the empty file `path`.
  Status WriteEmptyFile(const std::string& path);

  // Removes the file `path`.
  Status RemoveFile(const std::string& path);

 private:
  SftpClient(const TargetOptions& options, ssh_session_struct* ssh);

  Status Login();
  Status VerifyHostKey();
  Status StartSftp();

  // The Status for a failed SFTP request `what` (e.g. "create /data/x"), from the server's
  // status code or the state of the connection.
  Status RequestError(const std::string& what);
  // The Status for a failure of the SSH connection itself during `what`.
  Status ConnectionError(const std::string& what);

  TargetOptions options_;
  std::string where_;
  ssh_session_struct* ssh_ = nullptr;
  sftp_session_struct* sftp_ = nullptr;
  size_t write_size_ = 32 * 1024;  // bytes per SFTP write request
  bool can_fsync_ = false;
  bool broken_ = false;
  std::vector<char> buffer_;  // one write request's worth of the file being uploaded
};

// Joins a remote folder and a name with exactly one '/'.
std::string JoinRemotePath(const std::string& dir, const std::string& name);

}  // namespace ferry
