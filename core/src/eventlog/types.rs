//! Event types (TCG PC Client Platform Firmware Profile (PFP) §10.4.1, Table 9 "Events").

use core::fmt;

/// An event's `eventType`. Unknown values are kept as numbers; [`EventType::name`] gives the
/// PFP name of the known ones.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventType(pub u32);

impl EventType {
    pub const PREBOOT_CERT: EventType = EventType(0x0000_0000);
    pub const POST_CODE: EventType = EventType(0x0000_0001);
    pub const UNUSED: EventType = EventType(0x0000_0002);
    /// Not extended into any PCR (PFP §10.4.5).
    pub const NO_ACTION: EventType = EventType(0x0000_0003);
    pub const SEPARATOR: EventType = EventType(0x0000_0004);
    pub const ACTION: EventType = EventType(0x0000_0005);
    pub const EVENT_TAG: EventType = EventType(0x0000_0006);
    pub const S_CRTM_CONTENTS: EventType = EventType(0x0000_0007);
    pub const S_CRTM_VERSION: EventType = EventType(0x0000_0008);
    pub const CPU_MICROCODE: EventType = EventType(0x0000_0009);
    pub const PLATFORM_CONFIG_FLAGS: EventType = EventType(0x0000_000A);
    pub const TABLE_OF_DEVICES: EventType = EventType(0x0000_000B);
    pub const COMPACT_HASH: EventType = EventType(0x0000_000C);
    pub const IPL: EventType = EventType(0x0000_000D);
    pub const IPL_PARTITION_DATA: EventType = EventType(0x0000_000E);
    pub const NONHOST_CODE: EventType = EventType(0x0000_000F);
    pub const NONHOST_CONFIG: EventType = EventType(0x0000_0010);
    pub const NONHOST_INFO: EventType = EventType(0x0000_0011);
    pub const OMIT_BOOT_DEVICE_EVENTS: EventType = EventType(0x0000_0012);
    /// PFP 1.06.
    pub const POST_CODE2: EventType = EventType(0x0000_0013);
    pub const EFI_EVENT_BASE: EventType = EventType(0x8000_0000);
    pub const EFI_VARIABLE_DRIVER_CONFIG: EventType = EventType(0x8000_0001);
    pub const EFI_VARIABLE_BOOT: EventType = EventType(0x8000_0002);
    pub const EFI_BOOT_SERVICES_APPLICATION: EventType = EventType(0x8000_0003);
    pub const EFI_BOOT_SERVICES_DRIVER: EventType = EventType(0x8000_0004);
    pub const EFI_RUNTIME_SERVICES_DRIVER: EventType = EventType(0x8000_0005);
    pub const EFI_GPT_EVENT: EventType = EventType(0x8000_0006);
    pub const EFI_ACTION: EventType = EventType(0x8000_0007);
    pub const EFI_PLATFORM_FIRMWARE_BLOB: EventType = EventType(0x8000_0008);
    pub const EFI_HANDOFF_TABLES: EventType = EventType(0x8000_0009);
    pub const EFI_PLATFORM_FIRMWARE_BLOB2: EventType = EventType(0x8000_000A);
    pub const EFI_HANDOFF_TABLES2: EventType = EventType(0x8000_000B);
    pub const EFI_VARIABLE_BOOT2: EventType = EventType(0x8000_000C);
    pub const EFI_GPT_EVENT2: EventType = EventType(0x8000_000D);
    pub const EFI_HCRTM_EVENT: EventType = EventType(0x8000_0010);
    pub const EFI_VARIABLE_AUTHORITY: EventType = EventType(0x8000_00E0);
    pub const EFI_SPDM_FIRMWARE_BLOB: EventType = EventType(0x8000_00E1);
    pub const EFI_SPDM_FIRMWARE_CONFIG: EventType = EventType(0x8000_00E2);
    pub const EFI_SPDM_DEVICE_POLICY: EventType = EventType(0x8000_00E3);
    pub const EFI_SPDM_DEVICE_AUTHORITY: EventType = EventType(0x8000_00E4);

    /// The PFP name (`EV_…`), or `None` for values the PFP does not define.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x0000_0000 => "EV_PREBOOT_CERT",
            0x0000_0001 => "EV_POST_CODE",
            0x0000_0002 => "EV_UNUSED",
            0x0000_0003 => "EV_NO_ACTION",
            0x0000_0004 => "EV_SEPARATOR",
            0x0000_0005 => "EV_ACTION",
            0x0000_0006 => "EV_EVENT_TAG",
            0x0000_0007 => "EV_S_CRTM_CONTENTS",
            0x0000_0008 => "EV_S_CRTM_VERSION",
            0x0000_0009 => "EV_CPU_MICROCODE",
            0x0000_000A => "EV_PLATFORM_CONFIG_FLAGS",
            0x0000_000B => "EV_TABLE_OF_DEVICES",
            0x0000_000C => "EV_COMPACT_HASH",
            0x0000_000D => "EV_IPL",
            0x0000_000E => "EV_IPL_PARTITION_DATA",
            0x0000_000F => "EV_NONHOST_CODE",
            0x0000_0010 => "EV_NONHOST_CONFIG",
            0x0000_0011 => "EV_NONHOST_INFO",
            0x0000_0012 => "EV_OMIT_BOOT_DEVICE_EVENTS",
            0x0000_0013 => "EV_POST_CODE2",
            0x8000_0000 => "EV_EFI_EVENT_BASE",
            0x8000_0001 => "EV_EFI_VARIABLE_DRIVER_CONFIG",
            0x8000_0002 => "EV_EFI_VARIABLE_BOOT",
            0x8000_0003 => "EV_EFI_BOOT_SERVICES_APPLICATION",
            0x8000_0004 => "EV_EFI_BOOT_SERVICES_DRIVER",
            0x8000_0005 => "EV_EFI_RUNTIME_SERVICES_DRIVER",
            0x8000_0006 => "EV_EFI_GPT_EVENT",
            0x8000_0007 => "EV_EFI_ACTION",
            0x8000_0008 => "EV_EFI_PLATFORM_FIRMWARE_BLOB",
            0x8000_0009 => "EV_EFI_HANDOFF_TABLES",
            0x8000_000A => "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
            0x8000_000B => "EV_EFI_HANDOFF_TABLES2",
            0x8000_000C => "EV_EFI_VARIABLE_BOOT2",
            0x8000_000D => "EV_EFI_GPT_EVENT2",
            0x8000_0010 => "EV_EFI_HCRTM_EVENT",
            0x8000_00E0 => "EV_EFI_VARIABLE_AUTHORITY",
            0x8000_00E1 => "EV_EFI_SPDM_FIRMWARE_BLOB",
            0x8000_00E2 => "EV_EFI_SPDM_FIRMWARE_CONFIG",
            0x8000_00E3 => "EV_EFI_SPDM_DEVICE_POLICY",
            0x8000_00E4 => "EV_EFI_SPDM_DEVICE_AUTHORITY",
            _ => return None,
        })
    }

    /// The event type whose PFP name is `name` (`EV_…`).
    pub fn from_name(name: &str) -> Option<EventType> {
        // Every defined value is in one of these two ranges.
        (0u32..=0x13)
            .chain(0x8000_0000..=0x8000_0010)
            .chain(0x8000_00E0..=0x8000_00E4)
            .map(EventType)
            .find(|t| t.name() == Some(name))
    }

    /// `EV_EFI_VARIABLE_*` events, whose data is a `UEFI_VARIABLE_DATA` (PFP §10.4.2).
    pub const fn is_variable(self) -> bool {
        matches!(
            self,
            EventType::EFI_VARIABLE_DRIVER_CONFIG
                | EventType::EFI_VARIABLE_BOOT
                | EventType::EFI_VARIABLE_BOOT2
                | EventType::EFI_VARIABLE_AUTHORITY
        )
    }

    /// Image loads, whose data is a `UEFI_IMAGE_LOAD_EVENT` (PFP §10.4.3).
    pub const fn is_image_load(self) -> bool {
        matches!(
            self,
            EventType::EFI_BOOT_SERVICES_APPLICATION
                | EventType::EFI_BOOT_SERVICES_DRIVER
                | EventType::EFI_RUNTIME_SERVICES_DRIVER
        )
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{:#010x}", self.0),
        }
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<u32> for EventType {
    fn from(v: u32) -> Self {
        EventType(v)
    }
}

/// Serialized as its PFP name (`EV_SEPARATOR`), or as a hex number when unknown.
#[cfg(feature = "serde")]
impl serde::Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
