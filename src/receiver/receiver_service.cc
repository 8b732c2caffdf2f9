#include "receiver/receiver_service.h"

#include <algorithm>

#include <signal.h>

#include <thread>

#include "core/logging.h"
#include "receiver/intake_recovery.h"
#include "receiver/receiver.h"
#include "spool/intake_log.h"
#include "spool/service_lock.h"

namespace ferry {
namespace {

dicom::ScpOptions ToScpOptions(const ReceiverOptions& r) {
  dicom::ScpOptions o;
  o.port = r.port;
  o.accept_any_sop_class = r.accept_any_sop_class;
  o.max_associations = r.max_associations;
  o.max_associations_per_peer = std::min(r.max_associations_per_peer, r.max_associations);
  o.max_pdu = r.max_pdu;
  o.network_timeout_s = r.network_timeout_s;
  o.dimse_timeout_s = r.dimse_timeout_s;
  o.tls.enabled = r.tls.enabled;
  o.tls.key_file = r.tls.key_file;
  o.tls.certificate_file = r.tls.certificate_file;
  o.tls.ca_file = r.tls.ca_file;
  o.tls.require_peer_certificate = r.tls.require_peer_certificate;
  return o;
}

}  // namespace

int RunReceiverService(const Config& config) {
  auto log = Logger("receiver");
  // Signals are taken by a dedicated thread; every other thread blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  FileSystem* fs = DefaultFileSystem();
  Spool spool(config.data_folder, "receiver", fs);
  Status s = spool.Init();
  if (!s.ok()) {
    log->error("cannot prepare the data folder {}: {}", config.data_folder, s.ToString());
    return 1;
  }
  // One receiver per data folder: a second one would do the same work twice.
  auto owner = ServiceLock::Acquire(config.data_folder, "receiver");
  if (!owner) {
    log->error("{}", owner.error().message());
    return 1;
  }
  auto journal = Journal::Open(spool.StagePath(kJournal), "receiver", RealClock(), fs);
  if (!journal) {
    log->error("{}", journal.error().ToString());
    return 1;
  }
  auto recovered = spool.RecoverIncoming();
  if (!recovered) {
    log->error("cannot recover the spool in {}: {}", config.data_folder,
               recovered.error().ToString());
    return 1;
  }
  if (*recovered > 0) {
    log->info("recovered the spool: {} associations of a previous run marked as ended",
              *recovered);
  }

  // A log left by an earlier run is honoured whatever the durability is now.
  auto intake_recovery = RecoverIntakeLog(&spool, journal->get(), CurrentBootId());
  if (!intake_recovery) {
    log->error("cannot recover the intake log in {}: {}; the receiver does not start, so that "
               "no logged instance is lost (check the disk, then restart)",
               JoinPath(config.data_folder, kIntakeDir), intake_recovery.error().ToString());
    return 1;
  }
  Receiver receiver(config.receiver, &spool, journal->get(), RealClock());
  std::unique_ptr<IntakeLog> intake;
  const ReceiverOptions& r = config.receiver;
  if (r.durability == DurabilityMode::kFsync && r.intake_log_mb > 0) {
    IntakeLog::Options o;
    o.spool_root = config.data_folder;
    o.capacity_bytes = r.intake_log_mb << 20;
    auto opened = IntakeLog::Open(o, fs, intake_recovery->last_lsn);
    if (opened) {
      intake = std::move(opened).value();
      receiver.UseIntakeLog(intake.get());
    } else if (opened.error().code() == Status::Code::kFailedPrecondition) {
      log->error("{}", opened.error().ToString());
      return 1;
    } else {
      log->error("cannot prepare the intake log: {}; each instance is flushed by itself "
                 "instead (slower, just as safe)",
                 opened.error().ToString());
    }
  }
  if (!intake) {
    // No log: the router must not wait for its checkpoints.
    s = RemoveUnusedIntakeLog(fs, config.data_folder);
    if (!s.ok()) {
      log->error("cannot remove the unused intake log in {}: {}", config.data_folder,
                 s.ToString());
      return 1;
    }
  }
  dicom::StorageScp scp(ToScpOptions(config.receiver), &receiver);
  s = scp.Start();
  if (!s.ok()) {
    log->error("{}", s.ToString());
    (*journal)->Append({"service.failed", "", "", {{"reason", s.ToString()}}});
    return 1;
  }
  log->info("listening for DICOM on port {} as AE {} (TLS {}, durability {}, up to {} "
            "associations); data folder {}",
            r.port, r.ae_title, r.tls.enabled ? "on" : "off",
            r.durability == DurabilityMode::kOs ? "os"
            : intake                            ? "fsync, intake log"
                                                : "fsync",
            r.max_associations, config.data_folder);
  (*journal)->Append({"service.started", "", "",
                      {{"port", r.port}, {"ae_title", r.ae_title}, {"tls", r.tls.enabled}}});

  int received_signal = 0;
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    received_signal = sig;
    scp.Stop();
  });

  scp.Run();
  waiter.join();

  log->info("received {}; no new associations are accepted, waiting up to {} s for {} in-flight "
            "association(s)",
            received_signal == SIGINT ? "SIGINT" : "SIGTERM", r.shutdown_grace_s,
            scp.active_associations());
  bool idle = scp.WaitIdle(std::chrono::seconds(r.shutdown_grace_s));
  if (!idle) {
    log->warn("{} association(s) still active after {} s; aborting them",
              scp.active_associations(), r.shutdown_grace_s);
    scp.AbortAll();
    idle = scp.WaitIdle(std::chrono::seconds(5));
  }
  const ReceiverCounters& c = receiver.counters();
  nlohmann::json stopped = {{"instances_stored", c.instances_stored.load()},
                            {"instances_rejected", c.instances_rejected.load()},
                            {"associations", c.associations.load()},
                            {"clean", idle}};
  if (intake) {
    IntakeLog::Stats st = intake->stats();
    stopped["intake_log"] = {{"appended", st.appended},
                             {"flushes", st.flushes},
                             {"checkpoints", st.checkpoints},
                             {"segments", st.segments},
                             {"full_waits", st.full_waits}};
    log->info("intake log: {} instances in {} flushes, {} checkpoints, {} segments, waited for "
              "room {} times",
              st.appended, st.flushes, st.checkpoints, st.segments, st.full_waits);
  }
  (*journal)->Append({"service.stopped", "", "", std::move(stopped)});
  log->info("receiver stopped: {} instances stored, {} rejected in {} associations", 
            c.instances_stored.load(), c.instances_rejected.load(), c.associations.load());
  if (!idle) {
    // Threads stuck in a blocking receive: leave without waiting. Their partial files are in
    // tmp/receiver and are removed at the next start; nothing was acknowledged for them.
    std::fflush(nullptr);
    _exit(0);
  }
  return 0;
}

}  // namespace ferry
