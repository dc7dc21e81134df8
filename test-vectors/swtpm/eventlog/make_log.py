#!/usr/bin/env python3
"""Build a small synthetic TCG PC Client crypto-agile firmware event log.

Standard library only. Writes, next to this script (or into the directory
given as the first argument):

  synthetic.bin        the binary event log (little-endian, crypto-agile)
  extends.txt          one line per measured event: "pcr sha1hex sha256hex"
                       (the EV_NO_ACTION Spec ID header is skipped)
  expected-pcrs.json   PCR values after replaying every event, both banks,
                       all 24 PCRs (initial value zero, except 17..22 = all FF)

Everything is deterministic: running it twice gives byte-identical files.

Layout (TCG PC Client Platform Firmware Profile, "crypto agile" log):
  1. TCG_PCClientPCREvent (SHA-1 format) with EV_NO_ACTION carrying
     TCG_EfiSpecIDEvent "Spec ID Event03" (sha1 + sha256 declared).
  2. TCG_PCR_EVENT2 records:
       u32 pcrIndex, u32 eventType,
       TPML_DIGEST_VALUES (u32 count, count x (u16 algId, digest)),
       u32 eventSize, event data.
"""

import hashlib
import json
import os
import struct
import sys
import uuid

# --- constants ---------------------------------------------------------------

TPM_ALG_SHA1 = 0x0004
TPM_ALG_SHA256 = 0x000B

EV_PREBOOT_CERT = 0x0
EV_POST_CODE = 0x1
EV_NO_ACTION = 0x3
EV_SEPARATOR = 0x4
EV_S_CRTM_VERSION = 0x8
EV_IPL = 0xD
EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
EV_EFI_ACTION = 0x80000007
EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008

EVENT_NAMES = {
    EV_NO_ACTION: "EV_NO_ACTION",
    EV_SEPARATOR: "EV_SEPARATOR",
    EV_S_CRTM_VERSION: "EV_S_CRTM_VERSION",
    EV_IPL: "EV_IPL",
    EV_EFI_VARIABLE_DRIVER_CONFIG: "EV_EFI_VARIABLE_DRIVER_CONFIG",
    EV_EFI_BOOT_SERVICES_APPLICATION: "EV_EFI_BOOT_SERVICES_APPLICATION",
    EV_EFI_ACTION: "EV_EFI_ACTION",
    EV_EFI_PLATFORM_FIRMWARE_BLOB: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
}

EFI_GLOBAL_VARIABLE = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
EFI_IMAGE_SECURITY_DATABASE_GUID = uuid.UUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
EFI_CERT_SHA256_GUID = uuid.UUID("c1c41626-504c-4092-aca9-41f936934328")
# Fixed, made-up GUIDs (deterministic).
SIGNATURE_OWNER_GUID = uuid.UUID("77fa9abd-0359-4d32-bd60-28f4e78f784b")  # Microsoft's owner GUID
PARTITION_GUID = uuid.UUID("5b2c6c3e-8f0d-4f6a-9a51-1e3d2c4b5a69")

BANKS = (("sha1", TPM_ALG_SHA1, 20), ("sha256", TPM_ALG_SHA256, 32))


def guid(u):
    """EFI_GUID in its in-memory (mixed-endian) byte form."""
    return u.bytes_le


def utf16(s):
    return s.encode("utf-16-le")


def digests_of(data):
    return {name: hashlib.new(name, data).digest() for name, _, _ in BANKS}


# --- event data builders -----------------------------------------------------


def uefi_variable_data(var_guid, name, data):
    """UEFI_VARIABLE_DATA: GUID, u64 UnicodeNameLength (chars),
    u64 VariableDataLength, UnicodeName (no NUL), VariableData."""
    return (
        guid(var_guid)
        + struct.pack("<QQ", len(name), len(data))
        + utf16(name)
        + data
    )


def efi_signature_list_sha256(owner, hashes):
    """EFI_SIGNATURE_LIST of EFI_CERT_SHA256_GUID entries."""
    sig_size = 16 + 32
    header_size = 0
    list_size = 16 + 4 + 4 + 4 + header_size + sig_size * len(hashes)
    out = guid(EFI_CERT_SHA256_GUID) + struct.pack(
        "<III", list_size, header_size, sig_size
    )
    for h in hashes:
        assert len(h) == 32
        out += guid(owner) + h
    assert len(out) == list_size
    return out


def device_path_hd_file(path):
    """HD(1,GPT,<guid>,0x800,0x100000)/\\EFI\\BOOT\\BOOTX64.EFI + end node."""
    hd = struct.pack(
        "<BBH I QQ 16s BB",
        0x04,  # MEDIA_DEVICE_PATH
        0x01,  # MEDIA_HARDDRIVE_DP
        42,
        1,  # PartitionNumber
        0x800,  # PartitionStart (LBA)
        0x100000,  # PartitionSize (LBA)
        guid(PARTITION_GUID),  # PartitionSignature
        0x02,  # MBRType: GPT
        0x02,  # SignatureType: GUID
    )
    assert len(hd) == 42
    name = utf16(path + "\0")
    fp = struct.pack("<BBH", 0x04, 0x04, 4 + len(name)) + name  # MEDIA_FILEPATH_DP
    end = bytes([0x7F, 0xFF, 0x04, 0x00])
    return hd + fp + end


def uefi_image_load_event(location, length, link_addr, devpath):
    return struct.pack("<QQQQ", location, length, link_addr, len(devpath)) + devpath


# --- log encoding --------------------------------------------------------------


def spec_id_event():
    data = b"Spec ID Event03\0"
    data += struct.pack("<I", 0)  # platformClass (client)
    data += struct.pack("<BBBB", 0, 2, 2, 2)  # specVersionMinor, Major, errata, uintnSize (2 = UINT64)
    data += struct.pack("<I", len(BANKS))
    for _, alg, size in BANKS:
        data += struct.pack("<HH", alg, size)
    data += struct.pack("<B", 0)  # vendorInfoSize
    # TCG_PCClientPCREvent: pcrIndex, eventType, SHA1 digest (zero), eventDataSize, event
    return struct.pack("<II", 0, EV_NO_ACTION) + b"\0" * 20 + struct.pack("<I", len(data)) + data


def pcr_event2(pcr, etype, data, digests):
    out = struct.pack("<II", pcr, etype)
    out += struct.pack("<I", len(BANKS))
    for name, alg, size in BANKS:
        d = digests[name]
        assert len(d) == size
        out += struct.pack("<H", alg) + d
    out += struct.pack("<I", len(data)) + data
    return out


def build_events():
    """Return a list of (pcr, event_type, data, digests, description)."""
    ev = []

    def add(pcr, etype, data, digests=None, desc=""):
        ev.append((pcr, etype, data, digests or digests_of(data), desc))

    # PCR0: S-CRTM version, UTF-16LE "1.0\0"
    add(0, EV_S_CRTM_VERSION, utf16("1.0\0"), desc="S-CRTM version 1.0")

    # PCR0: firmware volume; digest is over the (fake) firmware bytes, not the event data.
    fw_bytes = b"trustpool synthetic platform firmware volume\n" * 64
    add(
        0,
        EV_EFI_PLATFORM_FIRMWARE_BLOB,
        struct.pack("<QQ", 0x820000, 0xE0000),
        digests_of(fw_bytes),
        "UEFI_PLATFORM_FIRMWARE_BLOB base=0x820000 len=0xE0000",
    )

    # PCR7: Secure Boot configuration.
    add(7, EV_EFI_VARIABLE_DRIVER_CONFIG,
        uefi_variable_data(EFI_GLOBAL_VARIABLE, "SecureBoot", b"\x01"), desc="SecureBoot=1")
    add(7, EV_EFI_VARIABLE_DRIVER_CONFIG,
        uefi_variable_data(EFI_GLOBAL_VARIABLE, "PK", b""), desc="PK (empty)")
    add(7, EV_EFI_VARIABLE_DRIVER_CONFIG,
        uefi_variable_data(EFI_GLOBAL_VARIABLE, "KEK", b""), desc="KEK (empty)")
    db = efi_signature_list_sha256(
        SIGNATURE_OWNER_GUID, [hashlib.sha256(b"trustpool allowed image 1").digest()]
    )
    add(7, EV_EFI_VARIABLE_DRIVER_CONFIG,
        uefi_variable_data(EFI_IMAGE_SECURITY_DATABASE_GUID, "db", db), desc="db (1 SHA-256 entry)")
    dbx = efi_signature_list_sha256(
        SIGNATURE_OWNER_GUID,
        [
            hashlib.sha256(b"trustpool revoked image 1").digest(),
            hashlib.sha256(b"trustpool revoked image 2").digest(),
        ],
    )
    add(7, EV_EFI_VARIABLE_DRIVER_CONFIG,
        uefi_variable_data(EFI_IMAGE_SECURITY_DATABASE_GUID, "dbx", dbx), desc="dbx (2 SHA-256 entries)")

    sep = b"\x00\x00\x00\x00"
    add(7, EV_SEPARATOR, sep, desc="separator")

    # Boot Device Selection. The PC Client PFP spec measures this action string
    # into PCR 4 (that is what real firmware does).
    add(4, EV_EFI_ACTION, b"Calling EFI Application from Boot Option", desc="action")

    for pcr in range(0, 7):
        add(pcr, EV_SEPARATOR, sep, desc="separator")

    # PCR4: the boot loader; digest is a fixed stand-in for its Authenticode hash.
    image_bytes = b"trustpool synthetic BOOTX64.EFI authenticode"
    add(
        4,
        EV_EFI_BOOT_SERVICES_APPLICATION,
        uefi_image_load_event(0x7E6B4018, 0x155E40, 0, device_path_hd_file("\\EFI\\BOOT\\BOOTX64.EFI")),
        digests_of(image_bytes),
        "UEFI_IMAGE_LOAD_EVENT HD(1,GPT,...)/\\EFI\\BOOT\\BOOTX64.EFI",
    )

    # PCR8: GRUB measures the string without its NUL; the log event data includes the NUL.
    for s in (
        "grub_cmd: linux /vmlinuz root=/dev/sda1 ro quiet",
        "kernel_cmdline: /vmlinuz root=/dev/sda1 ro quiet",
    ):
        b = s.encode("ascii")
        add(8, EV_IPL, b + b"\0", digests_of(b), s)

    add(5, EV_EFI_ACTION, b"Exit Boot Services Invocation", desc="action")
    add(5, EV_EFI_ACTION, b"Exit Boot Services Returned with Success", desc="action")
    return ev


def initial_pcrs(size):
    return [b"\xff" * size if 17 <= i <= 22 else b"\x00" * size for i in range(24)]


def main():
    args = [a for a in sys.argv[1:] if a != "-v"]
    outdir = args[0] if args else os.path.dirname(os.path.abspath(__file__))
    events = build_events()

    log = spec_id_event()
    pcrs = {name: initial_pcrs(size) for name, _, size in BANKS}
    lines = []
    for pcr, etype, data, digests, _desc in events:
        log += pcr_event2(pcr, etype, data, digests)
        for name, _, _ in BANKS:
            pcrs[name][pcr] = hashlib.new(name, pcrs[name][pcr] + digests[name]).digest()
        lines.append("%d %s %s" % (pcr, digests["sha1"].hex(), digests["sha256"].hex()))

    with open(os.path.join(outdir, "synthetic.bin"), "wb") as f:
        f.write(log)
    with open(os.path.join(outdir, "extends.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    expected = {
        name: {str(i): pcrs[name][i].hex() for i in range(24)} for name, _, _ in BANKS
    }
    with open(os.path.join(outdir, "expected-pcrs.json"), "w") as f:
        json.dump(expected, f, indent=2)
        f.write("\n")

    if "-v" in sys.argv:
        for pcr, etype, data, _d, desc in events:
            print("PCR%-2d %-34s %4d bytes  %s" % (pcr, EVENT_NAMES[etype], len(data), desc))


if __name__ == "__main__":
    main()
