#include "bookkeeper/journal_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/scoped_fd.h"

namespace ferry::bookkeeper {

Result<std::vector<std::string>> ListJournalFiles(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    return Status::FromErrno(errno, "open journal folder " + dir);
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.size() > 6 && name.ends_with(".jsonl") && name[0] != '.') {
      names.push_back(std::move(name));
    }
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

Result<uint64_t> JournalFileSize(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return Status::FromErrno(errno, "stat " + path);
  }
  return static_cast<uint64_t>(st.st_size);
}

Result<JournalChunk> ReadJournalLines(const std::string& path, uint64_t offset, size_t max_lines,
                                      size_t max_bytes) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status::FromErrno(errno, "open " + path);
  }
  ScopedFd closer(fd);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return Status::FromErrno(errno, "stat " + path);
  }
  JournalChunk chunk;
  chunk.file_size = static_cast<uint64_t>(st.st_size);
  std::string pending;  // bytes of a line not yet terminated
  uint64_t pos = offset;
  constexpr size_t kBlock = 1 << 20;
  std::string block(kBlock, '\0');
  size_t bytes_read = 0;
  while (chunk.lines.size() < max_lines && (bytes_read < max_bytes || chunk.lines.empty())) {
    ssize_t n = pread(fd, block.data(), kBlock, static_cast<off_t>(pos));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Status::FromErrno(errno, "read " + path);
    }
    if (n == 0) {
      break;  // end of file: whatever is in `pending` is a partial line
    }
    bytes_read += static_cast<size_t>(n);
    size_t start = 0;
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
      if (block[i] != '\n') {
        continue;
      }
      pending.append(block, start, i - start);
      chunk.lines.push_back({std::move(pending), pos + i + 1});
      pending.clear();
      start = i + 1;
      if (chunk.lines.size() >= max_lines) {
        return chunk;
      }
    }
    pending.append(block, start, static_cast<size_t>(n) - start);
    pos += static_cast<uint64_t>(n);
  }
  return chunk;
}

}  // namespace ferry::bookkeeper
