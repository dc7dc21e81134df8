//! Typed views of event data, chosen by event type (PFP §10.4).

use crate::codec;

use super::parse::{Event, SpecIdEvent, SHA1_HEADER_LEN};
use super::replay::startup_locality;
use super::types::EventType;
use super::uefi::{
    CrtmVersion, EventText, FirmwareBlob, FirmwareBlob2, GptData, ImageLoadEvent, UefiVariableData,
};

/// Decoded event data. The data of an event is only authenticated (by replay) when its digest
/// is the hash of that data: see [`super::check_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventData<'a> {
    /// EV_NO_ACTION: the `TCG_EfiSpecIDEvent` heading a crypto-agile log (PFP §10.4.5.1).
    SpecId(SpecIdEvent<'a>),
    /// EV_NO_ACTION: `TCG_EfiStartupLocalityEvent` (PFP §10.4.5.3).
    StartupLocality(u8),
    /// Another EV_NO_ACTION event.
    NoAction(&'a [u8]),
    /// EV_SEPARATOR: 0 normally, 0xFFFFFFFF (or other) on firmware error (PFP §3.3.2.2).
    Separator(u32),
    /// EV_EFI_VARIABLE_DRIVER_CONFIG, _BOOT, _BOOT2, _AUTHORITY, EV_EFI_SPDM_DEVICE_POLICY,
    /// _AUTHORITY.
    Variable(UefiVariableData<'a>),
    /// EV_EFI_BOOT_SERVICES_APPLICATION, _DRIVER, EV_EFI_RUNTIME_SERVICES_DRIVER.
    ImageLoad(ImageLoadEvent<'a>),
    /// EV_EFI_GPT_EVENT.
    Gpt(GptData<'a>),
    /// EV_EFI_PLATFORM_FIRMWARE_BLOB, and blob-shaped EV_S_CRTM_CONTENTS and EV_POST_CODE.
    FirmwareBlob(FirmwareBlob),
    /// EV_EFI_PLATFORM_FIRMWARE_BLOB2, and blob-shaped EV_POST_CODE2.
    FirmwareBlob2(FirmwareBlob2<'a>),
    /// EV_S_CRTM_VERSION.
    CrtmVersion(CrtmVersion<'a>),
    /// EV_IPL, EV_EFI_ACTION, EV_ACTION, EV_EFI_HCRTM_EVENT, and string-shaped
    /// EV_S_CRTM_CONTENTS, EV_POST_CODE and EV_POST_CODE2.
    Text(EventText<'a>),
    /// Any other type: the raw data.
    Raw(&'a [u8]),
    /// The data does not have the structure its type calls for.
    Malformed(codec::Error),
}

/// Decode an event's data. `uintn_bytes` sizes `UINTN` fields
/// ([`super::EventLog::uintn_bytes`]).
pub fn decode<'a>(ev: &Event<'a>, uintn_bytes: usize) -> EventData<'a> {
    let data = ev.data;
    let r = match ev.event_type {
        EventType::NO_ACTION => {
            if ev.index == 0 && data.starts_with(super::parse::SPEC_ID_SIGNATURE) {
                SpecIdEvent::parse(data, ev.offset.saturating_add(SHA1_HEADER_LEN))
                    .map(EventData::SpecId)
            } else if let Some(l) = startup_locality(data) {
                Ok(EventData::StartupLocality(l))
            } else {
                Ok(EventData::NoAction(data))
            }
        }
        EventType::SEPARATOR => Ok(match <[u8; 4]>::try_from(data) {
            Ok(b) => EventData::Separator(u32::from_le_bytes(b)),
            Err(_) => EventData::Raw(data),
        }),
        // EDK2 logs the SPDM policy and authority events with MeasureVariable.
        t if t.is_variable()
            || t == EventType::EFI_SPDM_DEVICE_POLICY
            || t == EventType::EFI_SPDM_DEVICE_AUTHORITY =>
        {
            UefiVariableData::parse(data).map(EventData::Variable)
        }
        t if t.is_image_load() => {
            ImageLoadEvent::parse(data, uintn_bytes).map(EventData::ImageLoad)
        }
        EventType::EFI_GPT_EVENT => GptData::parse(data, uintn_bytes).map(EventData::Gpt),
        EventType::EFI_PLATFORM_FIRMWARE_BLOB => {
            FirmwareBlob::parse(data).map(EventData::FirmwareBlob)
        }
        // A blob, or a string ("Boot Guard Measured S-CRTM" on Intel Boot Guard platforms).
        EventType::S_CRTM_CONTENTS | EventType::POST_CODE => Ok(match FirmwareBlob::parse(data) {
            Ok(b) => EventData::FirmwareBlob(b),
            Err(_) => EventData::Text(EventText::decode(data)),
        }),
        EventType::EFI_PLATFORM_FIRMWARE_BLOB2 => {
            FirmwareBlob2::parse(data).map(EventData::FirmwareBlob2)
        }
        EventType::POST_CODE2 => Ok(match FirmwareBlob2::parse(data) {
            Ok(b) => EventData::FirmwareBlob2(b),
            Err(_) => EventData::Text(EventText::decode(data)),
        }),
        EventType::S_CRTM_VERSION => Ok(EventData::CrtmVersion(CrtmVersion::decode(data))),
        EventType::IPL | EventType::EFI_ACTION | EventType::ACTION | EventType::EFI_HCRTM_EVENT => {
            Ok(EventData::Text(EventText::decode(data)))
        }
        _ => Ok(EventData::Raw(data)),
    };
    r.unwrap_or_else(EventData::Malformed)
}
