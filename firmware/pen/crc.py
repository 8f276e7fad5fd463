# Checksums shared by the link layer (serial framing) and the cartridge record.
# Bitwise: small code, no tables in RAM.


def crc16(data, crc=0xFFFF):
    # CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF).
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            if crc & 0x8000:
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF
            else:
                crc = (crc << 1) & 0xFFFF
    return crc


def crc8(data):
    # Dallas/Maxim 1-Wire CRC-8 (reflected poly 0x8C), as onewire.crc8 computes.
    crc = 0
    for b in data:
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc
