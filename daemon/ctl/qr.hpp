#pragma once
// A QR code for the terminal (libqrencode), two module rows per text line with the UTF-8
// half blocks, for an authenticator app to scan the otpauth URI from the screen.
#include <string>
#include <string_view>

namespace pwresetd::ctl {

// The code for `text` (error correction M) with a quiet zone of 2 modules, one string of
// lines. `ansi_colors`: light modules as white on black, right on any terminal theme;
// without, light modules are the blocks (right on a dark terminal). Throws
// std::runtime_error when the text does not fit a QR code.
std::string terminal_qr(std::string_view text, bool ansi_colors);

}  // namespace pwresetd::ctl
