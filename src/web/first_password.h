// The first-start password flag. When `ferry web` creates the `admin` account with a random
// password (the users table was empty), it leaves the marker <data>/run/generated-password
// naming that user; login and GET /api/v1/session then answer "must_change_password": true for
// it, and the web UI asks for a new password before anything else. Setting the user's password
// (PUT /api/v1/users/{name}) removes the marker. The API itself does not refuse other calls to
// that user: scripts that use the logged password keep working.
// Thread-safety: reentrant; the marker is published atomically (write temp, rename).
#pragma once

#include <string>

#include "core/status.h"

namespace ferry::web {

// <data>/run/generated-password.
std::string GeneratedPasswordMarker(const std::string& data_folder);

// Records that `user`'s password was generated and logged. Errors: the file could not be written.
Status MarkGeneratedPassword(const std::string& data_folder, const std::string& user);

// True while `user` still has the generated password.
bool MustChangePassword(const std::string& data_folder, const std::string& user);

// Forgets the marker when it names `user` (their password was set).
void ClearGeneratedPassword(const std::string& data_folder, const std::string& user);

}  // namespace ferry::web
