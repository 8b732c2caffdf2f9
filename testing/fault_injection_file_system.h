// FaultInjectionFileSystem: a FileSystem for tests that can "pull the plug" and can make
// operations fail, to prove that code publishing files is crash-safe.
//
// It wraps a real file system (DefaultFileSystem() by default) and forwards every operation to
// it, while remembering what a power cut would still take away (modelled on leveldb's
// FaultInjectionTestEnv in db/fault_injection_test.cc):
//
//  * File data. For each file created or opened through this object it tracks the length made
//    durable by WritableFile::Sync() or SyncFile(). NewWritableFile() starts it at 0, also
//    for an existing file it truncates (pessimistic: a real crash might keep the old
//    content). Files this object did not write are assumed durable.
//  * Directory entries. Every file creation (NewWritableFile/NewAppendableFile of a new name),
//    CreateDir/CreateDirs, Link, Rename, RemoveFile and RemoveTree is logged as pending until
//    SyncDir() of the directory that holds the (new) name: the parent of the created, linked or
//    removed path, and for a rename the parent of the target. A rename is modelled as atomic:
//    syncing the target's directory makes both halves durable, the source's alone makes none.
//
// SimulateCrash() then undoes, newest first, every pending directory change, and truncates every
// tracked file to its durable length:
//  * a created file or link is removed; a created directory is removed with everything in it;
//  * a rename is moved back to its old name (with whatever the directory now contains); the
//    file or directory it replaced comes back. If the old name cannot be restored (its parent
//    is gone or the name is taken again by a durable change) the renamed entry is removed;
//  * a removed file or tree comes back with the content it had when it was removed (then
//    truncated like any other tracked file).
// Pending changes inside a directory that is renamed follow it to its new name. What is not
// modelled: reordering of data and metadata beyond the above, partially written blocks, and
// luck: a real crash often keeps more than this model does.
//
// By default the fsyncs themselves are not forwarded (durability is simulated, and skipping
// real fsyncs keeps crash tests fast); pass forward_syncs = true to forward them.
//
// Failure injection: FailAfter(n) lets the next n mutating operations (every operation except
// reads, queries and WritableFile::Close) succeed and makes all later ones fail with IoError
// without touching the disk, so that a test can stop the code under test at every point.
//
// Thread-safety: all methods may be called concurrently; operations are serialized. Writable
// files obtained from this object must not outlive it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/file_system.h"

namespace ferry {

class FaultInjectionFileSystem final : public FileSystem {
 public:
  explicit FaultInjectionFileSystem(FileSystem* base = DefaultFileSystem(),
                                    bool forward_syncs = false);
  ~FaultInjectionFileSystem() override;

  FaultInjectionFileSystem(const FaultInjectionFileSystem&) = delete;
  FaultInjectionFileSystem& operator=(const FaultInjectionFileSystem&) = delete;

  // FileSystem.
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override;
  Result<std::string> ReadFile(const std::string& path) override;
  Status SyncFile(const std::string& path) override;
  Status SyncDir(const std::string& dir) override;
  // Makes every tracked file and every pending directory change durable.
  Status SyncFileSystem(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Link(const std::string& from, const std::string& to) override;
  Status CreateDir(const std::string& path) override;
  Status CreateDirs(const std::string& path) override;
  Status RemoveFile(const std::string& path) override;
  Status RemoveTree(const std::string& path) override;
  Result<std::vector<std::string>> ListDir(const std::string& dir) override;
  bool Exists(const std::string& path) override;
  bool IsDirectory(const std::string& path) override;
  Result<uint64_t> FileSize(const std::string& path) override;
  Result<WallTime> ModificationTime(const std::string& path) override;
  Result<DiskSpace> GetDiskSpace(const std::string& path) override;

  // The next `n` mutating operations succeed; every later one fails with IoError.
  void FailAfter(int64_t n);
  // Ends failure injection.
  void StopFailing();
  // Mutating operations attempted since construction (failed ones included).
  int64_t mutating_ops() const;
  // Directory changes not yet made durable by SyncDir.
  size_t pending_dir_changes() const;

  // Reverts the disk to what a power cut at this moment could leave (see above), then forgets
  // all tracking (everything on disk now counts as durable) and ends failure injection. Call it
  // when the code under test has stopped. Returns the first error of the real file system.
  Status SimulateCrash();

 private:
  class File;
  struct FileData;
  struct Snapshot;
  struct Change;

  Status MaybeFailLocked(std::string_view what, const std::string& path);
  Status AppendToFile(const std::shared_ptr<FileData>& data, WritableFile* base,
                      std::string_view bytes);
  Status SyncWrittenFile(const std::shared_ptr<FileData>& data, WritableFile* base);

  void RecordLocked(Change change);
  Snapshot TakeSnapshotLocked(const std::string& path);
  void RestoreSnapshotLocked(const std::string& path, const Snapshot& snapshot);
  // Moves tracked file data of `from` and everything below it to `to`.
  void MoveTrackedLocked(const std::string& from, const std::string& to);
  void ForgetTrackedLocked(const std::string& path);
  void UndoLocked(const Change& change);

  FileSystem* const base_;
  const bool forward_syncs_;

  mutable std::mutex mu_;
  int64_t ops_ = 0;
  int64_t fail_from_op_ = -1;  // operations with index >= this fail; -1: none
  uint64_t next_change_id_ = 0;
  std::map<std::string, std::shared_ptr<FileData>> files_;  // current name -> data state
  std::vector<Change> pending_;                             // oldest first
};

}  // namespace ferry
