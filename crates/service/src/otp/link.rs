//! The `wa.me` link of inbound mode: opens WhatsApp on the session's number with the text the
//! user sends back.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters is encoded, as `wa.me` expects.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `https://wa.me/<number without +>?text=<the text, percent-encoded>`.
pub(super) fn wa_me(phone: &str, text: &str) -> String {
    let number = phone.trim_start_matches('+');
    format!("https://wa.me/{number}?text={}", utf8_percent_encode(text, NOT_UNRESERVED))
}

#[cfg(test)]
mod tests {
    use super::wa_me;

    #[test]
    fn percent_encoding() {
        assert_eq!(
            wa_me("+62812", "482913 is my code*"),
            "https://wa.me/62812?text=482913%20is%20my%20code%2A"
        );
        assert_eq!(wa_me("62812", "kode é"), "https://wa.me/62812?text=kode%20%C3%A9");
    }
}
