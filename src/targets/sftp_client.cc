#include "core/scoped_fd.h"
#include "targets/sftp_client.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include <fmt/format.h>
#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>

namespace ferry {
namespace {

// OpenSSH's sftp-server accepts requests of up to 256 KiB (its limits@openssh.com extension
// reports 255 KiB of data per write); other servers get the 32 KiB that the SFTP draft promises
// every server handles. libssh 0.10 waits for the reply of each write before sending the next,
// so larger writes mean fewer round trips.
constexpr size_t kPortableWriteSize = 32 * 1024;
constexpr size_t kOpenSshWriteSize = 255 * 1024;

// Appending a newly trusted host key must not interleave with another thread reading or
// appending the same known_hosts file.
std::mutex& KnownHostsMutex() {
  static std::mutex mutex;
  return mutex;
}

// libssh asks for a key's passphrase through this callback (and, without one, OpenSSL would
// prompt on the terminal of a daemon): ferry has no one to ask, so an encrypted key fails.
int RefusePassphrase(const char*, char*, size_t, int, int, void*) { return -1; }

ssh_callbacks_struct* SessionCallbacks() {
  static ssh_callbacks_struct callbacks = [] {
    ssh_callbacks_struct c{};
    c.auth_function = RefusePassphrase;
    ssh_callbacks_init(&c);
    return c;
  }();
  return &callbacks;
}

// A peer that vanishes without closing the connection (a cut network, a crashed host) must not
// block a dispatcher thread forever: libssh's timeout bounds connecting and logging in, but an
// SFTP request waits for its reply without one. TCP keepalive and TCP_USER_TIMEOUT turn such a
// silence into a socket error after about two timeouts.
void SetSocketTimeouts(int fd, int timeout_s) {
  if (fd < 0) {
    return;
  }
  int on = 1;
  int idle = std::max(1, timeout_s);
  int interval = std::max(1, timeout_s / 3);
  int count = 3;
  unsigned int user_timeout_ms = static_cast<unsigned int>(idle) * 1000u;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof(user_timeout_ms));
}

std::string AuthMethodNames(int methods) {
  std::string names;
  auto add = [&](int bit, const char* name) {
    if ((methods & bit) != 0) {
      names += (names.empty() ? "" : ", ") + std::string(name);
    }
  };
  add(SSH_AUTH_METHOD_PUBLICKEY, "publickey");
  add(SSH_AUTH_METHOD_PASSWORD, "password");
  add(SSH_AUTH_METHOD_INTERACTIVE, "keyboard-interactive");
  add(SSH_AUTH_METHOD_HOSTBASED, "hostbased");
  add(SSH_AUTH_METHOD_GSSAPI_MIC, "gssapi-with-mic");
  return names.empty() ? "none" : names;
}

}  // namespace

std::string JoinRemotePath(const std::string& dir, const std::string& name) {
  if (dir.empty()) {
    return name;
  }
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

SftpClient::SftpClient(const TargetOptions& options, ssh_session_struct* ssh)
    : options_(options),
      where_(fmt::format("{}@{}:{}", options.user, options.host, options.port)),
      ssh_(ssh) {}

SftpClient::~SftpClient() {
  if (sftp_ != nullptr) {
    sftp_free(sftp_);
  }
  if (ssh_ != nullptr) {
    if (ssh_is_connected(ssh_) != 0) {
      ssh_disconnect(ssh_);
    }
    ssh_free(ssh_);
  }
}

Result<std::unique_ptr<SftpClient>> SftpClient::Connect(const TargetOptions& options) {
  ssh_session ssh = ssh_new();
  if (ssh == nullptr) {
    return Status::Internal("cannot create an SSH session (out of memory)");
  }
  TargetOptions o = options;
  if (o.port <= 0) {
    o.port = 22;
  }
  std::unique_ptr<SftpClient> client(new SftpClient(o, ssh));
  long timeout_s = std::max(1, o.timeout_s);
  unsigned int port = static_cast<unsigned int>(o.port);
  int on = 1;
  // ferry.json is the whole configuration: ~/.ssh/config and /etc/ssh/ssh_config are not read.
  bool process_config = false;
  if (ssh_options_set(ssh, SSH_OPTIONS_PROCESS_CONFIG, &process_config) != SSH_OK ||
      ssh_options_set(ssh, SSH_OPTIONS_HOST, o.host.c_str()) != SSH_OK ||
      ssh_options_set(ssh, SSH_OPTIONS_PORT, &port) != SSH_OK ||
      ssh_options_set(ssh, SSH_OPTIONS_USER, o.user.c_str()) != SSH_OK ||
      ssh_options_set(ssh, SSH_OPTIONS_TIMEOUT, &timeout_s) != SSH_OK ||
      // SFTP is request and reply: Nagle's algorithm would hold back every small request.
      ssh_options_set(ssh, SSH_OPTIONS_NODELAY, &on) != SSH_OK ||
      (!o.known_hosts_file.empty() &&
       ssh_options_set(ssh, SSH_OPTIONS_KNOWNHOSTS, o.known_hosts_file.c_str()) != SSH_OK)) {
    return Status::InvalidArgument(
        fmt::format("sftp target {}: invalid SSH options: {}", client->where_, ssh_get_error(ssh)));
  }
  ssh_set_callbacks(ssh, SessionCallbacks());
  if (ssh_connect(ssh) != SSH_OK) {
    return Status::Unavailable(fmt::format(
        "cannot connect to the SSH server {}:{} (user {}): {}; check that the server is running "
        "and that \"host\" and \"port\" are right",
        o.host, port, o.user, ssh_get_error(ssh)));
  }
  SetSocketTimeouts(ssh_get_fd(ssh), o.timeout_s);
  FERRY_RETURN_IF_ERROR(client->VerifyHostKey());
  FERRY_RETURN_IF_ERROR(client->Login());
  FERRY_RETURN_IF_ERROR(client->StartSftp());
  return client;
}

Status SftpClient::VerifyHostKey() {
  ssh_key key = nullptr;
  if (ssh_get_server_publickey(ssh_, &key) != SSH_OK) {
    return ConnectionError("the key exchange");
  }
  std::string key_type = ssh_key_type_to_char(ssh_key_type(key));
  std::string fingerprint = "?";
  unsigned char* hash = nullptr;
  size_t hash_len = 0;
  if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hash_len) == SSH_OK) {
    char* text = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hash_len);
    if (text != nullptr) {
      fingerprint = text;
      ssh_string_free_char(text);
    }
    ssh_clean_pubkey_hash(&hash);
  }
  ssh_key_free(key);

  std::string file =
      options_.known_hosts_file.empty() ? "~/.ssh/known_hosts" : options_.known_hosts_file;
  char* resolved = nullptr;
  if (ssh_options_get(ssh_, SSH_OPTIONS_KNOWNHOSTS, &resolved) == SSH_OK && resolved != nullptr) {
    file = resolved;
    ssh_string_free_char(resolved);
  }
  std::string server =
      options_.port == 22 ? options_.host : fmt::format("[{}]:{}", options_.host, options_.port);
  std::string key_text = key_type + " key " + fingerprint;

  std::lock_guard<std::mutex> lock(KnownHostsMutex());
  switch (ssh_session_is_known_server(ssh_)) {
    case SSH_KNOWN_HOSTS_OK:
      return Status::Ok();
    case SSH_KNOWN_HOSTS_CHANGED:
    case SSH_KNOWN_HOSTS_OTHER:
      return Status::PermissionDenied(fmt::format(
          "HOST KEY CHANGED: the SSH server {} presented the {}, which does not match the key "
          "recorded for it in {}. Someone may be intercepting the connection (a "
          "man-in-the-middle attack), or the server was reinstalled. ferry will not connect. "
          "If the change is expected, remove the old key with `ssh-keygen -f {} -R '{}'` and "
          "add the new one after checking its fingerprint",
          server, key_text, file, file, server));
    case SSH_KNOWN_HOSTS_UNKNOWN:
    case SSH_KNOWN_HOSTS_NOT_FOUND:
      if (!options_.accept_new_host_key) {
        return Status::FailedPrecondition(fmt::format(
            "the host key of the SSH server {} ({}) is not in {}; after checking the "
            "fingerprint, add it with `ssh-keyscan {}{} >> {}`, or set \"accept_new_host_key\": "
            "true to trust the key on first connection",
            server, key_text, file, options_.port == 22 ? "" : fmt::format("-p {} ", options_.port),
            options_.host, file));
      }
      if (ssh_session_update_known_hosts(ssh_) != SSH_OK) {
        return Status::FailedPrecondition(
            fmt::format("cannot record the host key of the SSH server {} in {}: {}; check that "
                        "the file (or its folder) is writable",
                        server, file, ssh_get_error(ssh_)));
      }
      return Status::Ok();
    case SSH_KNOWN_HOSTS_ERROR:
      break;
  }
  return Status::FailedPrecondition(fmt::format(
      "cannot check the host key of the SSH server {} against {}: {}; check that the file is "
      "readable and well-formed",
      server, file, ssh_get_error(ssh_)));
}

Status SftpClient::Login() {
  std::string tried;
  int rc = SSH_AUTH_DENIED;
  if (!options_.key_file.empty()) {
    if (::access(options_.key_file.c_str(), R_OK) != 0) {
      int err = errno;
      return Status::FailedPrecondition(fmt::format(
          "cannot read the private key \"key_file\" {} for {}: {}; check the path and its "
          "permissions",
          options_.key_file, where_, std::strerror(err)));
    }
    ssh_key key = nullptr;
    if (ssh_pki_import_privkey_file(options_.key_file.c_str(), nullptr, RefusePassphrase, nullptr,
                                    &key) != SSH_OK) {
      return Status::FailedPrecondition(fmt::format(
          "cannot load the private key \"key_file\" {} for {}: it is not a private key, or it is "
          "protected by a passphrase (ferry needs a key without one: `ssh-keygen -p -N '' -f "
          "{}`)",
          options_.key_file, where_, options_.key_file));
    }
    rc = ssh_userauth_publickey(ssh_, nullptr, key);
    ssh_key_free(key);
    tried = "the public key of " + options_.key_file;
  }
  if (rc != SSH_AUTH_SUCCESS && rc != SSH_AUTH_ERROR && !options_.password.empty()) {
    rc = ssh_userauth_password(ssh_, nullptr, options_.password.c_str());
    tried += (tried.empty() ? "" : " and ") + std::string("the password");
  }
  if (options_.key_file.empty() && options_.password.empty()) {
    rc = ssh_userauth_publickey_auto(ssh_, nullptr, nullptr);
    tried =
        "the default keys in ~/.ssh and the SSH agent (neither \"key_file\" nor "
        "\"password\" is set)";
  }
  if (rc == SSH_AUTH_SUCCESS) {
    return Status::Ok();
  }
  if (rc == SSH_AUTH_ERROR && ssh_is_connected(ssh_) == 0) {
    return ConnectionError("login");
  }
  std::string fix = "check \"user\"";
  if (!options_.key_file.empty()) {
    fix += fmt::format(
        ", that the public key of {} ({}.pub) is in the authorized_keys of {} on "
        "the server",
        options_.key_file, options_.key_file, options_.user);
  }
  if (!options_.password.empty()) {
    fix += ", and \"password\"";
  }
  if (options_.key_file.empty() && options_.password.empty()) {
    fix += ", and set \"key_file\" or \"password\"";
  }
  return Status::PermissionDenied(fmt::format(
      "the SSH server {}:{} refused the login of user {}{} (ferry tried {}; the server accepts "
      "{}); {}",
      options_.host, options_.port, options_.user,
      rc == SSH_AUTH_PARTIAL ? " (it wants a further authentication method)"
      : rc == SSH_AUTH_ERROR ? std::string(" (") + ssh_get_error(ssh_) + ")"
                             : "",
      tried.empty() ? "nothing" : tried, AuthMethodNames(ssh_userauth_list(ssh_, nullptr)), fix));
}

Status SftpClient::StartSftp() {
  sftp_ = sftp_new(ssh_);
  if (sftp_ == nullptr) {
    if (ssh_is_connected(ssh_) == 0) {
      return ConnectionError("opening the SFTP channel");
    }
    return Status::FailedPrecondition(fmt::format(
        "the SSH server {} refused a session channel for SFTP: {}", where_, ssh_get_error(ssh_)));
  }
  if (sftp_init(sftp_) != SSH_OK) {
    if (ssh_is_connected(ssh_) == 0) {
      return ConnectionError("starting SFTP");
    }
    return Status::FailedPrecondition(fmt::format(
        "the SSH server {} does not offer SFTP: {}; enable its sftp subsystem (OpenSSH: "
        "\"Subsystem sftp internal-sftp\" in sshd_config)",
        where_, ssh_get_error(ssh_)));
  }
  can_fsync_ = sftp_extension_supported(sftp_, "fsync@openssh.com", "1") != 0;
  write_size_ = sftp_extension_supported(sftp_, "limits@openssh.com", "1") != 0
                    ? kOpenSshWriteSize
                    : kPortableWriteSize;
  return Status::Ok();
}

bool SftpClient::connected() const { return !broken_ && ssh_is_connected(ssh_) != 0; }

Status SftpClient::ConnectionError(const std::string& what) {
  broken_ = true;
  return Status::Unavailable(fmt::format("the SSH connection to {} failed during {}: {}", where_,
                                         what, ssh_get_error(ssh_)));
}

Status SftpClient::RequestError(const std::string& what) {
  if (sftp_ == nullptr || ssh_is_connected(ssh_) == 0) {
    return ConnectionError(what);
  }
  switch (sftp_get_error(sftp_)) {
    case SSH_FX_PERMISSION_DENIED:
    case SSH_FX_WRITE_PROTECT:
      return Status::PermissionDenied(fmt::format(
          "the SFTP server {} refused to {}: permission denied; give user {} write permission "
          "on the target folder {} on {}",
          where_, what, options_.user, options_.folder, options_.host));
    case SSH_FX_NO_SUCH_FILE:
    case SSH_FX_NO_SUCH_PATH:
      return Status::Unavailable(
          fmt::format("the SFTP server {} cannot {}: no such file or folder", where_, what));
    case SSH_FX_OP_UNSUPPORTED:
      return Status::FailedPrecondition(fmt::format(
          "the SFTP server {} cannot {}: the operation is not supported", where_, what));
    case SSH_FX_EOF:
    case SSH_FX_NO_CONNECTION:
    case SSH_FX_CONNECTION_LOST:
    case SSH_FX_BAD_MESSAGE:
      return ConnectionError(what);
    default:
      // SSH_FX_FAILURE: OpenSSH's answer to most errors of the server's file system, a full
      // disk among them; it may clear up.
      return Status::Unavailable(
          fmt::format("the SFTP server {} failed to {}: {}", where_, what, ssh_get_error(ssh_)));
  }
}

Status SftpClient::CheckFolder(const std::string& path) {
  sftp_attributes attributes = sftp_stat(sftp_, path.c_str());
  if (attributes == nullptr) {
    Status s = RequestError("look up the target folder " + path);
    if (s.code() == Status::Code::kUnavailable && connected() &&
        (sftp_get_error(sftp_) == SSH_FX_NO_SUCH_FILE ||
         sftp_get_error(sftp_) == SSH_FX_NO_SUCH_PATH)) {
      return Status::Unavailable(
          fmt::format("the target folder {} does not exist on {}; create "
                      "it there (or fix \"folder\")",
                      path, where_));
    }
    return s;
  }
  bool is_dir = attributes->type == SSH_FILEXFER_TYPE_DIRECTORY;
  sftp_attributes_free(attributes);
  if (!is_dir) {
    return Status::FailedPrecondition(fmt::format(
        "{} on {} is not a folder; point the target's \"folder\" at a folder", path, where_));
  }
  return Status::Ok();
}

Status SftpClient::MakeFolder(const std::string& path) {
  if (sftp_mkdir(sftp_, path.c_str(), 0755) == SSH_OK) {
    return Status::Ok();
  }
  // SFTP version 3 has no "already exists" code: OpenSSH answers a plain failure.
  Status made = RequestError("create the folder " + path);
  if (!connected()) {
    return made;
  }
  sftp_attributes attributes = sftp_stat(sftp_, path.c_str());
  if (attributes != nullptr) {
    bool is_dir = attributes->type == SSH_FILEXFER_TYPE_DIRECTORY;
    sftp_attributes_free(attributes);
    if (is_dir) {
      return Status::Ok();
    }
  }
  return made;
}

Status SftpClient::Upload(const std::string& from, const std::string& dir, const std::string& name,
                          const std::atomic<bool>* cancel) {
  ScopedFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) {
    return Status::FromErrno(errno, "open " + from);
  }
  std::string tmp = JoinRemotePath(dir, "." + name + ".tmp");
  std::string final_path = JoinRemotePath(dir, name);
  sftp_file out = sftp_open(sftp_, tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out == nullptr) {
    return RequestError("create " + tmp);
  }
  auto abandon = [&](Status s) {
    if (out != nullptr) {
      sftp_close(out);
    }
    if (connected()) {
      sftp_unlink(sftp_, tmp.c_str());
    }
    return s;
  };
  buffer_.resize(write_size_);
  while (true) {
    if (cancel != nullptr && cancel->load()) {
      return abandon(Status::Unavailable("cancelled: ferry is shutting down"));
    }
    ssize_t n = ::read(in.get(), buffer_.data(), buffer_.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return abandon(Status::FromErrno(errno, "read " + from));
    }
    if (n == 0) {
      break;
    }
    size_t done = 0;
    while (done < static_cast<size_t>(n)) {
      ssize_t w = sftp_write(out, buffer_.data() + done, static_cast<size_t>(n) - done);
      if (w <= 0) {
        return abandon(RequestError("write " + tmp));
      }
      done += static_cast<size_t>(w);
    }
  }
  if (can_fsync_ && sftp_fsync(out) != SSH_OK) {
    return abandon(RequestError("flush " + tmp + " to disk"));
  }
  int closed = sftp_close(out);
  out = nullptr;
  if (closed != SSH_OK) {
    return abandon(RequestError("close " + tmp));
  }
  if (sftp_rename(sftp_, tmp.c_str(), final_path.c_str()) == SSH_OK) {
    return Status::Ok();
  }
  // SFTP version 3 renames only onto a free name: replace a file sent before (a retry after a
  // lost reply), then rename again.
  Status renamed = RequestError("rename " + tmp + " to " + name);
  if (!connected()) {
    return renamed;
  }
  sftp_attributes existing = sftp_lstat(sftp_, final_path.c_str());
  if (existing == nullptr) {
    return abandon(renamed);
  }
  sftp_attributes_free(existing);
  if (sftp_unlink(sftp_, final_path.c_str()) != SSH_OK) {
    return abandon(RequestError("replace " + final_path));
  }
  if (sftp_rename(sftp_, tmp.c_str(), final_path.c_str()) != SSH_OK) {
    return abandon(RequestError("rename " + tmp + " to " + name));
  }
  return Status::Ok();
}

Status SftpClient::WriteEmptyFile(const std::string& path) {
  sftp_file file = sftp_open(sftp_, path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (file == nullptr) {
    return RequestError("create " + path);
  }
  if (sftp_close(file) != SSH_OK) {
    return RequestError("close " + path);
  }
  return Status::Ok();
}

Status SftpClient::RemoveFile(const std::string& path) {
  if (sftp_unlink(sftp_, path.c_str()) != SSH_OK) {
    return RequestError("remove " + path);
  }
  return Status::Ok();
}

}  // namespace ferry
