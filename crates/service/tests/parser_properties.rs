//! Parsers that see user input: OTP message templates and the URL guard of webhooks and media.

use std::net::Ipv4Addr;

use proptest::prelude::*;
use wagate_service::otp::templates::{Vars, render, validate};
use wagate_service::url_guard::UrlGuard;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any text a tenant saves as a template is refused or renders; an accepted one always
    /// shows the code.
    #[test]
    fn templates_render_or_are_refused(body in "(\\PC|\\{\\{ ?(code|brand|minutes|length|x) ?\\}\\}|\\{%|%\\}|\\{\\{){0,30}",
                                       code in "[0-9]{4,10}") {
        let vars = Vars { code: &code, brand: Some("Acme"), minutes: 5 };
        let rendered = render(&body, &vars);
        if validate(&body).is_ok() {
            let text = rendered.expect("an accepted template renders");
            prop_assert!(text.contains(&code), "{body:?} rendered {text:?}");
        }
    }

    /// Loops and large numbers cannot hold the server: rendering stops with an error.
    #[test]
    fn templates_cannot_run_away(n in 1u32..1_000_000) {
        let body = format!("{{% for i in range({n}) %}}{{% for j in range({n}) %}}x{{% endfor %}}{{% endfor %}}{{{{ code }}}}");
        let _ = render(&body, &Vars { code: "123456", brand: None, minutes: 5 });
    }

    /// Private, loopback and link-local addresses are refused however the URL is written.
    #[test]
    fn private_addresses_are_refused(
        first in prop::sample::select(vec![10u8, 127, 169, 172, 192, 0]),
        rest in any::<[u8; 3]>(),
        port in prop::option::of(1u16..),
        path in "(/[a-zA-Z0-9._~%-]{0,10}){0,3}",
        https in any::<bool>(),
    ) {
        let second = match first { 169 => 254, 172 => 16 + rest[0] % 16, 192 => 168, _ => rest[0] };
        let ip = Ipv4Addr::new(first, second, rest[1], rest[2]);
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let scheme = if https { "https" } else { "http" };
        let url = format!("{scheme}://{ip}{port}{path}");
        let refused = runtime().block_on(UrlGuard::new(false).check(&url));
        prop_assert!(refused.is_err(), "{url} was accepted");
        prop_assert!(runtime().block_on(UrlGuard::new(true).check(&url)).is_ok(), "{url} when private URLs are allowed");
    }

    /// Whatever the text, the guard answers, and what it accepts is http(s) without credentials.
    #[test]
    fn any_text_is_checked(raw in "(https?://)?\\PC{0,40}") {
        if let Ok(url) = runtime().block_on(UrlGuard::new(true).check(&raw)) {
            prop_assert!(matches!(url.scheme(), "http" | "https"));
            prop_assert!(url.username().is_empty() && url.password().is_none());
        }
    }
}
