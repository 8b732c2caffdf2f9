#include "app/user_cli.h"

#include <fmt/format.h>
#include <pwd.h>
#include <termios.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "db/schema.h"
#include "journal/journal.h"
#include "spool/spool.h"
#include "web/auth.h"

namespace ferry {
namespace {

std::string StripNewline(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) {
    s.pop_back();
  }
  return s;
}

std::string PromptHidden(const std::string& prompt) {
  std::cerr << prompt << std::flush;
  termios old{};
  bool restore = tcgetattr(STDIN_FILENO, &old) == 0;
  if (restore) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  std::getline(std::cin, line);
  if (restore) {
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
  }
  std::cerr << "\n";
  return StripNewline(line);
}

// The new password: from --password-file, from stdin when it is not a terminal, or asked twice.
Result<std::string> ReadNewPassword(const std::string& file) {
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      return Status::NotFound(fmt::format("cannot read the password file {}", file));
    }
    std::stringstream buf;
    buf << in.rdbuf();
    return StripNewline(buf.str());
  }
  if (!isatty(STDIN_FILENO)) {
    std::string line;
    std::getline(std::cin, line);
    return StripNewline(line);
  }
  std::string first = PromptHidden("new password: ");
  std::string second = PromptHidden("repeat the password: ");
  if (first != second) {
    return Status::InvalidArgument("the two passwords differ; nothing was changed");
  }
  return first;
}

std::string UnixUser() {
  passwd* pw = getpwuid(geteuid());
  return pw != nullptr ? pw->pw_name : std::to_string(geteuid());
}

std::string Iso(int64_t us) {
  return us == 0 ? "-" : FormatIso8601(WallTime(std::chrono::microseconds(us)));
}

class UserCliImpl final : public UserCli {
 public:
  UserCliImpl(CLI::App* app, const std::function<void(CLI::App*)>& add_common) {
    cmd_ = app->add_subcommand("user", "manage web accounts and API tokens");
    cmd_->require_subcommand(1);
    add_common(cmd_);
    add_ = cmd_->add_subcommand("add", "create an account");
    add_common(add_);
    add_->add_option("name", name_, "user name")->required();
    add_->add_option("--role", role_, "admin, operator or viewer")->required();
    add_->add_option("--password-file", password_file_,
                     "read the password from this file (else stdin, or asked twice)");
    passwd_ = cmd_->add_subcommand("passwd", "set an account's password");
    add_common(passwd_);
    passwd_->add_option("name", name_, "user name")->required();
    passwd_->add_option("--password-file", password_file_,
                        "read the password from this file (else stdin, or asked twice)");
    list_ = cmd_->add_subcommand("list", "list the accounts");
    add_common(list_);
    delete_ = cmd_->add_subcommand("delete", "delete an account and its API tokens");
    add_common(delete_);
    delete_->add_option("name", name_, "user name")->required();
    token_ = cmd_->add_subcommand("token", "create an API token for a user (printed once)");
    add_common(token_);
    token_->add_option("name", name_, "user name")->required();
    token_->add_option("--name", token_name_, "what the token is for, e.g. \"monitoring\"")
        ->required();
  }

  bool parsed() const override { return cmd_->parsed(); }

  int Run(const Config& config) override {
    std::string uri = DatabaseUri(config);
    auto db = db::Database::Open(uri);
    if (!db) {
      std::cerr << "ferry: cannot open the database " << db::RedactUri(uri) << ": "
                << db.error().message() << "\n";
      return 1;
    }
    auto migrated = db::Migrate(db->get());
    if (!migrated) {
      std::cerr << "ferry: cannot prepare the database " << db::RedactUri(uri) << ": "
                << migrated.error().message() << "\n";
      return 1;
    }
    db_ = db->get();
    actor_ = "cli:" + UnixUser();
    if (!list_->parsed()) {
      auto journal = Journal::Open(config.data_folder + "/" + std::string(kJournal), "cli",
                                   RealClock(), DefaultFileSystem());
      if (!journal) {
        std::cerr << "ferry: cannot open the journal for the audit trail: "
                  << journal.error().message() << "\n";
        return 1;
      }
      journal_ = std::move(*journal);
    }
    Status s;
    if (add_->parsed()) {
      s = Add();
    } else if (passwd_->parsed()) {
      s = Passwd();
    } else if (list_->parsed()) {
      s = List();
    } else if (delete_->parsed()) {
      s = Delete();
    } else if (token_->parsed()) {
      s = Token();
    }
    if (!s.ok()) {
      std::cerr << "ferry: " << s.message() << "\n";
      return 1;
    }
    return 0;
  }

 private:
  Status Add() {
    FERRY_ASSIGN_OR_RETURN(web::Role role, web::ParseRole(role_));
    FERRY_ASSIGN_OR_RETURN(std::string password, ReadNewPassword(password_file_));
    FERRY_RETURN_IF_ERROR(web::CreateUser(db_, RealClock(), name_, role, password));
    web::Audit(journal_.get(), "user.created", actor_, "local", name_,
               {{"role", web::RoleName(role)}});
    std::cerr << "created user " << name_ << " with role " << web::RoleName(role) << "\n";
    return Status::Ok();
  }

  Status Passwd() {
    FERRY_RETURN_IF_ERROR(web::GetUser(db_, name_).status());
    FERRY_ASSIGN_OR_RETURN(std::string password, ReadNewPassword(password_file_));
    FERRY_RETURN_IF_ERROR(web::SetPassword(db_, RealClock(), name_, password));
    web::Audit(journal_.get(), "user.updated", actor_, "local", name_,
               {{"changes", {{"password", "changed"}}}});
    std::cerr << "changed the password of " << name_
              << " (sessions of a running web service stay valid until they end)\n";
    return Status::Ok();
  }

  Status List() {
    FERRY_ASSIGN_OR_RETURN(auto users, web::ListUsers(db_));
    std::cout << fmt::format("{:<24} {:<9} {:<9} {}\n", "USER", "ROLE", "STATE", "CREATED");
    for (const auto& u : users) {
      std::cout << fmt::format("{:<24} {:<9} {:<9} {}\n", u.username, web::RoleName(u.role),
                               u.disabled ? "disabled" : "enabled", Iso(u.created_us));
    }
    return Status::Ok();
  }

  Status Delete() {
    FERRY_RETURN_IF_ERROR(web::DeleteUser(db_, name_));
    web::Audit(journal_.get(), "user.deleted", actor_, "local", name_);
    std::cerr << "deleted user " << name_ << " and their API tokens\n";
    return Status::Ok();
  }

  Status Token() {
    web::TokenRecord record;
    FERRY_ASSIGN_OR_RETURN(std::string token,
                           web::CreateToken(db_, RealClock(), name_, token_name_, &record));
    web::Audit(journal_.get(), "token.created", actor_, "local", name_,
               {{"token_id", record.id}, {"name", record.name}});
    std::cout << token << "\n";
    std::cerr << "created API token " << record.id << " (\"" << token_name_ << "\") for " << name_
              << "; it is shown only now. Send it as \"Authorization: Bearer <token>\"\n";
    return Status::Ok();
  }

  CLI::App* cmd_;
  CLI::App* add_;
  CLI::App* passwd_;
  CLI::App* list_;
  CLI::App* delete_;
  CLI::App* token_;
  std::string name_;
  std::string role_;
  std::string password_file_;
  std::string token_name_;
  db::Database* db_ = nullptr;
  std::unique_ptr<Journal> journal_;
  std::string actor_;
};

}  // namespace

std::unique_ptr<UserCli> AddUserCli(CLI::App* app,
                                    const std::function<void(CLI::App*)>& add_common) {
  return std::make_unique<UserCliImpl>(app, add_common);
}

}  // namespace ferry
