#include "testing/fault_injection_file_system.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <utility>

namespace ferry {
namespace {

// Lexically normal form without a trailing '/', so that the same entry has one name.
std::string Normalize(const std::string& path) {
  std::string p = std::filesystem::path(path).lexically_normal().string();
  while (p.size() > 1 && p.back() == '/') {
    p.pop_back();
  }
  return p;
}

std::string Parent(const std::string& normalized) {
  std::string parent = std::filesystem::path(normalized).parent_path().string();
  return parent.empty() ? "." : parent;
}

bool IsStrictlyBelow(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         path[dir.size()] == '/';
}

bool IsAtOrBelow(const std::string& path, const std::string& dir) {
  return path == dir || IsStrictlyBelow(path, dir);
}

// Replaces the prefix `from` of `path` by `to` when `path` is strictly below `from`.
bool RewriteBelow(std::string* path, const std::string& from, const std::string& to) {
  if (!IsStrictlyBelow(*path, from)) {
    return false;
  }
  *path = to + path->substr(from.size());
  return true;
}

}  // namespace

struct FaultInjectionFileSystem::FileData {
  uint64_t written = 0;  // length as written through this object (or found when opened)
  uint64_t synced = 0;   // length that survives a crash
};

// A removed or replaced file or tree, kept in memory to bring it back on a crash.
struct FaultInjectionFileSystem::Snapshot {
  struct Entry {
    std::string relative;  // "" for the snapshot's root
    bool is_dir = false;
    std::string content;
    std::shared_ptr<FileData> data;  // null when the file was not tracked
  };
  std::vector<Entry> entries;  // parents before children
};

struct FaultInjectionFileSystem::Change {
  enum class Kind { kCreateFile, kCreateDir, kLink, kRename, kRemove };
  Kind kind = Kind::kCreateFile;
  uint64_t id = 0;
  std::string path;                  // the created, linked, removed or renamed-to name
  std::string from;                  // the old name of a rename
  std::string sync_dir;              // SyncDir of this directory makes the change durable
  std::optional<Snapshot> snapshot;  // what a remove removed or a rename replaced
  std::vector<uint64_t> rewritten;   // earlier changes moved along by this directory rename

  static Change Make(Kind kind, std::string path, std::string sync_dir, std::string from = "") {
    Change change;
    change.kind = kind;
    change.path = std::move(path);
    change.sync_dir = std::move(sync_dir);
    change.from = std::move(from);
    return change;
  }
};

class FaultInjectionFileSystem::File final : public WritableFile {
 public:
  File(FaultInjectionFileSystem* fs, std::unique_ptr<WritableFile> base,
       std::shared_ptr<FileData> data)
      : fs_(fs), base_(std::move(base)), data_(std::move(data)) {}

  Status Append(std::string_view bytes) override {
    return fs_->AppendToFile(data_, base_.get(), bytes);
  }
  Status Sync() override { return fs_->SyncWrittenFile(data_, base_.get()); }
  Status Close() override { return base_->Close(); }

 private:
  FaultInjectionFileSystem* fs_;
  std::unique_ptr<WritableFile> base_;
  std::shared_ptr<FileData> data_;
};

FaultInjectionFileSystem::FaultInjectionFileSystem(FileSystem* base, bool forward_syncs)
    : base_(base), forward_syncs_(forward_syncs) {}

FaultInjectionFileSystem::~FaultInjectionFileSystem() = default;

void FaultInjectionFileSystem::FailAfter(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_from_op_ = ops_ + std::max<int64_t>(n, 0);
}

void FaultInjectionFileSystem::StopFailing() {
  std::lock_guard<std::mutex> lock(mu_);
  fail_from_op_ = -1;
}

int64_t FaultInjectionFileSystem::mutating_ops() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ops_;
}

size_t FaultInjectionFileSystem::pending_dir_changes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_.size();
}

Status FaultInjectionFileSystem::MaybeFailLocked(std::string_view what, const std::string& path) {
  int64_t index = ops_++;
  if (fail_from_op_ >= 0 && index >= fail_from_op_) {
    return Status::IoError("injected fault: " + std::string(what) + " " + path);
  }
  return Status::Ok();
}

void FaultInjectionFileSystem::RecordLocked(Change change) {
  change.id = next_change_id_++;
  pending_.push_back(std::move(change));
}

FaultInjectionFileSystem::Snapshot FaultInjectionFileSystem::TakeSnapshotLocked(
    const std::string& path) {
  Snapshot snapshot;
  // Depth-first, parents first; `pending` holds relative names still to visit.
  std::vector<std::string> pending = {""};
  while (!pending.empty()) {
    std::string relative = std::move(pending.back());
    pending.pop_back();
    std::string full = relative.empty() ? path : JoinPath(path, relative);
    Snapshot::Entry entry;
    entry.relative = relative;
    if (base_->IsDirectory(full)) {
      entry.is_dir = true;
      auto names = base_->ListDir(full);
      if (names) {
        for (const std::string& name : *names) {
          pending.push_back(relative.empty() ? name : JoinPath(relative, name));
        }
      }
    } else {
      auto content = base_->ReadFile(full);
      if (content) {
        entry.content = std::move(content).value();
      }
      auto it = files_.find(full);
      if (it != files_.end()) {
        entry.data = it->second;
      }
    }
    snapshot.entries.push_back(std::move(entry));
  }
  return snapshot;
}

void FaultInjectionFileSystem::RestoreSnapshotLocked(const std::string& path,
                                                     const Snapshot& snapshot) {
  for (const Snapshot::Entry& entry : snapshot.entries) {
    std::string full = entry.relative.empty() ? path : JoinPath(path, entry.relative);
    if (entry.is_dir) {
      base_->CreateDir(full);
      continue;
    }
    auto file = base_->NewWritableFile(full);
    if (!file) {
      continue;
    }
    (*file)->Append(entry.content);
    (*file)->Close();
    if (entry.data) {
      files_[full] = entry.data;
    }
  }
}

void FaultInjectionFileSystem::MoveTrackedLocked(const std::string& from, const std::string& to) {
  std::vector<std::pair<std::string, std::shared_ptr<FileData>>> moved;
  for (auto it = files_.begin(); it != files_.end();) {
    if (IsAtOrBelow(it->first, from)) {
      moved.emplace_back(to + it->first.substr(from.size()), std::move(it->second));
      it = files_.erase(it);
    } else {
      ++it;
    }
  }
  ForgetTrackedLocked(to);
  for (auto& [name, data] : moved) {
    files_[name] = std::move(data);
  }
}

void FaultInjectionFileSystem::ForgetTrackedLocked(const std::string& path) {
  for (auto it = files_.begin(); it != files_.end();) {
    if (IsAtOrBelow(it->first, path)) {
      it = files_.erase(it);
    } else {
      ++it;
    }
  }
}

Result<std::unique_ptr<WritableFile>> FaultInjectionFileSystem::NewWritableFile(
    const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string p = Normalize(path);
  FERRY_RETURN_IF_ERROR(MaybeFailLocked("create", p));
  bool existed = base_->Exists(p);
  auto file = base_->NewWritableFile(p);
  if (!file) {
    return file.error();
  }
  auto data = std::make_shared<FileData>();
  files_[p] = data;
  if (!existed) {
    RecordLocked(Change::Make(Change::Kind::kCreateFile, p, Parent(p)));
  }
  return std::unique_ptr<WritableFile>(new File(this, std::move(file).value(), data));
}

Result<std::unique_ptr<WritableFile>> FaultInjectionFileSystem::NewAppendableFile(
    const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string p = Normalize(path);
  FERRY_RETURN_IF_ERROR(MaybeFailLocked("open for appending", p));
  bool existed = base_->Exists(p);
  auto file = base_->NewAppendableFile(p);
  if (!file) {
    return file.error();
  }
  std::shared_ptr<FileData>& data = files_[p];
  if (!data) {
    data = std::make_shared<FileData>();
    if (existed) {
      auto size = base_->FileSize(p);
      data->written = data->synced = size ? *size : 0;
    }
  }
  if (!existed) {
    RecordLocked(Change::Make(Change::Kind::kCreateFile, p, Parent(p)));
  }
  return std::unique_ptr<WritableFile>(new File(this, std::move(file).value(), data));
}

Status FaultInjectionFileSystem::AppendToFile(const std::shared_ptr<FileData>& data,
                                              WritableFile* base, std::string_view bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  FERRY_RETURN_IF_ERROR(MaybeFailLocked("append", "(open file)"));
  FERRY_RETURN_IF_ERROR(base->Append(bytes));
  data->written += bytes.size();
  return Status::Ok();
}

Status FaultInjectionFileSystem::SyncWrittenFile(const std::shared_ptr<FileData>& data,
                                                 WritableFile* base) {
  std::lock_guard<std::mutex> lock(mu_);
  FERRY_RETURN_IF_ERROR(MaybeFailLocked("fdatasync", "(open file)"));
  if (forward_syncs_) {
    FERRY_RETURN_IF_ERROR(base->Sync());
  }
  data->synced = data->written;
  return Status::Ok();
}

Result<std::string> FaultInjectionFileSystem::ReadFile(const std::string& path) {
  return base_->ReadFile(path);
}

Status FaultInjectionFileSystem::SyncFile(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string p = Normalize(path);
  FERRY_RETURN_IF_ERROR(MaybeFailLocked("fsync", p));
  if (forward_syncs_) {
    FERRY_RETURN_IF_ERROR(base_->SyncFile(p));
  }
  auto size = base_->FileSize(p);
  if (!size) {
    return size.error().WithContext("fsync");
  }
  auto it = files_.find(p);
  if (it != files_.end()) {
    it->second->written = std::max(it->second->written, *size);
    it->second->synced = *size;
  }
  return Status::Ok();
}

Status FaultInjectionFileSystem::SyncDir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string d = Normalize(dir);
  FERRY_RETURN_IF_ERROR(MaybeFailLocked("fsync directory", d));
  if (forward_syncs_) {
    FERRY_RETURN_IF_ERROR(base_->SyncDir(d));
  } else if (!base_->IsDirectory(d)) {
    return Status::NotFound("fsync directory " + d + ": no such directory");
  }
  std::erase_if(pending_, [&](const Change& c) { return c.sync_dir == d; });
  return Status::Ok();
}

Status FaultInjectionFileSystem::SyncFileSystem(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string p = Normalize(path);
  FERRY_RETURN_IF_ERROR(MaybeFailLocked("syncfs", p));
  if (forward_syncs_) {
    FERRY_RETURN_IF_ERROR(base_->SyncFileSystem(p));
  }
  for (auto& [name, data] : files_) {
    auto size = base_->FileSize(name);
    data->written = std::max(data->written, size ? *size : 0);
    data->synced = data->written;
  }
  pending_.clear();
  return Status::Ok();
}

Status FaultInjectionFileSystem::Rename(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string f = Normalize(from);
  const std::string t = Normalize(to);
  FERRY_RETURN_IF_ERROR(MaybeFailLocked("rename", f + " to " + t));
  std::optional<Snapshot> replaced;
  if (f != t && base_->Exists(t)) {
    replaced = TakeSnapshotLocked(t);
  }
  FERRY_RETURN_IF_ERROR(base_->Rename(f, t));
  if (f == t) {
    return Status::Ok();
  }
  MoveTrackedLocked(f, t);
  Change change = Change::Make(Change::Kind::kRename, t, Parent(t), f);
  change.snapshot = std::move(replaced);
  // Pending changes inside a renamed directory now live under its new name.
  for (Change& earlier : pending_) {
    bool moved = RewriteBelow(&earlier.path, f, t);
    moved |= RewriteBelow(&earlier.from, f, t);
    moved |= RewriteBelow(&earlier.sync_dir, f, t);
    if (earlier.sync_dir == f) {
      earlier.sync_dir = t;
      moved = true;
    }
    if (moved) {
      change.rewritten.push_back(earlier.id);
    }
  }
  RecordLocked(std::move(change));
  return Status::Ok();
}

Status FaultInjectionFileSystem::Link(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string f = Normalize(from);
  const std::string t = Normalize(to);
  FERRY_RETURN_IF_ERROR(MaybeFailLocked("link", f + " to " + t));
  FERRY_RETURN_IF_ERROR(base_->Link(f, t));
  auto it = files_.find(f);
  if (it != files_.end()) {
    files_[t] = it->second;
  }
  RecordLocked(Change::Make(Change::Kind::kLink, t, Parent(t)));
  return Status::Ok();
}

Status FaultInjectionFileSystem::CreateDir(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string p = Normalize(path);
  FERRY_RETURN_IF_ERROR(MaybeFailLocked("mkdir", p));
  FERRY_RETURN_IF_ERROR(base_->CreateDir(p));
  RecordLocked(Change::Make(Change::Kind::kCreateDir, p, Parent(p)));
  return Status::Ok();
}

Status FaultInjectionFileSystem::CreateDirs(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string p = Normalize(path);
  FERRY_RETURN_IF_ERROR(MaybeFailLocked("mkdir -p", p));
  // The missing ancestors, outermost first.
  std::vector<std::string> missing;
  for (std::string d = p; !d.empty() && !base_->Exists(d);) {
    missing.push_back(d);
    std::string parent = Parent(d);
    if (parent == d || parent == ".") {
      break;
    }
    d = parent;
  }
  std::reverse(missing.begin(), missing.end());
  for (const std::string& d : missing) {
    Status s = base_->CreateDir(d);
    if (!s.ok() && !(s.code() == Status::Code::kAlreadyExists && base_->IsDirectory(d))) {
      return s;
    }
    if (s.ok()) {
      RecordLocked(Change::Make(Change::Kind::kCreateDir, d, Parent(d)));
    }
  }
  if (!base_->IsDirectory(p)) {
    return Status::AlreadyExists("mkdir " + p + ": exists and is not a directory");
  }
  return Status::Ok();
}

Status FaultInjectionFileSystem::RemoveFile(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string p = Normalize(path);
  FERRY_RETURN_IF_ERROR(MaybeFailLocked("unlink", p));
  std::optional<Snapshot> removed;
  if (base_->Exists(p) && !base_->IsDirectory(p)) {
    removed = TakeSnapshotLocked(p);
  }
  FERRY_RETURN_IF_ERROR(base_->RemoveFile(p));
  ForgetTrackedLocked(p);
  Change change = Change::Make(Change::Kind::kRemove, p, Parent(p));
  change.snapshot = std::move(removed);
  RecordLocked(std::move(change));
  return Status::Ok();
}

Status FaultInjectionFileSystem::RemoveTree(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string p = Normalize(path);
  FERRY_RETURN_IF_ERROR(MaybeFailLocked("remove tree", p));
  std::optional<Snapshot> removed;
  if (base_->Exists(p)) {
    removed = TakeSnapshotLocked(p);
  }
  FERRY_RETURN_IF_ERROR(base_->RemoveTree(p));
  ForgetTrackedLocked(p);
  Change change = Change::Make(Change::Kind::kRemove, p, Parent(p));
  change.snapshot = std::move(removed);
  RecordLocked(std::move(change));
  return Status::Ok();
}

Result<std::vector<std::string>> FaultInjectionFileSystem::ListDir(const std::string& dir) {
  return base_->ListDir(dir);
}

bool FaultInjectionFileSystem::Exists(const std::string& path) { return base_->Exists(path); }

bool FaultInjectionFileSystem::IsDirectory(const std::string& path) {
  return base_->IsDirectory(path);
}

Result<uint64_t> FaultInjectionFileSystem::FileSize(const std::string& path) {
  return base_->FileSize(path);
}

Result<WallTime> FaultInjectionFileSystem::ModificationTime(const std::string& path) {
  return base_->ModificationTime(path);
}

Result<DiskSpace> FaultInjectionFileSystem::GetDiskSpace(const std::string& path) {
  return base_->GetDiskSpace(path);
}

void FaultInjectionFileSystem::UndoLocked(const Change& change) {
  const std::string& path = change.path;
  switch (change.kind) {
    case Change::Kind::kCreateFile:
    case Change::Kind::kLink:
      if (base_->Exists(path) && !base_->IsDirectory(path)) {
        base_->RemoveFile(path);
        ForgetTrackedLocked(path);
      }
      return;
    case Change::Kind::kCreateDir:
      if (base_->IsDirectory(path)) {
        base_->RemoveTree(path);
        ForgetTrackedLocked(path);
      }
      return;
    case Change::Kind::kRemove:
      if (change.snapshot && !base_->Exists(path) && base_->IsDirectory(Parent(path))) {
        RestoreSnapshotLocked(path, *change.snapshot);
      }
      return;
    case Change::Kind::kRename: {
      // Changes made inside the directory before it was renamed go back to the old name.
      std::set<uint64_t> ids(change.rewritten.begin(), change.rewritten.end());
      for (Change& earlier : pending_) {
        if (ids.count(earlier.id) != 0) {
          RewriteBelow(&earlier.path, path, change.from);
          RewriteBelow(&earlier.from, path, change.from);
          if (!RewriteBelow(&earlier.sync_dir, path, change.from) && earlier.sync_dir == path) {
            earlier.sync_dir = change.from;
          }
        }
      }
      if (base_->Exists(path)) {
        if (!base_->Exists(change.from) && base_->IsDirectory(Parent(change.from)) &&
            base_->Rename(path, change.from).ok()) {
          MoveTrackedLocked(path, change.from);
        } else {
          base_->RemoveTree(path);
          ForgetTrackedLocked(path);
        }
      }
      if (change.snapshot && !base_->Exists(path) && base_->IsDirectory(Parent(path))) {
        RestoreSnapshotLocked(path, *change.snapshot);
      }
      return;
    }
  }
}

Status FaultInjectionFileSystem::SimulateCrash() {
  std::lock_guard<std::mutex> lock(mu_);
  // Undo newest first, so that each change sees the disk as it was right after it was made.
  while (!pending_.empty()) {
    Change change = std::move(pending_.back());
    pending_.pop_back();
    UndoLocked(change);
  }
  Status first_error;
  for (const auto& [path, data] : files_) {
    if (!base_->Exists(path) || base_->IsDirectory(path)) {
      continue;
    }
    auto size = base_->FileSize(path);
    if (!size || *size <= data->synced) {
      continue;
    }
    auto content = base_->ReadFile(path);
    Status s = content.status();
    if (s.ok()) {
      auto file = base_->NewWritableFile(path);
      s = file.status();
      if (s.ok()) {
        s = (*file)->Append(std::string_view(*content).substr(0, data->synced));
      }
      if (s.ok()) {
        s = (*file)->Close();
      }
    }
    if (!s.ok() && first_error.ok()) {
      first_error = s.WithContext("simulated crash: truncating " + path);
    }
  }
  files_.clear();
  fail_from_op_ = -1;
  return first_error;
}

}  // namespace ferry
