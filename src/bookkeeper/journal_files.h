// Journal files as the bookkeeper reads them: the *.jsonl files of <data>/journal and their
// complete lines from a byte offset on.
//
// A journal line is complete once its '\n' is written (the journal writes each line with one
// write(2)); a line without one is a writer's partial last line (a crash, or a write in
// progress) and is not returned until it is complete. Files are only read, never changed.
// Thread-safety: free functions without shared state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"

namespace ferry::bookkeeper {

struct JournalLine {
  std::string text;     // without the '\n'
  uint64_t end_offset;  // byte offset just after the line's '\n'
};

struct JournalChunk {
  std::vector<JournalLine> lines;
  uint64_t file_size = 0;  // the size when it was read
};

// Names (not paths) of the *.jsonl files in `dir`, sorted. NotFound when `dir` is missing.
Result<std::vector<std::string>> ListJournalFiles(const std::string& dir);

// Size of `path` in bytes.
Result<uint64_t> JournalFileSize(const std::string& path);

// Reads up to `max_lines` complete lines of `path` starting at byte `offset` (which must be the
// start of a line). Stops early after about `max_bytes` unless no complete line was read yet.
// IoError/NotFound from the file system.
Result<JournalChunk> ReadJournalLines(const std::string& path, uint64_t offset, size_t max_lines,
                                      size_t max_bytes = 8 << 20);

}  // namespace ferry::bookkeeper
