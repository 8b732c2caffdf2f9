#include "notify/delivery.h"

#include <gtest/gtest.h>

#include "testing/fake_clock.h"

namespace ferry::notify {
namespace {

Notification Mail(std::string subject, std::string body, std::string to = "ops@example.org") {
  Notification n;
  n.id = "0123456789abcdef";
  n.channel = Channel::kEmail;
  n.destination = std::move(to);
  n.subject = std::move(subject);
  n.body = std::move(body);
  n.content_type = "text/html";
  return n;
}

TEST(EmailMessage, HeadersAndBase64Body) {
  FakeClock clock;
  std::string m = BuildEmailMessage(Mail("[ferry] Rule r: RECEIVED", "Hello"), "ferry@example.org",
                                    clock.Now());
  EXPECT_NE(m.find("From: <ferry@example.org>\r\n"), std::string::npos);
  EXPECT_NE(m.find("To: <ops@example.org>\r\n"), std::string::npos);
  EXPECT_NE(m.find("Subject: [ferry] Rule r: RECEIVED\r\n"), std::string::npos);
  EXPECT_NE(m.find("Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"), std::string::npos);
  EXPECT_NE(m.find("Message-ID: <0123456789abcdef@example.org>\r\n"), std::string::npos);
  EXPECT_NE(m.find("Content-Type: text/html; charset=utf-8\r\n"), std::string::npos);
  EXPECT_NE(m.find("\r\n\r\nSGVsbG8=\r\n"), std::string::npos);  // base64("Hello")
}

TEST(EmailMessage, NonAsciiSubjectIsEncodedAndLinesAreShort) {
  FakeClock clock;
  std::string m = BuildEmailMessage(Mail("Régle ü", std::string(200, 'x')), "f@x", clock.Now());
  EXPECT_NE(m.find("Subject: =?UTF-8?B?UsOpZ2xlIMO8?=\r\n"), std::string::npos);
  size_t body = m.find("\r\n\r\n") + 4;
  for (size_t pos = body; pos < m.size();) {
    size_t end = m.find("\r\n", pos);
    ASSERT_NE(end, std::string::npos);
    EXPECT_LE(end - pos, 76u);
    pos = end + 2;
  }
}

TEST(EmailMessage, NoHeaderInjection) {
  FakeClock clock;
  std::string m = BuildEmailMessage(Mail("a\r\nBcc: evil@x", "b", "ops@x>\r\nBcc: <evil@x"), "f@x",
                                    clock.Now());
  EXPECT_EQ(m.find("\r\nBcc:"), std::string::npos);
}

}  // namespace
}  // namespace ferry::notify
