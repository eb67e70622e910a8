//! Recipient numbers that fail in documented ways.

use wagate_core::Phone;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MagicNumber {
    NotOnWhatsApp,
    ReachOutRestricted,
    SendFailure,
    SlowDelivery,
}

impl MagicNumber {
    pub fn of(phone: &Phone) -> Option<MagicNumber> {
        let digits = phone.digits();
        [
            ("0000", MagicNumber::NotOnWhatsApp),
            ("0463", MagicNumber::ReachOutRestricted),
            ("0500", MagicNumber::SendFailure),
            ("0999", MagicNumber::SlowDelivery),
        ]
        .into_iter()
        .find(|(suffix, _)| digits.ends_with(suffix))
        .map(|(_, magic)| magic)
    }
}
