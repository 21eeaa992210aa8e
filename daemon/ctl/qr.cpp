#include "daemon/ctl/qr.hpp"

#include <qrencode.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace pwresetd::ctl {

namespace {

struct qrcode_free {
    void operator()(QRcode* code) const noexcept { QRcode_free(code); }
};

constexpr int quiet_zone = 2;

}  // namespace

std::string terminal_qr(std::string_view text, bool ansi_colors) {
    const std::string data(text);
    const std::unique_ptr<QRcode, qrcode_free> code(
        QRcode_encodeString8bit(data.c_str(), 0, QR_ECLEVEL_M));
    if (!code) {
        throw std::runtime_error("the text does not fit a QR code");
    }
    const int width = code->width;
    const int size = width + 2 * quiet_zone;
    // Light modules (the quiet zone too) are drawn: a scanner wants dark on light.
    const auto light = [&](int x, int y) {
        x -= quiet_zone;
        y -= quiet_zone;
        if (x < 0 || y < 0 || x >= width || y >= width) {
            return true;
        }
        return (code->data[static_cast<std::size_t>(y) * static_cast<std::size_t>(width) +
                           static_cast<std::size_t>(x)] &
                1U) == 0;
    };
    std::string out;
    for (int y = 0; y < size; y += 2) {
        if (ansi_colors) {
            out += "\x1b[40;97m";  // black background, bright white foreground
        }
        for (int x = 0; x < size; ++x) {
            const bool top = light(x, y);
            const bool bottom = y + 1 < size ? light(x, y + 1) : false;
            out += top && bottom ? "\u2588" : top ? "\u2580" : bottom ? "\u2584" : " ";
        }
        if (ansi_colors) {
            out += "\x1b[0m";
        }
        out += '\n';
    }
    return out;
}

}  // namespace pwresetd::ctl
