#include "spool/intake_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/logging.h"
#include "core/scoped_fd.h"

namespace ferry {
namespace {

constexpr char kMagic[8] = {'F', 'R', 'Y', 'I', 'N', 'T', 'K', '1'};
constexpr uint64_t kHeaderSize = 512;
constexpr uint64_t kPage = 4096;
constexpr uint64_t kMaxSegmentBytes = 64ull << 20;
constexpr uint64_t kMinSegmentBytes = 1ull << 20;
constexpr size_t kMaxUid = 128;
constexpr std::string_view kSegmentSuffix = ".seg";

// Header fields (offsets in bytes, little-endian integers).
constexpr size_t kOffLsn = 8;
constexpr size_t kOffPayloadSize = 16;
constexpr size_t kOffPayloadHash = 24;
constexpr size_t kOffBootId = 32;  // 40 bytes, zero padded
constexpr size_t kBootIdBytes = 40;
constexpr size_t kOffSeriesLen = 72;
constexpr size_t kOffSopLen = 74;
constexpr size_t kOffSeries = 76;
constexpr size_t kOffSop = kOffSeries + kMaxUid;
constexpr size_t kOffContextLen = kOffSop + kMaxUid;  // 332
constexpr size_t kOffContext = kOffContextLen + 2;
constexpr size_t kMaxContext = 160;
constexpr size_t kOffHeaderHash = kHeaderSize - 8;
static_assert(kOffContext + kMaxContext <= kOffHeaderHash);

uint64_t RoundUp(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }

void Put64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    p[i] = static_cast<char>(v >> (8 * i));
  }
}
uint64_t Get64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) {
    v = (v << 8) | static_cast<unsigned char>(p[i]);
  }
  return v;
}
void Put16(char* p, uint16_t v) {
  p[0] = static_cast<char>(v);
  p[1] = static_cast<char>(v >> 8);
}
uint16_t Get16(const char* p) {
  return static_cast<uint16_t>(static_cast<unsigned char>(p[0]) |
                               (static_cast<unsigned char>(p[1]) << 8));
}

Status Errno(std::string_view what, const std::string& path) {
  return Status::FromErrno(errno, std::string(what) + " " + path);
}

Status PReadAll(int fd, char* buf, uint64_t size, uint64_t offset, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::pread(fd, buf, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return Errno("read", path);
    }
    if (n == 0) {
      return Status::Corruption("read " + path + ": the file is shorter than expected");
    }
    buf += n;
    size -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

// Opens `path` read-only into `fd` (which must be empty) and tells its size.
Status OpenForReading(const std::string& path, ScopedFd* fd, uint64_t* size) {
  int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) {
    return Errno("open", path);
  }
  fd->reset(raw);
  struct stat st;
  if (::fstat(raw, &st) != 0) {
    return Errno("stat", path);
  }
  *size = static_cast<uint64_t>(st.st_size);
  return Status::Ok();
}

Status PWriteAll(int fd, const char* buf, uint64_t size, uint64_t offset, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, buf, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return Errno("write", path);
    }
    buf += n;
    size -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

// File times come from the kernel's coarse clock (up to one tick, at most 10 ms, behind the
// precise one) or, on newer kernels, from the precise clock. A file renamed after the precise
// time T therefore has a time after T - kClockSlack; one renamed before T has a time before T.
constexpr auto kClockSlack = std::chrono::milliseconds(20);

WallTime PreciseNow() { return std::chrono::system_clock::now(); }

int64_t ToNanos(WallTime t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

bool IsSegmentName(const std::string& name) {
  return name.size() > kSegmentSuffix.size() && name.size() <= kSegmentSuffix.size() + 18 &&
         name.ends_with(kSegmentSuffix) &&
         name.find_first_not_of("0123456789") == name.size() - kSegmentSuffix.size();
}

// Parses a header; false when it is not a valid record header.
bool ParseHeader(const char* h, IntakeLog::Record* r) {
  if (std::memcmp(h, kMagic, sizeof(kMagic)) != 0 ||
      XXH3_64bits(h, kOffHeaderHash) != Get64(h + kOffHeaderHash)) {
    return false;
  }
  uint16_t series_len = Get16(h + kOffSeriesLen);
  uint16_t sop_len = Get16(h + kOffSopLen);
  uint16_t context_len = Get16(h + kOffContextLen);
  if (series_len > kMaxUid || sop_len > kMaxUid || context_len > kMaxContext) {
    return false;
  }
  r->lsn = Get64(h + kOffLsn);
  r->payload_size = Get64(h + kOffPayloadSize);
  r->payload_hash = Get64(h + kOffPayloadHash);
  const char* boot = h + kOffBootId;
  r->boot_id.assign(boot, strnlen(boot, kBootIdBytes));
  r->series_uid.assign(h + kOffSeries, series_len);
  r->sop_uid.assign(h + kOffSop, sop_len);
  r->context.assign(h + kOffContext, context_len);
  return true;
}

// Hashes `size` bytes of `fd` from `offset` in chunks.
Result<uint64_t> HashRange(int fd, uint64_t offset, uint64_t size, const std::string& path) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  std::vector<char> buf(1 << 20);
  Status s;
  while (size > 0 && s.ok()) {
    uint64_t n = std::min<uint64_t>(size, buf.size());
    s = PReadAll(fd, buf.data(), n, offset, path);
    XXH3_64bits_update(state, buf.data(), n);
    offset += n;
    size -= n;
  }
  uint64_t hash = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  if (!s.ok()) {
    return s;
  }
  return hash;
}

constexpr std::string_view kLockFile = "lock";

// Takes the intake folder's lock (held for the life of `fd`): one receiver per data folder.
Status LockIntakeDir(const std::string& dir, ScopedFd* fd) {
  const std::string path = JoinPath(dir, kLockFile);
  fd->reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (fd->get() < 0) {
    return Errno("open", path);
  }
  if (::flock(fd->get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Status::FailedPrecondition(fmt::format(
          "another ferry receiver is using the intake log {}; run one receiver per data folder",
          dir));
    }
    return Errno("lock", path);
  }
  return Status::Ok();
}

}  // namespace

Status RemoveUnusedIntakeLog(FileSystem* fs, const std::string& spool_root) {
  const std::string dir = JoinPath(spool_root, kIntakeDir);
  if (!fs->Exists(dir)) {
    return Status::Ok();
  }
  ScopedFd lock;
  FERRY_RETURN_IF_ERROR(LockIntakeDir(dir, &lock));
  return fs->RemoveTree(dir);
}

struct IntakeLog::Segment {
  std::string path;
  int fd = -1;
  uint64_t write_offset = 0;  // where the next record goes (mu_)
  uint64_t written_to = 0;    // end of the last completed write (mu_)
  uint64_t max_lsn = 0;       // (mu_)
  uint64_t synced_to = 0;     // (sync_mu_)
  bool syncing = false;       // (sync_mu_)
  ~Segment() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
};

std::string CurrentBootId() {
  auto text = DefaultFileSystem()->ReadFile("/proc/sys/kernel/random/boot_id");
  if (!text) {
    return "";
  }
  std::string id = *text;
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) {
    id.pop_back();
  }
  return id.substr(0, kBootIdBytes);
}

uint64_t IntakeLog::Hash(std::string_view data) { return XXH3_64bits(data.data(), data.size()); }

Result<std::optional<IntakeCheckpoint>> ReadIntakeCheckpoint(FileSystem* fs,
                                                             const std::string& spool_root) {
  const std::string path = JoinPath(JoinPath(spool_root, kIntakeDir), kIntakeCheckpointFile);
  auto text = fs->ReadFile(path);
  if (!text) {
    if (text.error().code() == Status::Code::kNotFound) {
      return std::optional<IntakeCheckpoint>();
    }
    return text.error();
  }
  auto json = nlohmann::json::parse(*text, nullptr, false);
  if (!json.is_object() || !json.contains("lsn") || !json["lsn"].is_number_unsigned() ||
      !json.contains("durable_until_ns") || !json["durable_until_ns"].is_number_integer()) {
    return Status::Corruption("cannot parse " + path);
  }
  IntakeCheckpoint cp;
  cp.lsn = json["lsn"].get<uint64_t>();
  cp.durable_until = WallTime(std::chrono::duration_cast<WallTime::duration>(
      std::chrono::nanoseconds(json["durable_until_ns"].get<int64_t>())));
  cp.boot_id = json.value("boot_id", "");
  cp.idle = json.value("idle", false);
  return std::optional<IntakeCheckpoint>(cp);
}

Result<IntakeLog::ScanResult> IntakeLog::Scan(FileSystem* fs, const std::string& spool_root) {
  ScanResult result;
  const std::string dir = JoinPath(spool_root, kIntakeDir);
  FERRY_ASSIGN_OR_RETURN(auto checkpoint, ReadIntakeCheckpoint(fs, spool_root));
  if (checkpoint) {
    result.checkpoint_lsn = checkpoint->lsn;
  }
  result.max_lsn = result.checkpoint_lsn;
  auto names = fs->ListDir(dir);
  if (!names) {
    if (names.error().code() == Status::Code::kNotFound) {
      return result;
    }
    return names.error();
  }
  char header[kHeaderSize];
  for (const auto& name : *names) {
    if (!IsSegmentName(name)) {
      continue;
    }
    const std::string path = JoinPath(dir, name);
    ScopedFd fd;
    uint64_t size = 0;
    FERRY_RETURN_IF_ERROR(OpenForReading(path, &fd, &size));
    uint64_t offset = 0;
    uint64_t previous = 0;
    while (offset + kHeaderSize <= size) {
      FERRY_RETURN_IF_ERROR(PReadAll(fd.get(), header, kHeaderSize, offset, path));
      Record r;
      if (!ParseHeader(header, &r) || r.lsn <= previous ||
          r.payload_size > size - offset - kHeaderSize) {
        break;  // end of what was written in this round of the segment
      }
      r.segment = path;
      r.payload_offset = offset + kHeaderSize;
      if (r.lsn > result.checkpoint_lsn) {
        FERRY_ASSIGN_OR_RETURN(uint64_t hash,
                               HashRange(fd.get(), r.payload_offset, r.payload_size, path));
        if (hash != r.payload_hash) {
          break;  // torn: never acknowledged, and nothing after it was either
        }
        result.after_checkpoint.push_back(r);
      }
      result.max_lsn = std::max(result.max_lsn, r.lsn);
      previous = r.lsn;
      offset += RoundUp(kHeaderSize + r.payload_size, kPage);
    }
  }
  std::sort(result.after_checkpoint.begin(), result.after_checkpoint.end(),
            [](const Record& a, const Record& b) { return a.lsn < b.lsn; });
  return result;
}

Result<std::string> IntakeLog::ReadPayload(const Record& record) {
  ScopedFd fd(::open(record.segment.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    return Errno("open", record.segment);
  }
  std::string payload(record.payload_size, '\0');
  FERRY_RETURN_IF_ERROR(
      PReadAll(fd.get(), payload.data(), payload.size(), record.payload_offset, record.segment));
  if (Hash(payload) != record.payload_hash) {
    return Status::Corruption(fmt::format("record {} in {} does not match its hash", record.lsn,
                                          record.segment));
  }
  return payload;
}

IntakeLog::IntakeLog(const Options& options, FileSystem* fs, uint64_t last_lsn)
    : options_(options),
      fs_(fs),
      dir_(JoinPath(options.spool_root, kIntakeDir)),
      boot_id_(options.boot_id.empty() ? CurrentBootId() : options.boot_id),
      last_lsn_(last_lsn),
      checkpoint_lsn_(last_lsn) {
  segment_bytes_ = std::clamp<uint64_t>(options.capacity_bytes / 4, kMinSegmentBytes,
                                        kMaxSegmentBytes) /
                   kPage * kPage;
  max_segments_ = std::max<size_t>(2, options.capacity_bytes / segment_bytes_);
}

Result<std::unique_ptr<IntakeLog>> IntakeLog::Open(const Options& options, FileSystem* fs,
                                                   uint64_t last_lsn) {
  std::unique_ptr<IntakeLog> log(new IntakeLog(options, fs, last_lsn));
  FERRY_RETURN_IF_ERROR(log->Start());
  return log;
}

Status IntakeLog::Start() {
  FERRY_RETURN_IF_ERROR(fs_->CreateDirs(dir_).WithContext("intake log"));
  FERRY_RETURN_IF_ERROR(fs_->SyncDir(options_.spool_root).WithContext("intake log"));
  FERRY_RETURN_IF_ERROR(LockIntakeDir(dir_, &lock_));
  FERRY_ASSIGN_OR_RETURN(auto names, fs_->ListDir(dir_));
  for (const auto& name : names) {
    if (!IsSegmentName(name)) {
      continue;
    }
    const std::string path = JoinPath(dir_, name);
    next_segment_number_ =
        std::max<uint64_t>(next_segment_number_, std::stoull(name.substr(0, name.find('.'))) + 1);
    auto size = fs_->FileSize(path);
    if (!size || *size != segment_bytes_ || free_.size() >= max_segments_) {
      FERRY_RETURN_IF_ERROR(fs_->RemoveFile(path).WithContext("intake log"));
      continue;
    }
    auto segment = std::make_shared<Segment>();
    segment->path = path;
    segment->fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (segment->fd < 0) {
      return Errno("open", path);
    }
    free_.push_back(std::move(segment));
  }
  segment_count_ = free_.size();
  if (free_.empty()) {
    // One to start with; the checkpointer prepares the next one in the background.
    FERRY_ASSIGN_OR_RETURN(auto segment, CreateSegment());
    free_.push_back(std::move(segment));
  }
  stats_.segments = segment_count_;
  current_ = free_.back();
  free_.pop_back();
  // The caller made the spool durable: nothing below last_lsn is ever needed again.
  gate_time_ = PreciseNow() - kClockSlack;
  FERRY_RETURN_IF_ERROR(WriteCheckpoint(last_lsn_, gate_time_, /*idle=*/false));
  checkpointer_ = std::thread([this] { CheckpointLoop(); });
  return Status::Ok();
}

IntakeLog::~IntakeLog() {
  {
    std::lock_guard<std::mutex> lock(wake_mu_);
    stop_ = true;
  }
  wake_cv_.notify_all();
  if (checkpointer_.joinable()) {
    checkpointer_.join();
  }
}

Result<std::shared_ptr<IntakeLog::Segment>> IntakeLog::CreateSegment() {
  uint64_t number;
  {
    std::lock_guard<std::mutex> lock(mu_);
    number = next_segment_number_++;
  }
  auto segment = std::make_shared<Segment>();
  segment->path = JoinPath(dir_, fmt::format("{:08}{}", number, kSegmentSuffix));
  segment->fd = ::open(segment->path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (segment->fd < 0) {
    return Errno("create", segment->path);
  }
  // Written, not just allocated: overwriting written blocks needs no metadata update, so a
  // record's flush is one data write and a cache flush.
  std::vector<char> zeros(1 << 20, 0);
  Status s;
  for (uint64_t offset = 0; offset < segment_bytes_ && s.ok(); offset += zeros.size()) {
    s = PWriteAll(segment->fd, zeros.data(), std::min<uint64_t>(zeros.size(), segment_bytes_ - offset),
                  offset, segment->path);
  }
  if (s.ok() && ::fdatasync(segment->fd) != 0) {
    s = Errno("fdatasync", segment->path);
  }
  if (s.ok()) {
    s = fs_->SyncDir(dir_);
  }
  if (!s.ok()) {
    fs_->RemoveFile(segment->path);
    return s.WithContext("cannot prepare an intake log segment");
  }
  std::lock_guard<std::mutex> lock(mu_);
  ++segment_count_;
  stats_.segments = segment_count_;
  return segment;
}

Result<uint64_t> IntakeLog::Append(std::string_view series_uid, std::string_view sop_uid,
                                   std::string_view context, const std::string& path) {
  if (series_uid.size() > kMaxUid || sop_uid.size() > kMaxUid) {
    return Status::InvalidArgument("UID longer than 128 bytes");
  }
  context = context.substr(0, kMaxContext);
  ScopedFd in;
  uint64_t size = 0;
  FERRY_RETURN_IF_ERROR(OpenForReading(path, &in, &size));
  if (size > max_payload()) {
    return Status::Unavailable(fmt::format("{} bytes is more than the intake log's largest record "
                                           "({} bytes)",
                                           size, max_payload()));
  }
  {
    // The router treats an idle log as no gate; it must not be idle once this instance
    // can appear in incoming/.
    std::lock_guard<std::mutex> gate(gate_mu_);
    if (idle_written_) {
      uint64_t lsn;
      {
        std::lock_guard<std::mutex> lock(mu_);
        lsn = checkpoint_lsn_;
      }
      FERRY_RETURN_IF_ERROR(WriteCheckpoint(lsn, gate_time_, /*idle=*/false));
      idle_written_ = false;
    }
  }
  const uint64_t total = RoundUp(kHeaderSize + size, kPage);
  auto buf = std::make_unique_for_overwrite<char[]>(total);
  char* h = buf.get();
  std::memset(h, 0, kHeaderSize);
  std::memset(h + kHeaderSize + size, 0, total - kHeaderSize - size);
  FERRY_RETURN_IF_ERROR(PReadAll(in.get(), h + kHeaderSize, size, 0, path));
  std::memcpy(h, kMagic, sizeof(kMagic));
  Put64(h + kOffPayloadSize, size);
  Put64(h + kOffPayloadHash, XXH3_64bits(h + kHeaderSize, size));
  std::memcpy(h + kOffBootId, boot_id_.data(), std::min(boot_id_.size(), kBootIdBytes));
  Put16(h + kOffSeriesLen, static_cast<uint16_t>(series_uid.size()));
  Put16(h + kOffSopLen, static_cast<uint16_t>(sop_uid.size()));
  std::memcpy(h + kOffSeries, series_uid.data(), series_uid.size());
  std::memcpy(h + kOffSop, sop_uid.data(), sop_uid.size());
  Put16(h + kOffContextLen, static_cast<uint16_t>(context.size()));
  std::memcpy(h + kOffContext, context.data(), context.size());

  std::shared_ptr<Segment> segment;
  uint64_t lsn = 0;
  uint64_t end = 0;
  {
    std::unique_lock<std::mutex> lock(mu_);
    const auto deadline = std::chrono::steady_clock::now() + options_.max_wait;
    bool waited = false;
    while (!(current_ && current_->write_offset + total <= segment_bytes_)) {
      if (!free_.empty()) {
        if (current_) {
          full_.push_back(std::move(current_));
        }
        current_ = free_.back();
        free_.pop_back();
        continue;
      }
      if (!waited) {
        ++stats_.full_waits;
        waited = true;
      }
      {
        std::lock_guard<std::mutex> wake(wake_mu_);
        wake_ = true;
      }
      wake_cv_.notify_all();
      if (room_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
        return Status::Unavailable(fmt::format(
            "the intake log ({} MiB) stayed full for {} ms", options_.capacity_bytes >> 20,
            options_.max_wait.count()));
      }
    }
    lsn = ++last_lsn_;
    Put64(h + kOffLsn, lsn);
    Put64(h + kOffHeaderHash, XXH3_64bits(h, kOffHeaderHash));
    segment = current_;
    const uint64_t offset = segment->write_offset;
    Status written = PWriteAll(segment->fd, h, total, offset, segment->path);
    if (!written.ok()) {
      // What the failed write left is unknown: later records go to the next segment.
      full_.push_back(std::move(current_));
      return written;
    }
    segment->write_offset = offset + total;
    segment->written_to = segment->write_offset;
    segment->max_lsn = lsn;
    end = segment->write_offset;
    in_flight_.insert(lsn);
    ++stats_.appended;
    // Half the segments in use: check-point now rather than at the next interval.
    if (free_.empty() && full_.size() + 1 >= max_segments_ / 2) {
      std::lock_guard<std::mutex> wake(wake_mu_);
      wake_ = true;
      wake_cv_.notify_all();
    }
  }
  Status synced = SyncTo(segment, end);
  if (!synced.ok()) {
    Published(lsn);
    return synced;
  }
  return lsn;
}

Status IntakeLog::SyncTo(const std::shared_ptr<Segment>& segment, uint64_t end) {
  std::unique_lock<std::mutex> lock(sync_mu_);
  while (segment->synced_to < end) {
    if (segment->syncing) {
      sync_cv_.wait(lock);
      continue;
    }
    segment->syncing = true;
    uint64_t target;
    {
      std::lock_guard<std::mutex> layout(mu_);
      target = segment->written_to;
      ++stats_.flushes;
    }
    lock.unlock();
    int rc = ::fdatasync(segment->fd);
    int err = errno;
    lock.lock();
    segment->syncing = false;
    sync_cv_.notify_all();
    if (rc != 0) {
      return Status::FromErrno(err, "fdatasync " + segment->path);
    }
    segment->synced_to = std::max(segment->synced_to, target);
  }
  return Status::Ok();
}

void IntakeLog::Published(uint64_t lsn) {
  std::lock_guard<std::mutex> lock(mu_);
  in_flight_.erase(lsn);
  gate_behind_ = true;
  last_publication_ = PreciseNow();
}

void IntakeLog::NoteDirectWrite() {
  std::lock_guard<std::mutex> lock(mu_);
  gate_behind_ = true;
  last_publication_ = PreciseNow();
}

Status IntakeLog::WriteCheckpoint(uint64_t lsn, WallTime durable_until, bool idle) {
  nlohmann::json json = {{"lsn", lsn},
                         {"durable_until_ns", ToNanos(durable_until)},
                         {"idle", idle},
                         {"boot_id", boot_id_}};
  const std::string tmp = JoinPath(dir_, std::string(kIntakeCheckpointFile) + ".tmp");
  FERRY_ASSIGN_OR_RETURN(auto file, fs_->NewWritableFile(tmp));
  FERRY_RETURN_IF_ERROR(file->Append(json.dump() + "\n"));
  FERRY_RETURN_IF_ERROR(file->Sync());
  FERRY_RETURN_IF_ERROR(file->Close());
  FERRY_RETURN_IF_ERROR(fs_->Rename(tmp, JoinPath(dir_, kIntakeCheckpointFile)));
  return fs_->SyncDir(dir_);
}

Status IntakeLog::Checkpoint() {
  std::lock_guard<std::mutex> one(checkpoint_mu_);
  // The gate time is taken before the flush it vouches for (see intake_log.h).
  const WallTime now = PreciseNow();
  const WallTime durable_until = now - kClockSlack;
  uint64_t target = 0;
  {
    std::lock_guard<std::mutex> gate(gate_mu_);
    std::lock_guard<std::mutex> lock(mu_);
    target = in_flight_.empty() ? last_lsn_ : *in_flight_.begin() - 1;
    if (target <= checkpoint_lsn_ && !gate_behind_) {
      // Every instance published so far is durable in the spool, and nothing is on its way:
      // say so, and the router stops comparing times (folders also change for other reasons,
      // such as an operator's force-complete marker).
      if (!idle_written_ && in_flight_.empty()) {
        FERRY_RETURN_IF_ERROR(WriteCheckpoint(checkpoint_lsn_, gate_time_, /*idle=*/true));
        idle_written_ = true;
      }
      return Status::Ok();
    }
    // Instances published after `durable_until` need another checkpoint.
    gate_behind_ = !in_flight_.empty() || last_publication_ >= durable_until;
  }
  Status s = fs_->SyncFileSystem(options_.spool_root);
  if (s.ok()) {
    std::lock_guard<std::mutex> gate(gate_mu_);
    s = WriteCheckpoint(target, durable_until, /*idle=*/false);
    if (s.ok()) {
      gate_time_ = durable_until;
      idle_written_ = false;
    }
  }
  if (!s.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    gate_behind_ = true;
    return s.WithContext("intake log checkpoint");
  }
  std::vector<std::shared_ptr<Segment>> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    checkpoint_lsn_ = std::max(checkpoint_lsn_, target);
    ++stats_.checkpoints;
    for (auto it = full_.begin(); it != full_.end();) {
      if ((*it)->max_lsn <= checkpoint_lsn_) {
        done.push_back(std::move(*it));
        it = full_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (!done.empty()) {
    {
      std::lock_guard<std::mutex> lock(sync_mu_);
      for (auto& segment : done) {
        segment->synced_to = 0;
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& segment : done) {
      segment->write_offset = 0;
      segment->written_to = 0;
      segment->max_lsn = 0;
      free_.push_back(std::move(segment));
    }
  }
  room_cv_.notify_all();
  return Status::Ok();
}

void IntakeLog::CheckpointLoop() {
  auto log = Logger("intake");
  auto last_error_log = std::chrono::steady_clock::time_point();
  for (bool stopping = false; !stopping;) {
    {
      std::unique_lock<std::mutex> lock(wake_mu_);
      wake_cv_.wait_for(lock, options_.checkpoint_interval, [&] { return wake_ || stop_; });
      wake_ = false;
      stopping = stop_;
    }
    if (stopping && !options_.checkpoint_on_close) {
      break;
    }
    Status s = Checkpoint();
    bool want_segment = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      want_segment = !stopping && free_.empty() && segment_count_ < max_segments_;
    }
    if (s.ok() && want_segment) {
      auto segment = CreateSegment();
      if (segment) {
        std::lock_guard<std::mutex> lock(mu_);
        free_.push_back(std::move(segment).value());
        room_cv_.notify_all();
      } else {
        s = segment.error();
      }
    }
    if (!s.ok()) {
      auto now = std::chrono::steady_clock::now();
      if (now - last_error_log > std::chrono::minutes(1)) {
        last_error_log = now;
        log->error("{}; received instances are still acknowledged only once durable (the "
                   "receiver flushes them itself while the log is full)",
                   s.ToString());
      }
    }
  }
}

IntakeLog::Stats IntakeLog::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace ferry
