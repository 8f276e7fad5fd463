// The pen's MicroPython board: ESP32-S3, no REPL on any port (a production image).
// Prepared, not built here: docs/security.md. Based on ports/esp32/boards/ESP32_GENERIC_S3.
#define MICROPY_HW_BOARD_NAME               "ScalpPen S3"
#define MICROPY_HW_MCU_NAME                 "ESP32-S3"

// No REPL: neither on the UART (ports/esp32/mpconfigport.h MICROPY_HW_ENABLE_UART_REPL),
// nor on native USB (MICROPY_HW_USB_CDC follows MICROPY_HW_ENABLE_USBDEV), nor on the
// USB Serial/JTAG controller (MICROPY_HW_ESP_USB_SERIAL_JTAG).
#define MICROPY_HW_ENABLE_UART_REPL         (0)
#define MICROPY_HW_ENABLE_USBDEV            (0)
#define MICROPY_HW_ESP_USB_SERIAL_JTAG      (0)
