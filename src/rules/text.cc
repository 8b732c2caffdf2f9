#include "rules/text.h"

namespace ferry::rules {

bool IsAscii(std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) {
      return false;
    }
  }
  return true;
}

char32_t DecodeCodePoint(std::string_view s, size_t* pos) {
  size_t i = *pos;
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) {
    *pos = i + 1;
    return c;
  }
  int extra = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if ((c & 0xE0) == 0xC0) {
    extra = 1;
    cp = c & 0x1F;
    min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    extra = 2;
    cp = c & 0x0F;
    min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    extra = 3;
    cp = c & 0x07;
    min = 0x10000;
  } else {
    *pos = i + 1;
    return 0xDC00 + c;  // a stray byte stands for itself
  }
  if (i + extra >= s.size()) {
    *pos = i + 1;
    return 0xDC00 + c;
  }
  for (int k = 1; k <= extra; ++k) {
    unsigned char cc = byte(i + k);
    if ((cc & 0xC0) != 0x80) {
      *pos = i + 1;
      return 0xDC00 + c;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    *pos = i + 1;
    return 0xDC00 + c;
  }
  *pos = i + 1 + extra;
  return cp;
}

void AppendCodePoint(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp >= 0xDC80 && cp <= 0xDCFF) {
    out->push_back(static_cast<char>(cp - 0xDC00));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::vector<char32_t> ToCodePoints(std::string_view s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    out.push_back(DecodeCodePoint(s, &pos));
  }
  return out;
}

std::string FromCodePoints(const std::vector<char32_t>& cps, size_t begin, size_t end) {
  std::string out;
  out.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) {
    AppendCodePoint(cps[i], &out);
  }
  return out;
}

size_t CodePointCount(std::string_view s) {
  size_t n = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    if (static_cast<unsigned char>(s[pos]) < 0x80) {
      ++pos;
    } else {
      DecodeCodePoint(s, &pos);
    }
    ++n;
  }
  return n;
}

size_t ByteOffsetOfCodePoint(std::string_view s, size_t index) {
  size_t pos = 0;
  for (size_t i = 0; i < index && pos < s.size(); ++i) {
    DecodeCodePoint(s, &pos);
  }
  return pos;
}

size_t CodePointIndexOfByte(std::string_view s, size_t offset) {
  size_t n = 0;
  size_t pos = 0;
  while (pos < offset && pos < s.size()) {
    DecodeCodePoint(s, &pos);
    ++n;
  }
  return n;
}

namespace {

// Latin Extended-A: pairs (upper, lower) at even/odd or odd/even code points.
bool LatinExtAUpperEven(char32_t cp) {
  return (cp >= 0x100 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177);
}
bool LatinExtAUpperOdd(char32_t cp) {
  return (cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E);
}

}  // namespace

char32_t ToLowerChar(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  }
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) {
    return cp + 0x20;
  }
  if (cp == 0x178) {
    return 0xFF;
  }
  if (LatinExtAUpperEven(cp)) {
    return (cp % 2 == 0) ? cp + 1 : cp;
  }
  if (LatinExtAUpperOdd(cp)) {
    return (cp % 2 == 1) ? cp + 1 : cp;
  }
  if (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) {
    return cp + 0x20;
  }
  if (cp == 0x386) {
    return 0x3AC;
  }
  if (cp >= 0x388 && cp <= 0x38A) {
    return cp + 0x25;
  }
  if (cp == 0x38C) {
    return 0x3CC;
  }
  if (cp == 0x38E || cp == 0x38F) {
    return cp + 0x3F;
  }
  if (cp >= 0x410 && cp <= 0x42F) {
    return cp + 0x20;
  }
  if (cp >= 0x400 && cp <= 0x40F) {
    return cp + 0x50;
  }
  if (cp >= 0xFF21 && cp <= 0xFF3A) {
    return cp + 0x20;
  }
  return cp;
}

char32_t ToUpperChar(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
  }
  if (cp >= 0xE0 && cp <= 0xFE && cp != 0xF7) {
    return cp - 0x20;
  }
  if (cp == 0xFF) {
    return 0x178;
  }
  if (cp == 0xB5) {
    return 0x39C;
  }
  if (LatinExtAUpperEven(cp)) {
    return (cp % 2 == 1) ? cp - 1 : cp;
  }
  if (LatinExtAUpperOdd(cp)) {
    return (cp % 2 == 0) ? cp - 1 : cp;
  }
  if (cp >= 0x3B1 && cp <= 0x3CB && cp != 0x3C2) {
    return cp - 0x20;
  }
  if (cp == 0x3C2) {
    return 0x3A3;
  }
  if (cp == 0x3AC) {
    return 0x386;
  }
  if (cp >= 0x3AD && cp <= 0x3AF) {
    return cp - 0x25;
  }
  if (cp == 0x3CC) {
    return 0x38C;
  }
  if (cp == 0x3CD || cp == 0x3CE) {
    return cp - 0x3F;
  }
  if (cp >= 0x430 && cp <= 0x44F) {
    return cp - 0x20;
  }
  if (cp >= 0x450 && cp <= 0x45F) {
    return cp - 0x50;
  }
  if (cp >= 0xFF41 && cp <= 0xFF5A) {
    return cp - 0x20;
  }
  return cp;
}

bool IsCased(char32_t cp) { return ToLowerChar(cp) != cp || ToUpperChar(cp) != cp || cp == 0xDF; }

bool IsAlphaChar(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  }
  if (IsCased(cp)) {
    return true;
  }
  return cp == 0xAA || cp == 0xBA || (cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7) ||
         (cp >= 0x388 && cp <= 0x3FF && cp != 0x3F6) || (cp >= 0x400 && cp <= 0x481) ||
         (cp >= 0x48A && cp <= 0x52F) || (cp >= 0x5D0 && cp <= 0x5EA) ||
         (cp >= 0x620 && cp <= 0x64A) || (cp >= 0x3041 && cp <= 0x3096) ||
         (cp >= 0x30A1 && cp <= 0x30FA) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
         (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xFF66 && cp <= 0xFF9D);
}

bool IsDigitChar(char32_t cp) { return cp >= '0' && cp <= '9'; }

bool IsSpaceChar(char32_t cp) {
  return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F) || cp == 0x85 ||
         cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

namespace {

template <typename Map>
std::string MapCase(std::string_view s, Map map) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[pos]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(map(c)));
      ++pos;
    } else {
      AppendCodePoint(map(DecodeCodePoint(s, &pos)), &out);
    }
  }
  return out;
}

}  // namespace

std::string ToLower(std::string_view s) { return MapCase(s, ToLowerChar); }
std::string ToUpper(std::string_view s) { return MapCase(s, ToUpperChar); }

}  // namespace ferry::rules
